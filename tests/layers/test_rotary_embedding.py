import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.layers import RotaryEmbedding
from tests import reference
from tests.test_case import assert_allclose, run_layer_test

BATCH, LENGTH, DIM, HEADS, HEAD_DIM = 2, 5, 8, 2, 4


def normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def compiled_with_traced_start(layer, shape):
    """A jit-compiled model calling `layer(x, start_index=s)`, `s` a traced scalar."""
    x = keras.Input(shape=shape[1:], name="x")
    start = keras.Input(shape=(), dtype="int32", name="start")
    model = keras.Model({"x": x, "start": start}, layer(x, start_index=start[0]))
    model.compile(jit_compile=True)

    def run(x_value, start_value):
        feed = {"x": x_value, "start": np.full((len(x_value),), start_value, "int32")}
        return model.predict(feed, batch_size=len(x_value), verbose=0)

    return run


@pytest.mark.parametrize(
    "init_kwargs,shape",
    [
        ({}, (BATCH, LENGTH, DIM)),
        ({"max_wavelength": 100, "scaling_factor": 2.0}, (BATCH, LENGTH, HEADS, HEAD_DIM)),
    ],
)
def test_layer_harness(init_kwargs, shape):
    run_layer_test(RotaryEmbedding, init_kwargs, {"inputs": normal(*shape)}, shape)


@pytest.mark.parametrize(
    "shape,max_wavelength,scaling_factor",
    [
        ((BATCH, LENGTH, DIM), 10000, 1.0),
        ((BATCH, LENGTH, HEADS, HEAD_DIM), 10000, 1.0),
        ((BATCH, LENGTH, HEADS, HEAD_DIM), 50, 4.0),
        ((BATCH, LENGTH, 2), 10, 0.5),
    ],
)
def test_matches_numpy_reference(shape, max_wavelength, scaling_factor):
    x = normal(*shape)
    layer = RotaryEmbedding(max_wavelength=max_wavelength, scaling_factor=scaling_factor)
    expected = reference.rotary(x, np.arange(LENGTH), max_wavelength, scaling_factor)
    assert_allclose(layer(x), expected, atol=1e-5)


