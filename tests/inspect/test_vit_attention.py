"""ViT: the class token's attention on the patch grid, upsampled and drawn over the image."""

import os

import numpy as np
import pytest

from keras_transformer.inspect import class_token_attention, save_vit_attention, vit_attention_figure
from keras_transformer.inspect.vit_attention import upsample
from tests.inspect.helpers import png_size, random_maps

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface")


def test_bilinear_upsampling_reproduces_a_linear_ramp_inside_the_image():
    grid = np.add.outer(2.0 * np.arange(3), 3.0 * np.arange(4))  # value = 2 row + 3 column, per patch
    pixels = upsample(grid, 24, 32)  # 8 x 8 pixels per patch
    rows, columns = (np.arange(24) + 0.5) / 8 - 0.5, (np.arange(32) + 0.5) / 8 - 0.5  # in patch units
    expected = np.add.outer(2 * np.clip(rows, 0, 2), 3 * np.clip(columns, 0, 3))  # clamped at the edges
    np.testing.assert_allclose(pixels, expected, atol=1e-5)


def test_patches_land_where_they_are_in_the_image():
    """A class token that looks only at patch (row 1, column 2) of a 2 x 3 grid lights that block."""
    maps = random_maps({"encoder": (7, 7)}, num_layers=2, num_heads=2, batch=1)
    for layer in maps["encoder"]:
        layer[0, :, 0, :] = 0.0
        layer[0, :, 0, 1 + 1 * 3 + 2] = 1.0
    grids = class_token_attention(maps, (2, 3), layers=[1])
    assert grids.shape == (1, 2, 3) and grids[0, 1, 2] == 1.0 and grids.sum() == 1.0
    figure = vit_attention_figure(np.zeros((16, 24, 3), "uint8"), maps, patch_size=8, layers=[1])
    overlay = figure.axes[1].images[1].get_array()  # the second panel: image, then the attention
    assert overlay.shape == (16, 24)
    assert np.unravel_index(np.argmax(overlay), overlay.shape) in [(r, c) for r in range(8, 16) for c in range(16, 24)]
    assert overlay[:4, :8].max() == 0.0  # far from the patch: nothing


def test_tiny_vit_overlay_per_layer_and_averaged_heads(tmp_path):
    """On a tiny ViT's real maps: transformers' attentions of the ViT fixture (16 x 16 images, 4 x 4 patches)."""
    with np.load(os.path.join(FIXTURES, "vit_model", "expected.npz")) as data:
        images, attentions = data["images"], data["attentions"]  # (2, 16, 16, 3), (layers, 2, heads, 17, 17)
    maps = {"encoder": list(attentions)}
    grids = class_token_attention(maps, (4, 4), batch_index=1)
    assert grids.shape == (2, 4, 4)
    for layer, grid in enumerate(grids):
        weights = attentions[layer, 1]  # (heads, 17, 17)
        np.testing.assert_allclose(grid, weights[:, 0, 1:].mean(axis=0).reshape(4, 4), atol=1e-7)
        # The class token's weights on the patches are what its softmax row leaves after itself.
        np.testing.assert_allclose(grid.sum(), 1 - weights[:, 0, 0].mean(), atol=1e-5)
    np.testing.assert_allclose(class_token_attention(maps, (4, 4), layers=[1], heads=[2])[0],
                               attentions[1, 0, 2, 0, 1:].reshape(4, 4), atol=1e-7)
    picture = images[0] * 0.5 + 0.5  # the processor's normalisation undone
    figure = vit_attention_figure(picture, maps, patch_size=4)
    assert len(figure.axes) == 1 + 2 and [a.get_title() for a in figure.axes] == [
        "image", "layer 0, mean of heads", "layer 1, mean of heads"]
    assert figure.axes[2].images[1].get_array().shape == (16, 16)
    path = save_vit_attention(picture, maps, str(tmp_path / "vit.png"), patch_size=4, heads=[1, 3])
    width, height = png_size(path)
    assert 600 <= width <= 1200 and 250 <= height <= 600, (width, height)
    with pytest.raises(ValueError, match="a 3 x 4 patch grid plus the class token is 13 tokens, but the maps have 17"):
        class_token_attention(maps, (3, 4))
    with pytest.raises(ValueError, match=r"heads must be .* in \[0, 4\)"):
        class_token_attention(maps, (4, 4), heads=[4])
