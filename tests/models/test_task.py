"""What every task model shares: presets by name, compiled state surviving `.keras`."""

import numpy as np
import pytest

import keras
from keras_transformer.models import GPTCausalLM, T5Seq2SeqLM, list_presets


def test_a_compiled_task_model_reloads_compiled(tmp_path):
    model = GPTCausalLM.from_preset("gpt2_tiny")
    model.compile()
    ids = np.random.default_rng(0).integers(1, 200, (2, 12)).astype("int32")
    x = {"token_ids": ids[:, :-1], "padding_mask": np.ones_like(ids[:, :-1])}
    model.fit(x, ids[:, 1:], epochs=1, verbose=0)
    model.save(tmp_path / "lm.keras")
    loaded = keras.saving.load_model(tmp_path / "lm.keras")
    assert loaded.optimizer is not None
    assert type(loaded.optimizer) is type(model.optimizer)
    np.testing.assert_allclose(
        loaded.evaluate(x, ids[:, 1:], verbose=0), model.evaluate(x, ids[:, 1:], verbose=0), rtol=1e-5
    )


def test_every_family_lists_its_presets():
    assert {"bert_base", "gpt2_small", "t5_small", "t5_1_1_small"} <= set(list_presets())
    assert all(name.startswith("t5") for name in list_presets("t5"))


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid presets: .*t5_small"):
        T5Seq2SeqLM.from_preset("t5_huge")


def test_fit_on_a_tf_data_dataset_and_padding_does_not_count():
    import tensorflow as tf

    model = GPTCausalLM.from_preset("gpt2_tiny")
    model.compile()
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 200, (4, 9)).astype("int32")
    x = {"token_ids": ids[:, :-1], "padding_mask": np.ones_like(ids[:, :-1])}
    y, w = ids[:, 1:], np.ones_like(ids[:, 1:])
    dataset = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(2)
    model.fit(dataset, epochs=1, verbose=0)
    # Right-pad every row with 4 positions of weight 0 and junk labels: same loss.
    pad = lambda a, value: np.concatenate([a, np.full((4, 4), value, a.dtype)], axis=1)  # noqa: E731
    padded_x = {"token_ids": pad(x["token_ids"], 0), "padding_mask": pad(x["padding_mask"], 0)}
    plain = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    padded = model.evaluate(padded_x, pad(y, 7), sample_weight=pad(w, 0), verbose=0, return_dict=True)
    for name in ("loss", "accuracy", "perplexity"):
        np.testing.assert_allclose(padded[name], plain[name], rtol=1e-5, err_msg=name)
