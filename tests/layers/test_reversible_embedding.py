import keras
import numpy as np
import pytest

from keras_transformer.layers._checks import check_token_ids, is_concrete
from keras_transformer.layers.masking import get_keras_mask
from keras_transformer.layers.reversible_embedding import ReversibleEmbedding
from tests.test_case import assert_allclose, run_layer_test

VOCAB, DIM = 7, 4
IDS = np.array([[1, 2, 0], [6, 3, 5]], dtype="int32")


def _hidden():
    return np.random.default_rng(0).normal(size=(2, 3, DIM)).astype("float32")


def _set_by_hand(layer):
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(VOCAB, DIM)).astype("float32")
    layer.embeddings.assign(embeddings)
    reverse = None
    if not layer.tie_weights:
        reverse = rng.normal(size=(DIM, VOCAB)).astype("float32")
        layer.reverse_embeddings.assign(reverse)
    return embeddings, reverse


@pytest.mark.parametrize("tie_weights", [True, False])
def test_layer_forward(tie_weights):
    run_layer_test(
        ReversibleEmbedding,
        {"input_dim": VOCAB, "output_dim": DIM, "tie_weights": tie_weights, "mask_zero": True},
        {"inputs": IDS},
        expected_output_shape=(2, 3, DIM),
        expected_num_trainable_weights=1 if tie_weights else 2,
        # Untied: the forward call never touches `reverse_embeddings`.
        run_training_check=tie_weights,
    )


@pytest.mark.parametrize("tie_weights", [True, False])
def test_layer_reverse(tie_weights):
    run_layer_test(
        ReversibleEmbedding,
        {"input_dim": VOCAB, "output_dim": DIM, "tie_weights": tie_weights},
        {"inputs": _hidden()},
        call_kwargs={"reverse": True},
        expected_output_shape=(2, 3, VOCAB),
        expected_num_trainable_weights=1 if tie_weights else 2,
        run_training_check=tie_weights,
    )


def test_layer_reverse_dtype_float32():
    # Logits in float32 by design, so the harness' "outputs in the compute dtype"
    # precision check does not apply; test_reverse_dtype_under_mixed_precision covers it.
    run_layer_test(
        ReversibleEmbedding,
        {"input_dim": VOCAB, "output_dim": DIM, "reverse_dtype": "float32"},
        {"inputs": _hidden()},
        call_kwargs={"reverse": True},
        expected_output_shape=(2, 3, VOCAB),
        run_precision_checks=False,
        run_training_check=False,
    )


@pytest.mark.parametrize("tie_weights", [True, False])
def test_forward_and_reverse_values(tie_weights):
    layer = ReversibleEmbedding(VOCAB, DIM, tie_weights=tie_weights)
    layer.build()
    embeddings, reverse = _set_by_hand(layer)
    hidden = layer(IDS)
    assert_allclose(hidden, embeddings[IDS])
    logits = layer(hidden, reverse=True)
    kernel = embeddings.T if tie_weights else reverse
    expected = embeddings[IDS].astype("float64") @ kernel.astype("float64")
    assert_allclose(logits, expected, atol=1e-5)
    if tie_weights:  # forward then reverse == x @ E^T with x = E[ids]
        assert_allclose(logits, np.einsum("bld,vd->blv", embeddings[IDS], embeddings), atol=1e-5)


def test_reverse_dtype_under_mixed_precision():
    layer = ReversibleEmbedding(VOCAB, DIM, reverse_dtype="float32", dtype="mixed_float16")
    layer.build()
    embeddings, _ = _set_by_hand(layer)
    hidden = _hidden()
    assert keras.backend.standardize_dtype(layer(IDS).dtype) == "float16"
    logits = layer(hidden, reverse=True)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    # Full float32 accuracy, far tighter than a float16 matmul would give.
    assert_allclose(logits, hidden.astype("float64") @ embeddings.T.astype("float64"), atol=1e-5)
    compute = ReversibleEmbedding(VOCAB, DIM, dtype="mixed_float16")
    compute.build()
    _set_by_hand(compute)
    assert keras.backend.standardize_dtype(compute(hidden, reverse=True).dtype) == "float16"


@pytest.mark.parametrize("bad_id", [VOCAB, -1])
def test_out_of_range_id_raises_in_eager_call(bad_id):
    layer = ReversibleEmbedding(VOCAB, DIM)
    ids = np.array([[1, bad_id, 2]], dtype="int32")
    with pytest.raises(ValueError, match=rf"token id {bad_id} .*vocabulary_size={VOCAB}"):
        layer(ids)
    # The boundary ids are fine.
    layer(np.array([[0, VOCAB - 1]], dtype="int32"))


def test_check_token_ids_and_is_concrete_when_traced():
    ids = keras.ops.convert_to_tensor(np.array([[3, 9]], dtype="int32"))
    assert is_concrete(ids)
    assert not is_concrete(keras.KerasTensor((None, 2), dtype="int32"))
    with pytest.raises(ValueError, match="token id 9"):
        check_token_ids(ids, 5, "probe")
    seen = []

    def traced(x):
        seen.append(is_concrete(x))
        check_token_ids(x, 5, "probe")  # values unknown: must not raise
        return x

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.function(traced)(ids)
    elif keras.backend.backend() == "jax":
        import jax

        jax.jit(traced)(ids)
    else:
        seen.append(False)  # torch/numpy have no tracing of this kind
    assert seen == [False]


def test_mask_zero_propagates():
    layer = ReversibleEmbedding(VOCAB, DIM, mask_zero=True)
    hidden = layer(IDS)
    assert_allclose(get_keras_mask(hidden), IDS != 0)
    # A reverse call keeps the (batch, length) mask of its hidden states.
    assert_allclose(get_keras_mask(layer(hidden, reverse=True)), IDS != 0)
    assert get_keras_mask(ReversibleEmbedding(VOCAB, DIM)(IDS)) is None

    # In a functional model the mask reaches a downstream mask-aware layer.
    inputs = keras.Input((3,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(layer(inputs))
    model = keras.Model(inputs, pooled)
    table = keras.ops.convert_to_numpy(layer.embeddings)
    keep = (IDS != 0)[..., None]
    expected = (table[IDS] * keep).sum(1) / keep.sum(1)
    assert_allclose(model(IDS), expected, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"input_dim": 0, "output_dim": DIM}, "input_dim"),
        ({"input_dim": VOCAB, "output_dim": -2}, "output_dim"),
        ({"input_dim": VOCAB, "output_dim": 2.5}, "output_dim"),
        ({"input_dim": VOCAB, "output_dim": DIM, "tie_weights": "yes"}, "tie_weights"),
        ({"input_dim": VOCAB, "output_dim": DIM, "mask_zero": 1}, "mask_zero"),
        ({"input_dim": VOCAB, "output_dim": DIM, "reverse_dtype": "int32"}, "reverse_dtype"),
        ({"input_dim": VOCAB, "output_dim": DIM, "reverse_dtype": "fp99"}, "reverse_dtype"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"{name}.*received {name}="):
        ReversibleEmbedding(**kwargs)
