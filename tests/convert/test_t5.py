"""Hugging Face T5ForConditionalGeneration import, against tests/fixtures/huggingface/t5_v1_*."""

import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keras_transformer.convert import from_huggingface
from keras_transformer.models import T5Seq2SeqLM
from tests.test_case import to_numpy

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface")
TOLERANCE = 1e-4  # relative to max(1, max |expected|)


def expected(case):
    return dict(np.load(os.path.join(FIXTURES, case, "expected.npz")))


def model_inputs(arrays):
    return {
        "encoder_token_ids": arrays["input_ids"],
        "encoder_padding_mask": arrays["attention_mask"],
        "decoder_token_ids": arrays["decoder_input_ids"],
        "decoder_padding_mask": arrays["decoder_attention_mask"],
    }


def checkpoint_copy(tmp_path, case, config_file="config.json", edit_config=None, edit_weights=None):
    """A copy of a fixture folder, optionally with another config file and edited tensors."""
    folder = tmp_path / case
    folder.mkdir()
    with open(os.path.join(FIXTURES, case, config_file)) as handle:
        config = json.load(handle)
    if edit_config:
        edit_config(config)
    (folder / "config.json").write_text(json.dumps(config))
    source = os.path.join(FIXTURES, case, "model.safetensors")
    if edit_weights:
        tensors = load_file(source)
        edit_weights(tensors)
        save_file(tensors, str(folder / "model.safetensors"))
    else:
        shutil.copy(source, folder / "model.safetensors")
    return str(folder)


def assert_close(got, want, what, report):
    got = np.asarray(got, dtype="float32")
    assert got.shape == want.shape, (what, got.shape, want.shape)
    difference = float(np.max(np.abs(got - want)))
    scale = max(1.0, float(np.max(np.abs(want))))
    report.append(f"{what}: max abs {difference:.2e}, relative {difference / scale:.2e}")
    assert difference <= TOLERANCE * scale, report[-1]


def hidden_states(backbone, x):
    """HF's `*_hidden_states` layout: embeddings, then each block's output, the last one normed."""
    embed = backbone.token_embedding
    encoder = [embed(x["encoder_token_ids"])]
    bias = backbone.encoder_relative_position_bias(encoder[0])
    for block in backbone.encoder_blocks:
        encoder.append(block(encoder[-1], padding_mask=x["encoder_padding_mask"], attention_bias=bias))
    encoder[-1] = backbone.encoder_norm(encoder[-1])
    decoder = [embed(x["decoder_token_ids"])]
    bias = backbone.decoder_relative_position_bias(decoder[0])
    for block in backbone.decoder_blocks:
        decoder.append(
            block(
                decoder[-1],
                encoder[-1],
                decoder_padding_mask=x["decoder_padding_mask"],
                encoder_padding_mask=x["encoder_padding_mask"],
                self_attention_bias=bias,
            )
        )
    decoder[-1] = backbone.decoder_norm(decoder[-1])
    return np.stack(to_numpy(encoder)), np.stack(to_numpy(decoder))


CASES = [
    ("t5_v1_0", "config.json"),
    ("t5_v1_0", "config_legacy.json"),
    ("t5_v1_1", "config.json"),
    ("t5_v1_1", "config_legacy.json"),
]


@pytest.mark.parametrize("case,config_file", CASES)
def test_outputs_match_hugging_face(tmp_path, case, config_file):
    path = os.path.join(FIXTURES, case)
    if config_file != "config.json":
        path = checkpoint_copy(tmp_path, case, config_file)
    model = from_huggingface(path)
    assert isinstance(model, T5Seq2SeqLM)
    config = model.backbone.model_config
    v1_0 = case == "t5_v1_0"
    # v1.0: ReLU, tied, rescaled. v1.1: gated tanh-GELU, lm_head, no rescale, whatever config style.
    assert (config.tie_word_embeddings, config.scale_decoder_outputs) == (v1_0, v1_0)
    assert (config.activation, config.gated_feed_forward) == (
        ("relu", False) if v1_0 else ("gelu_approximate", True)
    )
    assert (config.num_layers, config.decoder_layers, config.key_dim) == (2, 3, 8)

    arrays, report = expected(case), []
    x = model_inputs(arrays)
    outputs = model.backbone(x)
    assert_close(outputs["encoder_sequence_output"], arrays["encoder_last_hidden_state"], "encoder output", report)
    assert_close(outputs["decoder_sequence_output"], arrays["decoder_last_hidden_state"], "decoder output", report)
    assert_close(model(x)["logits"], arrays["logits"], "logits", report)
    encoder_states, decoder_states = hidden_states(model.backbone, x)
    assert_close(encoder_states, arrays["encoder_hidden_states"], "encoder hidden states", report)
    assert_close(decoder_states, arrays["decoder_hidden_states"], "decoder hidden states", report)
    print(f"{case}/{config_file}: " + "; ".join(report))


