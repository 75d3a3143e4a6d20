"""What every family shares: the input contract, sublayer names, parameter counts,
compile defaults, LoRA, int8 quantization and files saved before the rename."""

import os

import keras
import numpy as np
import pytest

from keras_transformer.models import (
    BertClassifier,
    BertMaskedLM,
    GPTCausalLM,
    T5Seq2SeqLM,
    get_preset,
)

LEGACY = os.path.join(os.path.dirname(__file__), "..", "fixtures", "legacy")
IDS = np.random.default_rng(0).integers(1, 250, (2, 6)).astype("int32")
ONES = np.ones_like(IDS)


def _gpt():
    return GPTCausalLM.from_preset("gpt2_tiny"), {"token_ids": IDS, "padding_mask": ONES}, "token_ids"


def _bert():
    inputs = {"token_ids": IDS, "segment_ids": np.zeros_like(IDS), "padding_mask": ONES}
    return BertClassifier.from_preset("bert_test", num_classes=3), inputs, "token_ids"


def _t5():
    inputs = {"encoder_token_ids": IDS, "encoder_padding_mask": ONES,
              "decoder_token_ids": IDS[:, :4], "decoder_padding_mask": ONES[:, :4]}
    return T5Seq2SeqLM.from_preset("t5_tiny"), inputs, "encoder_token_ids"


FAMILIES = {"bert": _bert, "gpt": _gpt, "t5": _t5}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_one_input_contract_for_every_family(family):
    model, inputs, ids_key = FAMILIES[family]()
    owner, backbone_owner = type(model).__name__, type(model.backbone).__name__
    key = sorted(inputs)[0]
    for target, name in ((model, owner), (model.backbone, backbone_owner)):
        x = inputs if target is model else {k: inputs[k] for k in target.input_keys}
        with pytest.raises(ValueError, match=rf"^{name} inputs lack \['{key}'\]"):
            target({k: v for k, v in x.items() if k != key})
    limit = model.backbone.model_config.vocabulary_size
    bad = dict(inputs, **{ids_key: np.full_like(IDS, limit)})
    with pytest.raises(ValueError, match=rf"^{owner}: {ids_key} holds id {limit} at index \(0, 0\), "
                                         rf"outside \[0, {limit}\) for vocabulary_size={limit}"):
        model(bad)
    length = model.backbone.model_config.max_sequence_length + 1
    prefix = ids_key[: -len("token_ids")]  # "" (one sequence) or "encoder_"
    long = {k: (np.ones((2, length), "int32") if k.startswith(prefix) else v) for k, v in inputs.items()}
    with pytest.raises(ValueError, match=rf"^{owner}: {ids_key} has length {length}, which exceeds "
                                         rf"max_sequence_length={length - 1}"):
        model(long)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_one_sublayer_vocabulary_and_parameter_count(family):
    model, _, _ = FAMILIES[family]()
    backbone = model.backbone
    blocks = list(backbone.encoder_blocks) + list(backbone.decoder_blocks)
    assert blocks and backbone.transformer_layers == blocks
    for kind in ("encoder", "decoder"):
        names = [block.name for block in getattr(backbone, f"{kind}_blocks")]
        assert names == [f"{kind}_block_{i}" for i in range(len(names))]
    assert backbone.count_params() == backbone.model_config.count_params()


def test_gpt_keeps_read_only_aliases():
    backbone = GPTCausalLM.from_preset("gpt2_tiny").backbone
    assert backbone.layer_norm is backbone.decoder_norm
    assert backbone.transformer_layers == list(backbone.decoder_blocks)
    with pytest.raises(AttributeError):
        backbone.layer_norm = None


@pytest.mark.parametrize("name", ["bert_masked_lm", "gpt_causal_lm", "t5_seq2seq_lm"])
def test_files_saved_before_the_rename_still_load(name):
    model = keras.saving.load_model(os.path.join(LEGACY, f"{name}.keras"))
    with np.load(os.path.join(LEGACY, f"{name}.npz")) as data:
        saved = {key: data[key] for key in data.files}
    expected = saved.pop("logits")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(saved)["logits"]), expected, atol=1e-5)


