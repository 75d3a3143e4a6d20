"""Root-mean-square layer normalization (T5's "T5LayerNorm", LLaMA's RMSNorm)."""

import keras
from keras import ops

from keras_transformer.layers._checks import check_int, check_positive_number
from keras_transformer.registration import register


@register
class RMSNorm(keras.layers.Layer):
    """Scales inputs by the reciprocal of their root mean square.

        y = x / sqrt(mean(x^2, axis) + epsilon) * scale

    No mean subtraction and no bias (Zhang & Sennrich, 2019; T5 calls it
    "T5LayerNorm"). The statistics and the product are computed in at least
    float32 (float16/bfloat16 inputs are upcast) and the result is cast back
    to the layer's compute dtype; the `scale` weight is read in its own
    (float32) dtype, never downcast first.

    Args:
        epsilon: float > 0, added to the mean square.
        axis: int, the normalized axis (the feature axis, usually -1).
        scale_initializer: initializer of `scale`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Weights: `scale`, shape (dim,) with dim = input_shape[axis].

    Shapes: any (..., dim) -> same shape, in the compute dtype.

    Masking: element-wise along positions, so a Keras mask on the input
    (e.g. `[[True, False]]`) passes through to the output unchanged.

    Example:
    >>> norm = RMSNorm(epsilon=1e-6)
    >>> norm(np.array([[[3.0, 4.0]]], "float32"))   # rms = 3.5355 -> [[[0.8485, 1.1314]]]
    """

    def __init__(self, epsilon=1e-6, axis=-1, scale_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        check_positive_number(epsilon, "epsilon")
        check_int(axis, "axis")
        self.epsilon = float(epsilon)
        self.axis = int(axis)
        self.scale_initializer = keras.initializers.get(scale_initializer)
        self.supports_masking = True
        # Do not downcast float32 inputs first, nor `scale` (its weight has
        # autocast=False too); `call` upcasts and casts back itself.
        self.autocast = False

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"axis={self.axis} is out of range for inputs of rank {rank}; "
                f"received input_shape={input_shape}"
            )
        dim = input_shape[self.axis]
        if dim is None:
            raise ValueError(
                f"RMSNorm needs a known size along axis={self.axis}; "
                f"received input_shape={input_shape}"
            )
        self.scale = self.add_weight(
            name="scale", shape=(dim,), initializer=self.scale_initializer, autocast=False
        )
        self.built = True

    def call(self, inputs):
        # float16/bfloat16 -> float32; float32/float64 stay as they are.
        dtype = keras.backend.result_type(self.compute_dtype, "float32")
        x = ops.cast(inputs, dtype)
        mean_square = ops.mean(ops.square(x), axis=self.axis, keepdims=True)
        x = x * ops.rsqrt(mean_square + self.epsilon)
        # (dim,) -> broadcastable along `axis`, e.g. (dim, 1) for axis=-2.
        broadcast = [1] * len(inputs.shape)
        broadcast[self.axis] = -1
        scale = ops.reshape(ops.cast(self.scale, dtype), broadcast)
        return ops.cast(x * scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "epsilon": self.epsilon,
                "axis": self.axis,
                "scale_initializer": keras.initializers.serialize(self.scale_initializer),
            }
        )
        return config