@pytest.mark.parametrize("case", ["t5_v1_0", "t5_v1_1"])
def test_cached_greedy_decoding_matches_hugging_face_generate(case):
    """Greedy decoding through `call_with_cache` reproduces HF `generate()` tokens and step logits."""
    model, arrays, report = from_huggingface(os.path.join(FIXTURES, case)), expected(case), []
    steps = int(arrays["gen_max_new_tokens"])
    for row in range(3):
        length = int(arrays["attention_mask"][row].sum())
        source = arrays["input_ids"][row : row + 1, :length]
        source_mask = np.ones_like(source)
        cross_cache = model.compute_cross_attention_cache(model.encode(source, source_mask))
        cache = model.initial_cache(1, steps)
        token, tokens, step_logits = np.zeros((1, 1), "int32"), [], []
        for index in range(steps):
            logits, cache = model.call_with_cache(token, cache, index, cross_cache, source_mask)
            logits = to_numpy(logits)[0, 0]
            token = np.array([[int(np.argmax(logits))]], "int32")
            tokens.append(int(token[0, 0]))
            step_logits.append(logits)
        assert tokens == arrays["gen_tokens"][row, : arrays["gen_lengths"][row]].tolist()
        assert_close(np.stack(step_logits), arrays["gen_step_logits"][row], f"row {row} step logits", report)
    print(f"{case} generate: " + "; ".join(report))


# ------------------------------------------------------------------ broken checkpoints


def _drop(name):
    return lambda tensors: tensors.pop(name)


def _add(name, shape):
    return lambda tensors: tensors.update({name: np.zeros(shape, "float32")})


def _truncate(name):  # drops the last input column
    return lambda tensors: tensors.update({name: np.ascontiguousarray(tensors[name][:, :-1])})


@pytest.mark.parametrize(
    "case,edit_weights,edit_config,match",
    [
        ("t5_v1_0", _drop("encoder.block.1.layer.0.SelfAttention.k.weight"), None,
         "missing weight 'encoder.block.1.layer.0.SelfAttention.k.weight'"),
        ("t5_v1_0", _drop("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"), None,
         "missing weight 'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'"),
        ("t5_v1_1", _drop("encoder.block.0.layer.1.DenseReluDense.wi_1.weight"), None,
         "missing weight 'encoder.block.0.layer.1.DenseReluDense.wi_1.weight'"),
        ("t5_v1_0", _add("decoder.block.2.layer.0.SelfAttention.relative_attention_bias.weight", (8, 4)), None,
         r"unexpected weight.*decoder\.block\.2\.layer\.0\.SelfAttention\.relative_attention_bias"),
        ("t5_v1_1", _add("encoder.block.5.layer.0.SelfAttention.q.weight", (32, 32)), None,
         r"unexpected weight.*encoder\.block\.5"),
        ("t5_v1_0", _truncate("decoder.block.1.layer.1.EncDecAttention.o.weight"), None,
         r"'decoder.block.1.layer.1.EncDecAttention.o.weight' has shape"),
        ("t5_v1_1", _truncate("lm_head.weight"), None, r"'lm_head.weight' has shape"),
        ("t5_v1_1", None, lambda c: c.update(feed_forward_proj="gated-mish"),
         "unsupported T5 feed_forward_proj='gated-mish'"),
        ("t5_v1_0", None, lambda c: c.update(feed_forward_proj="relu-gated"),
         "unsupported T5 feed_forward_proj='relu-gated'"),
        ("t5_v1_0", lambda t: t.update({"encoder.embed_tokens.weight": t["shared.weight"] + 1}), None,
         "'encoder.embed_tokens.weight' differs from 'shared.weight'"),
    ],
    ids=["missing-k", "missing-bias", "missing-wi_1", "extra-bias", "extra-block", "shape-o", "shape-head",
         "activation", "projection", "embed-differs"],
)
def test_broken_checkpoints_raise(tmp_path, case, edit_weights, edit_config, match):
    path = checkpoint_copy(tmp_path, case, edit_config=edit_config, edit_weights=edit_weights)
    with pytest.raises(ValueError, match=match):
        from_huggingface(path)


def test_tolerated_duplicates_and_legacy_buffers(tmp_path):
    """Copies of the shared table and the old unused cross-attention bias load fine."""

    def add(tensors):
        tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"].copy()
        tensors["decoder.embed_tokens.weight"] = tensors["shared.weight"].copy()
        tensors["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = np.ones((8, 4), "float32")

    model, arrays = from_huggingface(checkpoint_copy(tmp_path, "t5_v1_0", edit_weights=add)), expected("t5_v1_0")
    assert_close(model(model_inputs(arrays))["logits"], arrays["logits"], "logits", [])
