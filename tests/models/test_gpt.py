"""GPT family: config and presets, backbone, causal LM, cached decoding, training."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.models import get_preset, list_presets
from keras_transformer.models.gpt import GPTBackbone, GPTCausalLM, GPTConfig
from keras_transformer.text.corpus import split_documents, stdlib_documents
from tests.test_case import assert_allclose, compiled, run_model_saving_test, run_model_test, to_numpy

TINY = get_preset("gpt2_tiny").to_dict()
VARIANTS = {
    "learned": {},
    "rotary": {"position_encoding": "rotary"},
    "gqa_untied": {"num_key_value_heads": 2, "tie_word_embeddings": False},
    "rotary_gqa_mqa": {"position_encoding": "rotary", "num_key_value_heads": 1},
}
# Published sizes (Radford et al. 2019 / the Hugging Face checkpoints, tied head counted once).
PUBLISHED = {
    "gpt2_small": 124_439_808,
    "gpt2_medium": 354_823_168,
    "gpt2_large": 774_030_080,
    "gpt2_xl": 1_557_611_200,
}


def batch(lengths=(7, 4, 1), length=7, seed=0):
    """Right-padded random ids (0 = padding) and their padding mask."""
    rng = np.random.default_rng(seed)
    mask = (np.arange(length)[None, :] < np.asarray(lengths)[:, None]).astype("int32")
    ids = rng.integers(1, TINY["vocabulary_size"], size=mask.shape).astype("int32") * mask
    return {"token_ids": ids, "padding_mask": mask}


def tiny_lm(**overrides):
    return GPTCausalLM(GPTBackbone(**{**TINY, **overrides}))


# ----------------------------------------------------------- config, presets


def test_presets_are_listed_and_unknown_ones_rejected():
    assert list_presets("gpt") == [
        "gpt2_large", "gpt2_medium", "gpt2_small", "gpt2_tiny", "gpt2_xl",
    ]
    small = get_preset("gpt2_small", "gpt")
    shape = (small.num_layers, small.hidden_dim, small.num_heads, small.intermediate_dim)
    assert shape == (12, 768, 12, 3072)
    assert (small.vocabulary_size, small.max_sequence_length) == (50257, 1024)
    assert get_preset("gpt2_xl").num_heads == 25
    with pytest.raises(ValueError, match="unknown preset 'gpt3'.*gpt2_medium, gpt2_small"):
        GPTCausalLM.from_preset("gpt3")


def test_config_validates_and_round_trips():
    config = GPTConfig(**{**TINY, "position_encoding": "rotary", "num_key_value_heads": 2})
    assert GPTConfig.from_json(config.to_json()) == config
    bad = {
        "hidden_dim": (62, "num_heads must divide hidden_dim"),
        "num_key_value_heads": (3, "num_key_value_heads must divide num_heads"),
        "position_encoding": ("sinusoidal", "position_encoding must be one of"),
        "num_layers": (0, "num_layers must be a positive integer"),
        "dropout": (1.0, "dropout must be in"),
        "layer_norm_epsilon": (0.0, "layer_norm_epsilon must be a positive number"),
    }
    for field, (value, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            GPTConfig(**{**TINY, field: value})
    with pytest.raises(ValueError, match="activation"):
        GPTBackbone(**{**TINY, "activation": "no_such_activation"})


# ----------------------------------------------------------- generic harness


def test_backbone_passes_model_test():
    data = batch()
    backbone, outputs = run_model_test(
        lambda: GPTBackbone(**{**TINY, "dropout": 0.1}), data, {"sequence_output": (3, 7, 64)}
    )
    assert set(outputs) == {"sequence_output"}
    config = backbone.get_config()
    base = {"name": backbone.name, "trainable": True, "dtype": config["dtype"]}
    assert config == {**base, **TINY, "dropout": 0.1}


@pytest.mark.parametrize("variant", ["learned", "rotary_gqa_mqa"])
def test_causal_lm_passes_model_test(variant):
    data = batch()
    x = {"token_ids": data["token_ids"][:, :-1], "padding_mask": data["padding_mask"][:, :-1]}
    y, sample_weight = data["token_ids"][:, 1:], data["padding_mask"][:, 1:]

    def build():
        lm = tiny_lm(**VARIANTS[variant])
        lm.compile(optimizer=keras.optimizers.Adam(1e-3))
        return lm

    lm, outputs = run_model_test(
        build, x, {"logits": (3, 6, TINY["vocabulary_size"])}, fit_data=(x, y, sample_weight)
    )
    assert keras.backend.standardize_dtype(outputs["logits"].dtype) == "float32"


def test_logits_are_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        lm = tiny_lm()
    finally:
        keras.config.set_dtype_policy("float32")
    logits = lm(batch())["logits"]
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    revived = GPTBackbone.from_config(lm.backbone.get_config())
    assert revived.decoder_blocks[0].compute_dtype == "bfloat16"


def test_causal_lm_saves_and_reloads():
    # Learned positions, grouped-query heads and an untied head: every kind of weight.
    run_model_saving_test(tiny_lm(**VARIANTS["gqa_untied"]), batch())


# ----------------------------------------------------------- numerics


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_padding_does_not_change_real_positions(variant):
    """Right padding: outputs at real positions equal those of the unpadded rows."""
    lm = tiny_lm(**VARIANTS[variant])
    data = batch(lengths=(7, 4), length=7)
    padded = to_numpy(lm(data)["logits"])
    alone = to_numpy(lm({key: value[1:, :4] for key, value in data.items()})["logits"])
    assert_allclose(padded[1, :4], alone[0], atol=1e-5, rtol=1e-4)
    # A changed padded token changes nothing before it.
    changed = {k: v.copy() for k, v in data.items()}
    changed["token_ids"][1, 5] = 3
    assert_allclose(to_numpy(lm(changed)["logits"])[1, :4], padded[1, :4], atol=1e-6, rtol=1e-6)


def test_both_position_encodings_make_the_model_order_aware():
    """The last query attends to every token; without positions, permuting the
    earlier tokens would leave its output unchanged."""
    data = batch(lengths=(7,), length=7)
    permuted = {k: v.copy() for k, v in data.items()}
    permuted["token_ids"][0, :6] = data["token_ids"][0, 5::-1]
    for variant in ("learned", "rotary"):
        backbone = GPTBackbone(**{**TINY, **VARIANTS[variant]})
        original = to_numpy(backbone(data)["sequence_output"])[0, -1]
        shuffled = to_numpy(backbone(permuted)["sequence_output"])[0, -1]
        assert np.max(np.abs(original - shuffled)) > 1e-3, variant
    assert GPTBackbone(**TINY).position_embedding is not None
    assert GPTBackbone(**{**TINY, "position_encoding": "rotary"}).position_embedding is None


def test_parameter_count_formula_matches_built_models_and_publications():
    for name, overrides in VARIANTS.items():
        config = GPTConfig(**{**TINY, **overrides})
        assert tiny_lm(**overrides).count_params() == config.count_params(), name
    for name, published in PUBLISHED.items():
        assert get_preset(name).count_params() == published, name
    # Built once for real (about 0.5 GB, a few seconds).
    small = GPTCausalLM.from_preset("gpt2_small")
    assert small.count_params() == PUBLISHED["gpt2_small"] == small.backbone.count_params()
    del small


# ----------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors():
    lm = tiny_lm()
    data = batch()
    with pytest.raises(ValueError, match="padding_mask"):
        lm({"token_ids": data["token_ids"]})
    with pytest.raises(ValueError, match="padding_mask"):
        lm.backbone({"token_ids": data["token_ids"]})
    too_big = {k: v.copy() for k, v in data.items()}
    too_big["token_ids"][0, 2] = TINY["vocabulary_size"]
    with pytest.raises(ValueError, match=r"token_ids holds id 257 at index \(0, 2\)"):
        lm(too_big)
    long = batch(lengths=(129,), length=129)
    for overrides in ({}, {"position_encoding": "rotary"}):
        with pytest.raises(ValueError, match="length 129, which exceeds max_sequence_length=128"):
            tiny_lm(**overrides)(long)
    with pytest.raises(ValueError, match="max_length=200 exceeds"):
        lm.initial_cache(1, 200)
    with pytest.raises(ValueError, match="GPTBackbone"):
        inputs = keras.Input((3,))
        GPTCausalLM(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


# ----------------------------------------------------------- cached decoding


def decode_one_by_one(lm, token_ids, padding_mask):
    """Logits of every position from single-token `call_with_cache` steps in a
    `keras.ops.while_loop` (the index is a tensor, as in a compiled loop)."""
    batch_size, length = ops.shape(token_ids)
    vocabulary = lm.backbone.model_config.vocabulary_size

    def step(index, logits, cache):
        ids = ops.slice(token_ids, [0, index], [batch_size, 1])
        step_logits, cache = lm.call_with_cache(ids, cache, index, padding_mask=padding_mask)
        logits = ops.slice_update(logits, [0, index, 0], step_logits)
        return index + 1, logits, cache

    initial = (
        ops.convert_to_tensor(0, "int32"),
        ops.zeros((batch_size, length, vocabulary), "float32"),
        lm.initial_cache(batch_size, length),
    )
    _, logits, _ = ops.while_loop(lambda index, logits, cache: index < length, step, initial)
    return logits


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cached_decoding_equals_full_forward(variant):
    lm = tiny_lm(**VARIANTS[variant])
    data = batch(lengths=(7, 5), length=7)
    expected = to_numpy(lm(data)["logits"])
    ids, mask = ops.convert_to_tensor(data["token_ids"]), ops.convert_to_tensor(data["padding_mask"])
    cache_shape = (2, TINY["num_layers"], 2, 7, VARIANTS[variant].get("num_key_value_heads", 4), 16)
    assert tuple(lm.initial_cache(2, 7).shape) == cache_shape

    # Eager: a 3-token prompt chunk at index 0, then one token at a time (Python ints).
    cache = lm.initial_cache(2, 7)
    chunk, cache = lm.call_with_cache(ids[:, :3], cache, 0, padding_mask=mask)
    steps = [chunk]
    for index in range(3, 7):
        logits, cache = lm.call_with_cache(ids[:, index : index + 1], cache, index, padding_mask=mask)
        steps.append(logits)
    assert_allclose(ops.concatenate(steps, axis=1), expected, atol=1e-5, rtol=1e-4)

    # Eager while_loop, then the same loop compiled (traced cache_update_index).
    assert_allclose(decode_one_by_one(lm, ids, mask), expected, atol=1e-5, rtol=1e-4)
    run = compiled(lambda i, m: decode_one_by_one(lm, i, m))
    assert_allclose(run(ids, mask), expected, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------- training


@pytest.mark.slow
def test_causal_lm_learns_english_text():
    """~250 steps on byte-level stdlib docstrings: held-out loss falls well below the
    unigram entropy (so the model uses context, not just byte frequencies)."""
    sequence_length, steps, batch_size = 48, 250, 16
    train_docs, validation_docs = split_documents(stdlib_documents(max_files=300))

    def rows(documents):
        ids = np.frombuffer("\n".join(documents).encode("utf-8"), np.uint8).astype("int32") + 1
        n = len(ids) // (sequence_length + 1)
        return ids[: n * (sequence_length + 1)].reshape(n, sequence_length + 1)

    train, validation = rows(train_docs), rows(validation_docs)[:128]
    counts = np.bincount(train.ravel(), minlength=257)[1:]
    p = counts[counts > 0] / counts.sum()
    unigram_entropy = float(-(p * np.log(p)).sum())

    def split(r):
        return {"token_ids": r[:, :-1], "padding_mask": np.ones_like(r[:, :-1])}, r[:, 1:]

    lm = GPTCausalLM.from_preset("gpt2_tiny")
    lm.compile(optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.01, clipnorm=1.0))
    x_val, y_val = split(validation)
    before = lm.evaluate(x_val, y_val, verbose=0, return_dict=True)
    chosen = train[np.random.default_rng(0).choice(len(train), steps * batch_size)]
    x, y = split(chosen)
    lm.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    after = lm.evaluate(x_val, y_val, verbose=0, return_dict=True)
    print(f"held-out loss {before['loss']:.3f} -> {after['loss']:.3f} "
          f"(unigram entropy {unigram_entropy:.3f})")
    assert abs(before["loss"] - math.log(257)) < 0.2, before  # starts near uniform
    assert after["loss"] < unigram_entropy - 0.3, (before, after, unigram_entropy)
    assert after["perplexity"] == pytest.approx(math.exp(after["loss"]), rel=1e-3)
    # Always guessing the commonest byte scores its frequency; context must beat it clearly.
    assert after["accuracy"] > counts.max() / counts.sum() + 0.1, (after, counts.max() / counts.sum())