def test_hand_computed_rotation():
    # dim 2: one pair rotated by angle p; position 1 turns (1, 0) into (cos 1, sin 1).
    x = np.array([[[1.0, 0.0], [1.0, 0.0]]], "float32")
    out = ops.convert_to_numpy(RotaryEmbedding()(x))
    np.testing.assert_allclose(out[0, 0], [1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(out[0, 1], [np.cos(1.0), np.sin(1.0)], atol=1e-6)
    # dim 4: features (0, 2) and (1, 3) pair up ("rotate half", not interleaved).
    x = np.array([[[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]], "float32")
    out = ops.convert_to_numpy(RotaryEmbedding()(x))
    np.testing.assert_allclose(out[0, 1], [np.cos(1.0), 0.0, np.sin(1.0), 0.0], atol=1e-6)


def test_position_zero_is_identity():
    x = normal(BATCH, LENGTH, HEADS, HEAD_DIM)
    assert_allclose(RotaryEmbedding()(x)[:, 0], x[:, 0], atol=1e-6)


def test_preserves_the_norm_of_each_pair():
    x = normal(BATCH, LENGTH, HEADS, DIM)
    out = ops.convert_to_numpy(RotaryEmbedding(max_wavelength=30)(x))
    half = DIM // 2
    norms_in = np.hypot(x[..., :half], x[..., half:])
    norms_out = np.hypot(out[..., :half], out[..., half:])
    np.testing.assert_allclose(norms_out, norms_in, rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[:, 1:], x[:, 1:], atol=1e-2)  # it did rotate


def test_dot_products_depend_only_on_the_offset():
    layer = RotaryEmbedding(max_wavelength=100)
    q, k = normal(1, 1, DIM, seed=1), normal(1, 1, DIM, seed=2)

    def score(query_position, key_position):
        rq = ops.convert_to_numpy(layer(q, start_index=query_position))
        rk = ops.convert_to_numpy(layer(k, start_index=key_position))
        return float(np.sum(rq * rk))

    same_offset = [score(3, 1), score(7, 5), score(12, 10), score(2, 0)]
    np.testing.assert_allclose(same_offset, same_offset[0], rtol=1e-4, atol=1e-5)
    assert abs(score(3, 0) - same_offset[0]) > 1e-3  # a different offset differs


@pytest.mark.parametrize("start", [4, "tensor"])
def test_start_index_matches_full_sequence(start):
    layer = RotaryEmbedding()
    x = normal(BATCH, 7, HEADS, HEAD_DIM)
    full = ops.convert_to_numpy(layer(x))
    start = ops.convert_to_tensor(4, "int32") if start == "tensor" else start
    assert_allclose(layer(x[:, 4:7], start_index=start), full[:, 4:7], atol=1e-6)


def test_start_index_traced_inside_jit_compiled_model():
    layer = RotaryEmbedding()
    x = normal(BATCH, 3, HEADS, HEAD_DIM)
    run = compiled_with_traced_start(layer, x.shape)
    for start in (4, 0, 9):
        expected = reference.rotary(x, np.arange(start, start + 3), 10000, 1.0)
        assert_allclose(run(x, start), expected, atol=1e-5)


def test_dynamic_length_in_compiled_model():
    x = keras.Input(shape=(None, HEADS, HEAD_DIM))
    model = keras.Model(x, RotaryEmbedding()(x))
    for length in (3, 6):
        value = normal(BATCH, length, HEADS, HEAD_DIM)
        expected = reference.rotary(value, np.arange(length), 10000, 1.0)
        assert_allclose(model.predict(value, verbose=0), expected, atol=1e-5)


def test_other_axes_match_transposed_default():
    x = normal(BATCH, LENGTH, HEADS, HEAD_DIM)  # (batch, length, heads, head_dim)
    expected = ops.convert_to_numpy(RotaryEmbedding()(x))
    # (batch, heads, length, head_dim)
    heads_first = RotaryEmbedding(sequence_axis=2)(np.transpose(x, (0, 2, 1, 3)))
    assert_allclose(heads_first, np.transpose(expected, (0, 2, 1, 3)), atol=1e-6)
    # (batch, head_dim, length, heads): features before positions.
    features_first = RotaryEmbedding(sequence_axis=-2, feature_axis=1)(np.transpose(x, (0, 3, 1, 2)))
    assert_allclose(features_first, np.transpose(expected, (0, 3, 1, 2)), atol=1e-6)


def test_mixed_precision_output_dtype():
    out = RotaryEmbedding(dtype="mixed_float16")(normal(BATCH, LENGTH, DIM))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"


@pytest.mark.parametrize("name", ["max_wavelength", "scaling_factor"])
@pytest.mark.parametrize("bad", [0, -2.0, "1"])
def test_rejects_non_positive_numbers(name, bad):
    with pytest.raises(ValueError, match=f"received {name}="):
        RotaryEmbedding(**{name: bad})


def test_rejects_same_axes():
    with pytest.raises(ValueError, match="sequence_axis=1, feature_axis=1"):
        RotaryEmbedding(sequence_axis=1, feature_axis=1)
    with pytest.raises(ValueError, match="sequence_axis=2, feature_axis=-1"):
        RotaryEmbedding(sequence_axis=2)(normal(BATCH, LENGTH, DIM))
    with pytest.raises(ValueError, match="sequence_axis must be an int"):
        RotaryEmbedding(sequence_axis=1.0)


def test_rejects_axis_out_of_range():
    with pytest.raises(ValueError, match="sequence_axis=3"):
        RotaryEmbedding(sequence_axis=3)(normal(BATCH, LENGTH, DIM))


def test_rejects_odd_dim():
    with pytest.raises(ValueError, match="dim=7"):
        RotaryEmbedding()(normal(BATCH, LENGTH, 7))


def test_rejects_negative_start_index():
    with pytest.raises(ValueError, match="start_index=-1"):
        RotaryEmbedding()(normal(BATCH, LENGTH, DIM), start_index=-1)
