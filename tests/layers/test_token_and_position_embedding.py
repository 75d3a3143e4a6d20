import warnings

import keras
import numpy as np
import pytest

from keras_transformer.layers.masking import get_keras_mask
from keras_transformer.layers.reversible_embedding import ReversibleEmbedding
from keras_transformer.layers.token_and_position_embedding import TokenAndPositionEmbedding
from tests import reference
from tests.test_case import assert_allclose, run_layer_test

VOCAB, SEQ, DIM = 11, 6, 4
IDS = np.array([[3, 1, 0], [10, 2, 7]], dtype="int32")


def _layer(**kwargs):
    kwargs = {"vocabulary_size": VOCAB, "sequence_length": SEQ, "embedding_dim": DIM, **kwargs}
    return TokenAndPositionEmbedding(**kwargs)


@pytest.mark.parametrize(
    "position_encoding, mask_zero, num_weights",
    [("learned", False, 2), ("sinusoidal", True, 1), (None, False, 1)],
)
def test_layer(position_encoding, mask_zero, num_weights):
    run_layer_test(
        TokenAndPositionEmbedding,
        {
            "vocabulary_size": VOCAB,
            "sequence_length": SEQ,
            "embedding_dim": DIM,
            "position_encoding": position_encoding,
            "mask_zero": mask_zero,
        },
        {"inputs": IDS},
        expected_output_shape=(2, 3, DIM),
        expected_num_trainable_weights=num_weights,
    )


def test_layer_untied_with_start_index():
    run_layer_test(
        TokenAndPositionEmbedding,
        {"vocabulary_size": VOCAB, "sequence_length": SEQ, "embedding_dim": DIM,
         "tie_weights": False},
        {"inputs": IDS},
        call_kwargs={"start_index": 2},
        expected_output_shape=(2, 3, DIM),
        expected_num_trainable_weights=3,
        run_training_check=False,  # `reverse_embeddings` gets no gradient from a forward call
    )


def test_layer_reverse_call():
    run_layer_test(
        TokenAndPositionEmbedding,
        {"vocabulary_size": VOCAB, "sequence_length": SEQ, "embedding_dim": DIM},
        {"inputs": np.random.default_rng(3).normal(size=(2, 3, DIM)).astype("float32")},
        call_kwargs={"reverse": True},
        expected_output_shape=(2, 3, VOCAB),
    )


def _set_tokens(layer):
    table = np.random.default_rng(2).normal(size=(VOCAB, DIM)).astype("float32")
    layer.token_embedding.embeddings.assign(table)
    return table


@pytest.mark.parametrize("start_index", [0, 2])
def test_learned_values(start_index):
    layer = _layer(position_encoding="learned")
    layer.build(IDS.shape)
    tokens = _set_tokens(layer)
    positions = np.random.default_rng(3).normal(size=(SEQ, DIM)).astype("float32")
    layer.position_embedding.embeddings.assign(positions)
    expected = tokens[IDS] + positions[start_index:start_index + 3][None]
    assert_allclose(layer(IDS, start_index=start_index), expected, atol=1e-6)


@pytest.mark.parametrize("start_index", [0, 3])
def test_sinusoidal_values(start_index):
    layer = _layer(position_encoding="sinusoidal")
    layer.build(IDS.shape)
    tokens = _set_tokens(layer)
    table = reference.sinusoidal_table(np.arange(start_index, start_index + 3), DIM)
    expected = tokens[IDS].astype("float64") + table[None]
    assert_allclose(layer(IDS, start_index=start_index), expected, atol=1e-5)
    # A tensor start index gives the same result.
    tensor_start = keras.ops.convert_to_tensor(start_index, dtype="int32")
    assert_allclose(layer(IDS, start_index=tensor_start), expected, atol=1e-5)


def test_no_position_encoding_and_tied_output():
    layer = _layer(position_encoding=None)
    layer.build(IDS.shape)
    tokens = _set_tokens(layer)
    assert layer.position_embedding is None
    assert isinstance(layer.token_embedding, ReversibleEmbedding)
    hidden = layer(IDS, start_index=4)  # ignored without a position encoding
    assert_allclose(hidden, tokens[IDS])
    # The token embedding doubles as the tied output projection: x @ E^T.
    logits = layer(hidden, reverse=True)
    assert tuple(logits.shape) == (2, 3, VOCAB)
    assert_allclose(layer.token_embedding(hidden, reverse=True), logits)
    expected = tokens[IDS].astype("float64") @ tokens.T.astype("float64")
    assert_allclose(logits, expected, atol=1e-5)


def test_mask_zero():
    layer = _layer(position_encoding="learned", mask_zero=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a sublayer dropping the mask
        outputs = layer(IDS)
    assert_allclose(get_keras_mask(outputs), IDS != 0)
    assert get_keras_mask(_layer()(IDS)) is None

    inputs = keras.Input((3,), dtype="int32")
    symbolic = layer(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(symbolic)
    model = keras.Model(inputs, pooled)
    values = keras.ops.convert_to_numpy(outputs)
    keep = (IDS != 0)[..., None]
    assert_allclose(model(IDS), (values * keep).sum(1) / keep.sum(1), atol=1e-6)


def test_out_of_range_id_raises():
    with pytest.raises(ValueError, match=rf"token id {VOCAB} .*vocabulary_size={VOCAB}"):
        _layer()(np.array([[1, VOCAB]], dtype="int32"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary_size": 0}, "vocabulary_size.*received vocabulary_size=0"),
        ({"sequence_length": -1}, "sequence_length.*received sequence_length=-1"),
        ({"embedding_dim": "4"}, "embedding_dim.*received embedding_dim='4'"),
        ({"position_encoding": "rotary"},
         r"position_encoding must be one of \('learned', 'sinusoidal', None\).*'rotary'"),
        ({"mask_zero": "yes"}, "mask_zero.*received mask_zero='yes'"),
        ({"tie_weights": None}, "tie_weights.*received tie_weights=None"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _layer(**kwargs)
