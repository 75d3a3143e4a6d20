"""Fixed sinusoidal position encodings ("Attention Is All You Need")."""

import keras
from keras import ops

from keras_transformer.layers._checks import check_positive_number, check_start_index
from keras_transformer.registration import register


@register
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sine/cosine position encodings, interleaved along the features.

    For position `p` and feature pair `i` (with `dim` the feature size):

        PE[p, 2i]     = sin(p / max_wavelength ** (2i / dim))
        PE[p, 2i + 1] = cos(p / max_wavelength ** (2i / dim))

    The layer has no weights. It returns the encodings of positions
    `start_index .. start_index + length - 1`, broadcast to the shape of the
    inputs; add them to the token embeddings yourself. The angles are computed
    in float32 and the result is cast to the layer's compute dtype.

    Args:
        max_wavelength: positive number, the longest wavelength of the
            sinusoids (10000 in the paper).
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `(batch, length, dim)`; only its shape is used.
            `dim` must be even.
        start_index: Python int or scalar integer tensor (it may be traced,
            as inside a compiled decoding loop): the position of the first
            element of `inputs`. Defaults to 0.

    Output shape:
        `(batch, length, dim)`, in the compute dtype.

    Example:

    >>> embeddings = keras.ops.zeros((2, 5, 8))
    >>> encodings = SinusoidalPositionEncoding()(embeddings)
    >>> tuple(encodings.shape)
    (2, 5, 8)
    >>> # One decoding step at position 4 sees row 4 of the table.
    >>> step = SinusoidalPositionEncoding()(embeddings[:, :1], start_index=4)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        check_positive_number(max_wavelength, "max_wavelength")
        self.max_wavelength = max_wavelength

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "SinusoidalPositionEncoding expects inputs of shape (batch, length, dim); "
                f"received input_shape={tuple(input_shape)}"
            )
        dim = input_shape[-1]
        if dim is None or dim % 2 != 0:
            raise ValueError(
                "SinusoidalPositionEncoding needs a known, even feature size; "
                f"received dim={dim} (input_shape={tuple(input_shape)})"
            )
        self.built = True

    def call(self, inputs, start_index=0):
        check_start_index(start_index)
        shape = ops.shape(inputs)
        length, dim = shape[1], inputs.shape[-1]
        # (length,) absolute positions, exact as integers, then float32 angles.
        positions = ops.arange(length, dtype="int32") + ops.cast(start_index, "int32")
        positions = ops.cast(positions, "float32")
        # (dim / 2,) inverse frequencies 1 / max_wavelength^(2i / dim).
        exponents = ops.arange(0, dim, 2, dtype="float32") / float(dim)
        inverse_freq = 1.0 / ops.power(float(self.max_wavelength), exponents)
        angles = positions[:, None] * inverse_freq[None, :]  # (length, dim / 2)
        # Interleave: (length, dim / 2, 2) -> (length, dim) = sin, cos, sin, cos ...
        table = ops.reshape(ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1), (-1, dim))
        table = ops.cast(table, self.compute_dtype)
        return ops.broadcast_to(table[None, :, :], shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