def test_every_task_resolves_auto_compile_arguments_through_one_path():
    bert, _, _ = _bert()
    bert.compile()
    assert isinstance(bert.optimizer, keras.optimizers.Adam) and np.isclose(float(bert.optimizer.learning_rate), 5e-5)
    mlm = BertMaskedLM.from_preset("bert_test", next_sentence_prediction=True)
    mlm.compile(optimizer="sgd")
    assert isinstance(mlm.optimizer, keras.optimizers.SGD)
    assert set(mlm._compile_config.config["loss"]) == {"logits", "next_sentence_logits"}
    t5, _, _ = _t5()
    t5.compile()
    assert isinstance(t5.optimizer, keras.optimizers.AdamW)
    for model in (bert, mlm, t5):
        assert "compile" not in type(model).__dict__  # defaults come from compile_defaults()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_lora_trains_only_adapters_and_round_trips(family, tmp_path):
    model, inputs, _ = FAMILIES[family]()
    original = model.get_weights()
    before = keras.ops.convert_to_numpy(model(inputs)["logits"])
    adapted = model.backbone.enable_lora(2)
    assert {layer.name for layer in adapted} == {"query", "value"}
    backbone_trainable = [v.path for v in model.backbone.trainable_variables]
    assert backbone_trainable and all("lora_kernel" in path for path in backbone_trainable)
    # B starts at zero: the adapted model equals the original.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(inputs)["logits"]), before, atol=1e-6)
    frozen = [keras.ops.convert_to_numpy(v) for v in model.backbone.non_trainable_variables]
    y = {"t5": IDS[:, :4], "gpt": IDS, "bert": np.array([0, 1])}[family]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(inputs, y, epochs=2, verbose=0)
    for old, new in zip(frozen, model.backbone.non_trainable_variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(new), old)
    tuned = keras.ops.convert_to_numpy(model(inputs)["logits"])
    assert np.abs(tuned - before).max() > 1e-4
    path = str(tmp_path / "adapters.npz")
    model.backbone.save_lora_weights(path)
    # The original weights plus the saved adapters (and the trained head) give the tuned model.
    other, _, _ = FAMILIES[family]()
    other.set_weights(original)
    other.backbone.load_lora_weights(path)
    assert [v.path for v in other.backbone.trainable_variables] == backbone_trainable
    for mine, theirs in zip(model.weights, other.weights):
        if "lora" not in mine.path and mine.path not in {v.path for v in model.backbone.weights}:
            theirs.assign(mine)  # task head weights
    np.testing.assert_allclose(keras.ops.convert_to_numpy(other(inputs)["logits"]), tuned, atol=1e-5)
    fresh, _, _ = FAMILIES[family]()
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        fresh.backbone.enable_lora(0)
    with pytest.raises(ValueError, match="no Dense/EinsumDense sublayer named"):
        fresh.backbone.enable_lora(2, target_layer_names=["no_such_layer"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_int8_runs_and_reloads(family, tmp_path):
    model, inputs, _ = FAMILIES[family]()
    reference = keras.ops.convert_to_numpy(model(inputs)["logits"])
    model.quantize("int8")
    quantized = keras.ops.convert_to_numpy(model(inputs)["logits"])
    assert np.abs(quantized - reference).max() < 0.1 * (np.abs(reference).max() + 1e-3) + 0.05
    path = str(tmp_path / "int8.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert any(layer.quantization_mode == "int8" for layer in loaded._flatten_layers())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs)["logits"]), quantized, atol=1e-6)


def test_every_config_counts_without_building():
    assert get_preset("bert_base").count_params() == 109_482_240
    assert get_preset("gpt2_small").count_params() == 124_439_808
    assert get_preset("t5_small").count_params() == 60_506_624
