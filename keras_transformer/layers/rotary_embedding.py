"""Rotary position embeddings (RoPE), in the "rotate half" convention."""

import keras
from keras import ops

from keras_transformer.layers._checks import check_int, check_positive_number, check_start_index
from keras_transformer.registration import register


@register
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (Su et al., RoFormer), "rotate half" form.

    This is the convention of GPT-NeoX, LLaMA and Hugging Face: the features
    are split into halves `x1, x2` (not interleaved pairs), and for `d` the
    feature size, position `p` and `i` in `[0, d / 2)`:

        inv_freq[i] = 1 / max_wavelength ** (2i / d)
        angle[p, i] = (p / scaling_factor) * inv_freq[i]
        cos, sin    = cos([angle, angle]), sin([angle, angle])   # (length, d)
        output      = x * cos + concat([-x2, x1]) * sin

    so feature `i` and feature `i + d / 2` rotate together by `angle[p, i]`.
    Dot products of rotated queries and keys then depend only on the offset
    between their positions. The angles are computed in float32; the rotation
    runs in the compute dtype. The layer has no weights.

    Args:
        max_wavelength: positive number, the base of the frequencies (10000).
        scaling_factor: positive number; positions are divided by it (linear
            position interpolation for longer contexts). 1.0 leaves them as is.
        sequence_axis: the axis of `inputs` that indexes positions.
        feature_axis: the axis of `inputs` that is rotated; its size must be
            even.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch, length, dim)` or `(batch, length, heads, head_dim)`
            (any rank >= 2 with the axes above).
        start_index: Python int or scalar integer tensor (it may be traced,
            as inside a compiled decoding loop): the position of the first
            element along `sequence_axis`. Defaults to 0.

    Output shape:
        the shape of `inputs`, in the compute dtype.

    Example:

    >>> query = keras.ops.ones((2, 5, 2, 4))  # (batch, length, heads, head_dim)
    >>> rotated = RotaryEmbedding()(query)
    >>> tuple(rotated.shape)
    (2, 5, 2, 4)
    >>> # Position 0 is not rotated: rotated[:, 0] == query[:, 0].
    """

    def __init__(
        self,
        max_wavelength=10000,
        scaling_factor=1.0,
        sequence_axis=1,
        feature_axis=-1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("max_wavelength", max_wavelength), ("scaling_factor", scaling_factor)):
            check_positive_number(value, name)
        for name, value in (("sequence_axis", sequence_axis), ("feature_axis", feature_axis)):
            check_int(value, name)
        if sequence_axis == feature_axis:
            raise ValueError(
                "sequence_axis and feature_axis must differ; received "
                f"sequence_axis={sequence_axis}, feature_axis={feature_axis}"
            )
        self.max_wavelength = max_wavelength
        self.scaling_factor = scaling_factor
        self.sequence_axis = int(sequence_axis)
        self.feature_axis = int(feature_axis)

    def build(self, input_shape):
        sequence_axis, feature_axis = self._axes(len(input_shape), input_shape)
        dim = input_shape[feature_axis]
        if dim is None or dim % 2 != 0:
            raise ValueError(
                "RotaryEmbedding needs a known, even size along feature_axis; received "
                f"dim={dim} (input_shape={tuple(input_shape)}, feature_axis={self.feature_axis})"
            )
        self.built = True

    def call(self, inputs, start_index=0):
        check_start_index(start_index)
        rank = len(inputs.shape)
        sequence_axis, feature_axis = self._axes(rank, inputs.shape)
        length = ops.shape(inputs)[sequence_axis]
        cos, sin = self._cos_sin(length, inputs.shape[feature_axis], start_index)
        # Put (length, dim) on (sequence_axis, feature_axis), ones elsewhere.
        if sequence_axis > feature_axis:
            cos, sin = ops.transpose(cos), ops.transpose(sin)
        for axis in range(rank):
            if axis not in (sequence_axis, feature_axis):
                cos, sin = ops.expand_dims(cos, axis), ops.expand_dims(sin, axis)
        x = ops.cast(inputs, self.compute_dtype)
        cos, sin = ops.cast(cos, self.compute_dtype), ops.cast(sin, self.compute_dtype)
        first, second = ops.split(x, 2, axis=feature_axis)
        rotated_half = ops.concatenate([-second, first], axis=feature_axis)
        return x * cos + rotated_half * sin

    def _cos_sin(self, length, dim, start_index):
        """float32 `(length, dim)` cos and sin tables of the angles."""
        positions = ops.arange(length, dtype="int32") + ops.cast(start_index, "int32")
        positions = ops.cast(positions, "float32") / float(self.scaling_factor)
        exponents = ops.arange(0, dim, 2, dtype="float32") / float(dim)
        inverse_freq = 1.0 / ops.power(float(self.max_wavelength), exponents)
        angles = positions[:, None] * inverse_freq[None, :]  # (length, dim / 2)
        angles = ops.concatenate([angles, angles], axis=-1)  # (length, dim)
        return ops.cos(angles), ops.sin(angles)

    def _axes(self, rank, shape):
        axes = []
        named_axes = (("sequence_axis", self.sequence_axis), ("feature_axis", self.feature_axis))
        for name, axis in named_axes:
            if not -rank <= axis < rank:
                raise ValueError(
                    f"{name}={axis} is out of range for inputs of rank {rank} "
                    f"(shape {tuple(shape)})"
                )
            axes.append(axis % rank)
        if axes[0] == axes[1]:
            raise ValueError(
                "sequence_axis and feature_axis name the same axis for inputs of rank "
                f"{rank}; received sequence_axis={self.sequence_axis}, "
                f"feature_axis={self.feature_axis}"
            )
        return tuple(axes)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_wavelength": self.max_wavelength,
                "scaling_factor": self.scaling_factor,
                "sequence_axis": self.sequence_axis,
                "feature_axis": self.feature_axis,
            }
        )
        return config
