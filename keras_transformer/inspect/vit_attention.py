"""ViT: where the class token looks, per layer, over the image.

    maps = attention_maps(vit, {"images": images})
    grid = class_token_attention(maps, (4, 4))                  # (layers, 4, 4), mean over heads
    save_vit_attention(picture, maps, "out/vit_attention.png", patch_size=8, layers=[0, 11], heads=[3])

For each chosen layer, the class token's attention over the patches (query
0, keys 1..N) of one batch row, averaged over the chosen heads (default all), is
reshaped to the patch grid (row-major, as the patches are cut), upsampled
bilinearly to the image's pixels and drawn over the image. The figure's first
panel is the image alone. matplotlib is imported on first use (Agg canvas).
"""

import os

import numpy as np

from keras_transformer.inspect.selection import select_indices


def class_token_attention(maps, grid_shape, layers=None, heads=None, batch_index=0):
    """(chosen layers, grid rows, grid columns) float32: the class token's weights on each patch.

    Args:
        maps: `attention_maps` of a ViT with a class token (first token).
        grid_shape: (rows, columns) of patches: (height // patch_size, width // patch_size).
        layers: layer indices (default all).
        heads: the heads to average (an index or a list; default all).
        batch_index: which image of the batch.
    """
    if "encoder" not in maps:
        raise ValueError(f"ViT maps have an 'encoder' group; received groups {list(maps)}")
    stack = maps["encoder"]
    batch, num_heads, query_length, key_length = np.shape(stack[0])
    rows, columns = (int(n) for n in grid_shape)
    if key_length != 1 + rows * columns:
        raise ValueError(
            f"a {rows} x {columns} patch grid plus the class token is {1 + rows * columns} tokens, but the maps "
            f"have {key_length}; pass the grid of the images the model saw (a ViT without a class token has "
            "no class-token attention)")
    if not isinstance(batch_index, (int, np.integer)) or not 0 <= batch_index < batch:
        raise ValueError(f"batch_index must be in [0, {batch}); received {batch_index!r}")
    layers = select_indices(layers, len(stack), "layers")
    heads = select_indices(heads, num_heads, "heads")
    grids = []
    for layer in layers:
        weights = np.asarray(stack[layer], "float32")[batch_index, :, 0, 1:]  # (heads, patches)
        grids.append(weights[heads].mean(axis=0).reshape(rows, columns))
    return np.stack(grids)


def _resize_axis(values, size, axis):
    """Linear interpolation along `axis` to `size` samples, pixel centres aligned (half-pixel)."""
    length = values.shape[axis]
    positions = np.clip((np.arange(size) + 0.5) * length / size - 0.5, 0, length - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, length - 1)
    shape = [1] * values.ndim
    shape[axis] = size
    fraction = (positions - low).reshape(shape)
    return np.take(values, low, axis=axis) * (1 - fraction) + np.take(values, high, axis=axis) * fraction


def upsample(grid, height, width):
    """A (rows, columns) grid resized bilinearly to (height, width) (pixel centres, edges clamped)."""
    grid = np.asarray(grid, "float64")
    return _resize_axis(_resize_axis(grid, height, 0), width, 1).astype("float32")


def _display_image(image):
    """(height, width, 3) floats in [0, 1] from uint8 or [0, 1] / [0, 255] float pixels, 1, 3 or 4 channels."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be (height, width[, 1 | 3 | 4 channels]); received shape {image.shape}")
    pixels = image[..., :3].astype("float32")
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    if not np.issubdtype(image.dtype, np.floating) or pixels.max() > 1.0:
        pixels = pixels / 255.0
    return np.clip(pixels, 0.0, 1.0)


def vit_attention_figure(image, maps, patch_size, layers=None, heads=None, batch_index=0, alpha=0.6):
    """A matplotlib `Figure`: the image, then one overlay panel per chosen layer.

    Args:
        image: the picture the model saw (height, width[, channels]), pixels in
            [0, 1] or [0, 255]; its size sets the patch grid.
        maps: `attention_maps` of the ViT on that image (row `batch_index`).
        patch_size: the model's patch side.
        layers, heads, batch_index: as `class_token_attention`.
        alpha: opacity of the attention colours.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    picture = _display_image(image)
    height, width = picture.shape[:2]
    grids = class_token_attention(maps, (height // patch_size, width // patch_size), layers, heads, batch_index)
    layers = select_indices(layers, len(maps["encoder"]), "layers")
    count = 1 + len(layers)
    columns = min(count, 5)
    rows = -(-count // columns)
    figure = Figure(figsize=(3 * columns, 3 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    panels[0].imshow(picture)
    panels[0].set_title("image", fontsize=9)
    num_heads = np.shape(maps["encoder"][0])[1]
    heads = select_indices(heads, num_heads, "heads")
    which = ("mean of heads" if len(heads) == num_heads else
             f"head {heads[0]}" if len(heads) == 1 else "mean of heads " + ", ".join(map(str, heads)))
    for axes, layer, grid in zip(panels[1:], layers, grids):
        axes.imshow(picture)
        axes.imshow(upsample(grid, height, width), cmap="inferno", alpha=alpha)
        axes.set_title(f"layer {layer}, {which}", fontsize=9)
    for axes in panels:
        axes.set_axis_off()
    figure.suptitle("class-token attention over the patches", fontsize=10)
    return figure


def save_vit_attention(image, maps, path, patch_size, layers=None, heads=None, batch_index=0, dpi=100):
    """Writes `vit_attention_figure(...)` to `path` (PNG); returns the path."""
    figure = vit_attention_figure(image, maps, patch_size, layers, heads, batch_index)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path
