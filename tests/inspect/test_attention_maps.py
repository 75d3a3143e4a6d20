"""Attention maps equal transformers' `output_attentions` on the imported fixtures (every backend)."""

import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.convert import from_huggingface
from keras_transformer.inspect import attention_maps

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface")


def _load(case):
    with np.load(os.path.join(FIXTURES, case, "expected.npz")) as data:
        expected = dict(data)
    with np.load(os.path.join(FIXTURES, case, "attentions.npz")) as data:
        attentions = dict(data)
    return from_huggingface(os.path.join(FIXTURES, case)), expected, attentions


def _inputs(case, expected):
    if case == "bert":
        ids = expected["input_ids"]
        return {"token_ids": ids, "segment_ids": expected["token_type_ids"], "padding_mask": expected["attention_mask"],
                "mask_positions": np.tile(np.arange(ids.shape[1], dtype="int32"), (len(ids), 1))}
    if case == "gpt2":
        return {"token_ids": expected["input_ids"], "padding_mask": expected["attention_mask"]}
    return {"encoder_token_ids": expected["input_ids"], "encoder_padding_mask": expected["attention_mask"],
            "decoder_token_ids": expected["decoder_input_ids"],
            "decoder_padding_mask": expected["decoder_attention_mask"]}


def _query_mask(case, group, expected):
    """(batch, query) bool: the real query positions of a group's maps."""
    name = "decoder_attention_mask" if case == "t5_v1_0" and group != "encoder" else "attention_mask"
    return expected[name].astype(bool)


@pytest.mark.parametrize("case", ["bert", "gpt2", "t5_v1_0"])
def test_attention_maps_equal_transformers(case):
    model, expected, attentions = _load(case)
    maps = attention_maps(model, _inputs(case, expected))
    assert sorted(maps) == sorted(attentions)
    for group, theirs in attentions.items():
        assert len(maps[group]) == len(theirs)
        # Rows of padded queries are padding in both libraries: compared where the query is real.
        real = _query_mask(case, group, expected)
        for layer, (ours, reference) in enumerate(zip(maps[group], theirs)):
            assert ours.shape == reference.shape, (group, layer, ours.shape, reference.shape)
            difference = np.abs(ours - reference).max(axis=(1, 3))  # (batch, query)
            assert difference[real].max() < 1e-5, (group, layer, difference[real].max())
            rows = np.broadcast_to(real[:, None], ours.shape[:3])  # (batch, heads, query)
            np.testing.assert_allclose(ours.sum(-1)[rows], 1.0, atol=1e-5)


def test_fused_path_is_back_after_the_call_and_errors_name_the_problem():
    model, expected, _ = _load("gpt2")
    inputs = _inputs("gpt2", expected)
    before = ops.convert_to_numpy(model(inputs)["logits"])
    attention_maps(model, inputs)
    layer = model.backbone.decoder_blocks[0].self_attention
    assert "_compute_attention" not in vars(layer)  # the instance override is gone
    np.testing.assert_allclose(ops.convert_to_numpy(model(inputs)["logits"]), before, atol=1e-6)
    with pytest.raises(ValueError, match="no encoder_blocks or decoder_blocks"):
        attention_maps(keras.Sequential([keras.layers.Dense(2)]), np.zeros((1, 3)))


def test_vit_attention_maps_equal_transformers():
    folder = os.path.join(FIXTURES, "vit_model")
    with np.load(os.path.join(folder, "expected.npz")) as data:
        expected = dict(data)
    maps = attention_maps(from_huggingface(folder), {"images": expected["images"]})
    assert list(maps) == ["encoder"] and len(maps["encoder"]) == len(expected["attentions"])
    for ours, reference in zip(maps["encoder"], expected["attentions"]):  # (batch, heads, 1 + patches, 1 + patches)
        np.testing.assert_allclose(ours, reference, atol=1e-5)
