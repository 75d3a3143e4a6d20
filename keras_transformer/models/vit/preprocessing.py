"""Pixels to model inputs: resize, scale to [0, 1], normalise per channel (keras.ops only)."""

from keras import ops


def preprocess_images(images, config):
    """(batch, height, width, channels) pixels in [0, 255] -> normalised `config.image_size` images.

    Bilinear resize to `image_size` x `image_size`, then `(x / 255 - mean) /
    std` with the config's `image_mean` / `image_std` (transformers'
    `ViTImageProcessor` with its defaults). Used by training and by the
    exported image signatures, so both see the same inputs.
    """
    if len(images.shape) != 4 or images.shape[-1] != config.num_channels:
        raise ValueError(
            f"images must have shape (batch, height, width, {config.num_channels}); "
            f"received shape {tuple(images.shape)}"
        )
    x = ops.cast(images, "float32")
    size = (config.image_size, config.image_size)
    if tuple(x.shape[1:3]) != size:
        x = ops.image.resize(x, size, interpolation="bilinear", antialias=True)
    mean = ops.convert_to_tensor(config.image_mean, "float32")
    std = ops.convert_to_tensor(config.image_std, "float32")
    return (x / 255.0 - mean) / std
