import keras
import numpy as np
import pytest

from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.masking import get_keras_mask
from tests import reference
from tests.test_case import assert_allclose, run_layer_test

DIM, HIDDEN = 4, 6


def _x(shape=(2, 3, DIM)):
    return np.random.default_rng(0).normal(size=shape).astype("float32")


@keras.saving.register_keras_serializable(package="keras_transformer_tests")
def _squared_relu(x):
    return keras.ops.square(keras.ops.relu(x))


@pytest.mark.parametrize(
    "kwargs, num_weights, output_dim",
    [
        ({"activation": "relu"}, 4, DIM),
        ({"activation": "gelu", "gated": True, "use_bias": False, "output_dim": 5}, 3, 5),
        ({"activation": "gelu_approximate", "dropout": 0.1}, 4, DIM),
        ({"activation": "silu", "gated": True}, 6, DIM),
        ({"activation": _squared_relu, "use_bias": False}, 2, DIM),
    ],
)
def test_layer(kwargs, num_weights, output_dim):
    run_layer_test(
        FeedForward,
        {"intermediate_dim": HIDDEN, **kwargs},
        {"inputs": _x()},
        expected_output_shape=(2, 3, output_dim),
        expected_num_trainable_weights=num_weights,
    )


def _set_weights(layer, rng):
    """Random weights (biases too) set by hand; returns them for the reference."""
    weights = {}
    for name in ("intermediate", "gate", "output"):
        dense = getattr(layer, f"{name}_dense")
        if dense is None:
            continue
        kernel = rng.normal(size=tuple(dense.kernel.shape)).astype("float32")
        dense.kernel.assign(kernel)
        weights[f"{name}_kernel"] = kernel
        if dense.use_bias:
            bias = rng.normal(size=tuple(dense.bias.shape)).astype("float32")
            dense.bias.assign(bias)
            weights[f"{name}_bias"] = bias
    return weights


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_approximate", "silu", "swish"])
def test_matches_reference(activation, gated):
    layer = FeedForward(HIDDEN, activation=activation, gated=gated, output_dim=3)
    x = _x((2, 5, DIM)) * 2.0
    layer.build(x.shape)
    weights = _set_weights(layer, np.random.default_rng(7))
    assert ("gate_kernel" in weights) == gated
    expected = reference.feed_forward(x, weights, activation, gated=gated)
    assert_allclose(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_gelu_is_exact_not_tanh():
    # At x = -3 the two forms differ by ~3e-4, far above float32 error.
    x = np.array([-3.0, -1.5, -0.5, 0.7, 2.0])
    assert np.max(np.abs(reference.gelu_exact(x) - reference.gelu_tanh(x))) > 1e-4
    forms = (("gelu", reference.gelu_exact), ("gelu_approximate", reference.gelu_tanh))
    for name, formula in forms:
        layer = FeedForward(1, activation=name, use_bias=False, output_dim=1)
        layer.build((None, 1))
        layer.intermediate_dense.kernel.assign(np.ones((1, 1), "float32"))
        layer.output_dense.kernel.assign(np.ones((1, 1), "float32"))
        got = layer(x[:, None].astype("float32"))[:, 0]
        assert_allclose(got, formula(x), atol=2e-6, rtol=0, msg=name)


def test_dropout_only_in_training():
    layer = FeedForward(64, dropout=0.5)
    x = _x((2, 3, DIM))
    assert_allclose(layer(x), layer(x, training=False))
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x, training=True)),
                           keras.ops.convert_to_numpy(layer(x)))


def test_sublayer_names_and_shapes():
    layer = FeedForward(HIDDEN, gated=True, output_dim=3)
    layer.build((None, 5, DIM))
    assert layer.intermediate_dense.name == "intermediate_dense"
    assert layer.gate_dense.name == "gate_dense"
    assert layer.output_dense.name == "output_dense"
    assert tuple(layer.gate_dense.kernel.shape) == (DIM, HIDDEN)
    assert tuple(layer.output_dense.kernel.shape) == (HIDDEN, 3)
    assert FeedForward(HIDDEN).gate_dense is None


def test_mask_passes_through():
    inputs = keras.Input((3,), dtype="int32")
    hidden = keras.layers.Embedding(10, DIM, mask_zero=True)(inputs)
    outputs = FeedForward(HIDDEN)(hidden)
    pooled = keras.layers.GlobalAveragePooling1D()(outputs)
    ids = np.array([[4, 5, 0], [1, 0, 0]], dtype="int32")
    model = keras.Model(inputs, [outputs, pooled])
    full, mean = model(ids)
    full = keras.ops.convert_to_numpy(full)
    keep = (ids != 0)[..., None]
    assert_allclose(mean, (full * keep).sum(1) / keep.sum(1), atol=1e-6)
    mask = keras.ops.convert_to_tensor(ids != 0)
    x = keras.ops.convert_to_tensor(_x())
    keras.src.backend.set_keras_mask(x, mask)
    assert_allclose(get_keras_mask(FeedForward(HIDDEN)(x)), ids != 0)


@pytest.mark.parametrize(
    "kwargs, name, received",
    [
        ({"intermediate_dim": 0}, "intermediate_dim", "0"),
        ({"intermediate_dim": 2.0}, "intermediate_dim", "2.0"),
        ({"activation": "gelu_fast"}, "activation", "'gelu_fast'"),
        ({"activation": 3}, "activation", "3"),
        ({"dropout": 1.0}, "dropout", "1.0"),
        ({"dropout": -0.1}, "dropout", "-0.1"),
        ({"output_dim": 0}, "output_dim", "0"),
        ({"gated": "yes"}, "gated", "'yes'"),
        ({"use_bias": None}, "use_bias", "None"),
    ],
)
def test_bad_arguments(kwargs, name, received):
    kwargs = {"intermediate_dim": HIDDEN, **kwargs}
    with pytest.raises(ValueError) as info:
        FeedForward(**kwargs)
    assert f"{name}=" in str(info.value) and f"{name}={received}" in str(info.value)
