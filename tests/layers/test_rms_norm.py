import keras
import numpy as np
import pytest

from keras_transformer.layers.masking import get_keras_mask
from keras_transformer.layers.rms_norm import RMSNorm
from tests import reference
from tests.test_case import assert_allclose, run_layer_test


def _x(shape=(2, 3, 4), offset=0.0):
    return (np.random.default_rng(0).normal(size=shape) + offset).astype("float32")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"epsilon": 1e-5, "axis": 1, "scale_initializer": "random_normal"}],
)
def test_layer(kwargs):
    run_layer_test(
        RMSNorm,
        kwargs,
        {"inputs": _x()},
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=1,
    )


@pytest.mark.parametrize("epsilon", [1e-6, 0.5])
@pytest.mark.parametrize("axis", [-1, 1])
def test_matches_reference(epsilon, axis):
    x = _x(offset=1.5)  # non-zero mean: RMSNorm must not subtract it
    layer = RMSNorm(epsilon=epsilon, axis=axis)
    layer.build(x.shape)
    scale = np.random.default_rng(5).normal(size=(x.shape[axis],)).astype("float32")
    layer.scale.assign(scale)
    assert tuple(layer.scale.shape) == (x.shape[axis],)
    assert_allclose(layer(x), reference.rms_norm(x, scale, epsilon, axis=axis), atol=1e-5)


def test_golden_value():
    # rms([3, 4]) = sqrt(12.5): [3, 4] / 3.5355339 = [0.8485281, 1.1313708].
    out = RMSNorm(epsilon=1e-6)(np.array([[[3.0, 4.0]]], "float32"))
    assert_allclose(out, np.array([[[0.84852810, 1.13137080]]]), atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_computes_in_float32_under_mixed_precision(policy):
    # Squares of ~1000 overflow float16 (max 65504): only a float32 upcast stays finite.
    x = _x() * 1000.0
    scale = np.linspace(0.5, 1.5, 4).astype("float32")
    layer = RMSNorm(dtype=policy)
    layer.build(x.shape)
    layer.scale.assign(scale)
    compute = keras.mixed_precision.Policy(policy).compute_dtype
    expected = reference.rms_norm(x, scale, 1e-6)
    for inputs in (x, keras.ops.cast(x, compute)):
        out = layer(inputs)
        assert keras.backend.standardize_dtype(out.dtype) == compute
        assert keras.backend.standardize_dtype(layer.scale.dtype) == "float32"
        out = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
        assert np.all(np.isfinite(out))
        assert_allclose(out, expected, atol=2e-2, rtol=1e-2)


def test_mask_passes_through():
    x = keras.ops.convert_to_tensor(_x())
    mask = np.array([[True, True, False], [True, False, False]])
    keras.src.backend.set_keras_mask(x, keras.ops.convert_to_tensor(mask))
    assert_allclose(get_keras_mask(RMSNorm()(x)), mask)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epsilon": 0}, "epsilon.*received epsilon=0"),
        ({"epsilon": -1e-6}, "epsilon.*received epsilon=-1e-06"),
        ({"epsilon": "1e-6"}, "epsilon.*received epsilon='1e-6'"),
        ({"axis": 1.0}, "axis.*received axis=1.0"),
        ({"axis": [1, 2]}, r"axis.*received axis=\[1, 2\]"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RMSNorm(**kwargs)


def test_axis_out_of_range_at_build():
    with pytest.raises(ValueError, match=r"axis=3 is out of range .*rank 3"):
        RMSNorm(axis=3)(_x())
