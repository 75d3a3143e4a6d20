import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.layers import SinusoidalPositionEncoding
from tests import reference
from tests.test_case import assert_allclose, run_layer_test

BATCH, LENGTH, DIM = 2, 5, 8


def normal(*shape):
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def compiled_with_traced_start(layer, length, dim):
    """A jit-compiled model calling `layer(x, start_index=s)`, `s` a traced scalar."""
    x = keras.Input(shape=(length, dim), name="x")
    start = keras.Input(shape=(), dtype="int32", name="start")
    model = keras.Model({"x": x, "start": start}, layer(x, start_index=start[0]))
    model.compile(jit_compile=True)

    def run(x_value, start_value):
        feed = {"x": x_value, "start": np.full((len(x_value),), start_value, "int32")}
        return model.predict(feed, batch_size=len(x_value), verbose=0)

    return run


def test_layer_harness():
    run_layer_test(
        SinusoidalPositionEncoding,
        {"max_wavelength": 100},
        {"inputs": normal(BATCH, LENGTH, DIM)},
        (BATCH, LENGTH, DIM),
    )


@pytest.mark.parametrize("max_wavelength", [10000, 100, 7.5])
def test_matches_numpy_reference(max_wavelength):
    out = SinusoidalPositionEncoding(max_wavelength=max_wavelength)(normal(BATCH, LENGTH, DIM))
    expected = reference.sinusoidal_table(np.arange(LENGTH), DIM, max_wavelength)
    for b in range(BATCH):
        assert_allclose(out[b], expected, atol=1e-6)


def test_hand_computed_values():
    out = ops.convert_to_numpy(SinusoidalPositionEncoding()(np.zeros((1, 2, 4), "float32")))
    # Position 0: sin(0) = 0, cos(0) = 1, interleaved.
    np.testing.assert_allclose(out[0, 0], [0.0, 1.0, 0.0, 1.0], atol=1e-7)
    # Position 1, dim 4: pair 0 has wavelength 1, pair 1 has 10000^(2/4) = 100.
    expected = [math.sin(1.0), math.cos(1.0), math.sin(0.01), math.cos(0.01)]
    np.testing.assert_allclose(out[0, 1], expected, atol=1e-6)


def test_output_does_not_depend_on_input_values():
    layer = SinusoidalPositionEncoding()
    assert_allclose(layer(normal(1, LENGTH, DIM)), layer(np.zeros((1, LENGTH, DIM), "float32")))


@pytest.mark.parametrize("start", [4, "tensor"])
def test_start_index_slices_the_table(start):
    layer = SinusoidalPositionEncoding()
    full = ops.convert_to_numpy(layer(np.zeros((BATCH, 7, DIM), "float32")))
    start = ops.convert_to_tensor(4, "int32") if start == "tensor" else start
    part = layer(np.zeros((BATCH, 3, DIM), "float32"), start_index=start)
    assert tuple(part.shape) == (BATCH, 3, DIM)
    assert_allclose(part, full[:, 4:7], atol=1e-6)


def test_start_index_traced_inside_jit_compiled_model():
    layer = SinusoidalPositionEncoding()
    table = reference.sinusoidal_table(np.arange(7), DIM, 10000)
    run = compiled_with_traced_start(layer, 3, DIM)
    x = np.zeros((BATCH, 3, DIM), "float32")
    for start in (4, 0, 2):  # the same compiled function, different traced starts
        out = run(x, start)
        for b in range(BATCH):
            assert_allclose(out[b], table[start:start + 3], atol=1e-5)


def test_large_start_index_against_reference():
    out = SinusoidalPositionEncoding()(np.zeros((1, 3, DIM), "float32"), start_index=1000)
    expected = reference.sinusoidal_table(np.arange(1000, 1003), DIM, 10000)
    # float32 angles near 1000 carry ~1e-4 absolute error.
    assert_allclose(out[0], expected, atol=3e-4)


def test_dynamic_length_in_compiled_model():
    x = keras.Input(shape=(None, DIM))
    model = keras.Model(x, SinusoidalPositionEncoding()(x))
    for length in (3, 6):
        out = model.predict(np.zeros((BATCH, length, DIM), "float32"), verbose=0)
        expected = reference.sinusoidal_table(np.arange(length), DIM, 10000)
        assert_allclose(out[1], expected, atol=1e-5)


def test_mixed_precision_output_dtype():
    out = SinusoidalPositionEncoding(dtype="mixed_bfloat16")(normal(BATCH, LENGTH, DIM))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"


@pytest.mark.parametrize("bad", [0, -1.0, "10000", None])
def test_rejects_non_positive_max_wavelength(bad):
    with pytest.raises(ValueError, match=r"max_wavelength.*received max_wavelength="):
        SinusoidalPositionEncoding(max_wavelength=bad)


def test_rejects_odd_dim():
    with pytest.raises(ValueError, match="dim=7"):
        SinusoidalPositionEncoding()(np.zeros((BATCH, LENGTH, 7), "float32"))


def test_rejects_negative_start_index():
    with pytest.raises(ValueError, match="start_index=-1"):
        SinusoidalPositionEncoding()(np.zeros((BATCH, LENGTH, DIM), "float32"), start_index=-1)
