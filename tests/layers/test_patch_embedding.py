"""PatchEmbedding: generic layer checks, a NumPy golden case, position resampling."""

import numpy as np
import pytest

from keras_transformer.layers import PatchEmbedding
from keras_transformer.layers.patch_embedding import bicubic_matrix
from tests.test_case import assert_allclose, run_layer_test, to_numpy


def images(batch=2, height=8, width=8, channels=3):
    return np.random.default_rng(0).normal(size=(batch, height, width, channels)).astype("float32")


def test_layer_contract():
    run_layer_test(
        PatchEmbedding,
        {"image_size": 8, "patch_size": 4, "hidden_dim": 6},
        {"images": images()},
        (2, 5, 6),
        expected_num_trainable_weights=4,  # kernel, bias, class token, positions
    )


def test_golden_against_numpy():
    layer = PatchEmbedding(image_size=8, patch_size=4, hidden_dim=6)
    x = images()
    out = to_numpy(layer(x))
    kernel = to_numpy(layer.projection.kernel).astype("float64")  # (4, 4, 3, 6)
    bias = to_numpy(layer.projection.bias).astype("float64")
    positions = to_numpy(layer.position_embeddings).astype("float64")
    token = to_numpy(layer.class_token).astype("float64")[0, 0]
    expected = np.zeros((2, 5, 6))
    for b in range(2):
        expected[b, 0] = token + positions[0]
        for r in range(2):
            for c in range(2):
                patch = x[b, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].astype("float64")
                value = np.einsum("hwc,hwcd->d", patch, kernel) + bias
                expected[b, 1 + 2 * r + c] = value + positions[1 + 2 * r + c]
    assert_allclose(out, expected, atol=1e-5)


def test_without_class_token_and_other_sizes():
    layer = PatchEmbedding(image_size=8, patch_size=4, hidden_dim=6, use_class_token=False)
    assert tuple(layer(images()).shape) == (2, 4, 6)
    assert tuple(layer(images(height=13, width=9)).shape) == (2, 6, 6)  # 3 x 2 grid, remainder dropped


def test_bicubic_matrix_identity_and_partition_of_unity():
    assert_allclose(bicubic_matrix(5, 5), np.eye(5), atol=0)
    for out_size in (1, 3, 7, 11):
        weights = to_numpy(bicubic_matrix(4, out_size))
        assert weights.shape == (out_size, 4)
        assert_allclose(weights.sum(axis=1), np.ones(out_size), atol=1e-6)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="patch_size=9"):
        PatchEmbedding(image_size=8, patch_size=9, hidden_dim=4)
    with pytest.raises(ValueError, match="hidden_dim=0"):
        PatchEmbedding(image_size=8, patch_size=4, hidden_dim=0)
    layer = PatchEmbedding(image_size=8, patch_size=4, hidden_dim=4)
    with pytest.raises(ValueError, match="channels last"):
        layer(images(channels=1))
    layer(images())
    with pytest.raises(ValueError, match="smaller than patch_size"):
        layer(images(height=3))
