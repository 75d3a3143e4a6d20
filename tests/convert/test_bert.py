"""Hugging Face BERT import: parity with the fixtures, and loud failures on bad checkpoints."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keras_transformer.convert import from_huggingface
from keras_transformer.models.bert import BertBackbone, BertMaskedLM
from tests.test_case import to_numpy

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface")
MLM, MODEL = os.path.join(FIXTURES, "bert"), os.path.join(FIXTURES, "bert_model")
RTOL = 1e-4  # relative to the largest magnitude of each expected array


def _expected(path):
    with np.load(os.path.join(path, "expected.npz")) as data:
        return dict(data)


def _inputs(expected, with_positions=False):
    inputs = {
        "token_ids": expected["input_ids"],
        "segment_ids": expected["token_type_ids"],
        "padding_mask": expected["attention_mask"],
    }
    if with_positions:  # every position, so the MLM logits cover the whole sequence
        batch, length = expected["input_ids"].shape
        inputs["mask_positions"] = np.tile(np.arange(length, dtype="int32"), (batch, 1))
    return inputs


def _check_close(name, actual, expected):
    """Asserts |actual - expected| <= RTOL * max|expected| everywhere (padded positions too)."""
    actual = np.asarray(to_numpy(actual), dtype="float64")
    difference = np.abs(actual - expected)
    scale = float(np.max(np.abs(expected)))
    # The actual figures, shown with `pytest -s` (and quoted in the family's report).
    print(f"{name}: max abs diff {difference.max():.3e}, max relative to scale "
          f"{difference.max() / scale:.3e}")
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    assert difference.max() <= RTOL * scale, f"{name}: {difference.max()} > {RTOL} * {scale}"


def test_masked_lm_parity():
    expected = _expected(MLM)
    model = from_huggingface(MLM)
    assert isinstance(model, BertMaskedLM) and not model.next_sentence_prediction
    inputs = _inputs(expected, with_positions=True)
    _check_close("bert logits", model(inputs)["logits"], expected["logits"])

    backbone = model.backbone
    # hidden_states[0] is the embedding LayerNorm output (dropout is off at inference),
    # hidden_states[i] the output of block i - 1.
    probe = keras.Model(
        backbone.input,
        [backbone.embeddings_layer_norm.output] + [b.output for b in backbone.encoder_blocks],
    )
    states = probe({k: v for k, v in inputs.items() if k != "mask_positions"})
    assert len(states) == len(expected["hidden_states"]) == 3
    for i, state in enumerate(states):
        _check_close(f"bert hidden_states[{i}]", state, expected["hidden_states"][i])


def test_bert_model_parity():
    expected = _expected(MODEL)
    backbone = from_huggingface(MODEL)
    assert isinstance(backbone, BertBackbone)  # BertModel: the backbone itself
    outputs = backbone(_inputs(expected))
    _check_close("bert_model last_hidden_state", outputs["sequence_output"],
                 expected["last_hidden_state"])
    _check_close("bert_model pooler_output", outputs["pooled_output"], expected["pooler_output"])


# ------------------------------------------------------------ edited checkpoints


def _edited_copy(tmp_path, source, edit_tensors=None, edit_config=None):
    """A copy of checkpoint folder `source` with its tensors and/or config changed in place."""
    target = tmp_path / "checkpoint"
    shutil.copytree(source, target)
    if edit_tensors is not None:
        tensors = load_file(str(target / "model.safetensors"))
        edit_tensors(tensors)
        save_file(tensors, str(target / "model.safetensors"))
    if edit_config is not None:
        config = json.loads((target / "config.json").read_text())
        edit_config(config)
        (target / "config.json").write_text(json.dumps(config))
    return str(target)


def _set(key, value):
    return lambda mapping: mapping.__setitem__(key, value)


def _drop(key):
    return lambda mapping: mapping.pop(key)


KEY = "bert.encoder.layer.1.attention.self.key.weight"


@pytest.mark.parametrize(
    "source, tensors, config, message",
    [
        (MLM, _drop(KEY), None, f"missing weight '{KEY}'"),
        (MLM, _drop("cls.predictions.bias"), None, "missing weight 'cls.predictions.bias'"),
        (MODEL, _drop("pooler.dense.bias"), None, "missing weight 'pooler.dense.bias'"),
        (MLM, _set("bert.extra.weight", np.zeros(3, "float32")), None, r"unexpected .*'bert\.extra\.weight'"),
        # An MLM head in a checkpoint that says BertModel is not silently dropped.
        (MODEL, _set("cls.predictions.bias", np.zeros(107, "float32")), None,
         r"unexpected .*'cls\.predictions\.bias'"),
        (MLM, _set(KEY, np.zeros((32, 31), "float32")), None, rf"'{KEY}' has shape \(32, 31\)"),
        (MLM, _set("bert.encoder.layer.0.output.LayerNorm.weight", np.zeros(31, "float32")), None,
         r"'bert\.encoder\.layer\.0\.output\.LayerNorm\.weight' has shape \(31,\)"),
        (MLM, _set("cls.predictions.bias", np.zeros(102, "float32")), None,
         r"'cls\.predictions\.bias' has shape \(102,\)"),
        (MLM, _set("cls.predictions.decoder.weight", np.zeros((103, 32), "float32")), None,
         r"'cls\.predictions\.decoder\.weight' differs from the tied tensor"),
        (MLM, None, _set("hidden_act", "relu"), r"hidden_act='relu'"),
        (MLM, None, _set("position_embedding_type", "relative_key"), "position_embedding_type"),
        (MLM, None, _set("architectures", ["BertForSequenceClassification"]),
         "unsupported BERT architectures"),
    ],
    ids=[
        "missing_tensor", "missing_head_bias", "missing_pooler", "extra_tensor", "head_in_bert_model",
        "wrong_attention_shape", "wrong_norm_shape", "wrong_bias_shape", "untied_decoder",
        "unsupported_activation", "relative_positions", "unsupported_architecture",
    ],
)
def test_bad_checkpoints_raise(tmp_path, source, tensors, config, message):
    path = _edited_copy(tmp_path, source, tensors, config)
    with pytest.raises(ValueError, match=message):
        from_huggingface(path)


def test_tolerated_extras_and_gelu_new(tmp_path):
    """Tied decoder copies and the position_ids buffer load; gelu_new selects tanh GELU."""

    def add_extras(tensors):
        tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]
        tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"]
        tensors["bert.embeddings.position_ids"] = np.arange(40, dtype="int64")[None]

    path = _edited_copy(tmp_path, MLM, add_extras, _set("hidden_act", "gelu_new"))
    model = from_huggingface(path)
    assert model.backbone.model_config.activation == "gelu_approximate"
    expected = _expected(MLM)
    logits = to_numpy(model(_inputs(expected, with_positions=True))["logits"])
    # The manifest: tanh instead of exact GELU moves these logits by ~1.4e-3.
    assert 1e-4 < np.abs(logits - expected["logits"]).max() < 1e-2


def test_pretraining_checkpoint_gets_next_sentence_head(tmp_path):
    """BertForPreTraining = MLM + pooler + `cls.seq_relationship`, mapped to the NSP head."""
    rng = np.random.default_rng(0)
    extra = {
        "bert.pooler.dense.weight": rng.normal(size=(32, 32)),
        "bert.pooler.dense.bias": rng.normal(size=32),
        "cls.seq_relationship.weight": rng.normal(size=(2, 32)),
        "cls.seq_relationship.bias": rng.normal(size=2),
    }
    extra = {k: v.astype("float32") for k, v in extra.items()}
    path = _edited_copy(
        tmp_path, MLM, lambda t: t.update(extra), _set("architectures", ["BertForPreTraining"])
    )
    model = from_huggingface(path)
    assert model.next_sentence_prediction
    expected = _expected(MLM)
    outputs = model(_inputs(expected, with_positions=True))
    _check_close("pretraining logits", outputs["logits"], expected["logits"])
    # NumPy: tanh pooler on the first token, then the 2-way linear layer (HF (out, in) weights).
    first = expected["hidden_states"][-1][:, 0].astype("float64")
    pooled = np.tanh(first @ extra["bert.pooler.dense.weight"].T + extra["bert.pooler.dense.bias"])
    nsp = pooled @ extra["cls.seq_relationship.weight"].T + extra["cls.seq_relationship.bias"]
    np.testing.assert_allclose(to_numpy(outputs["next_sentence_logits"]), nsp, rtol=1e-4, atol=1e-4)


def test_question_answering_parity():
    from keras_transformer.models.bert import BertQuestionAnswering

    folder = os.path.join(FIXTURES, "bert_qa")
    expected = _expected(folder)
    model = from_huggingface(folder)
    assert isinstance(model, BertQuestionAnswering)
    out = model(_inputs(expected))
    _check_close("bert_qa start_logits", out["start_logits"], expected["start_logits"])
    _check_close("bert_qa end_logits", out["end_logits"], expected["end_logits"])
