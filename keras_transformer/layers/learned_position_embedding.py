"""A trainable table of position embeddings (BERT, GPT-2)."""

import keras
from keras import ops

from keras_transformer.layers._checks import check_positive_int, check_start_index
from keras_transformer.registration import register


@register
class LearnedPositionEmbedding(keras.layers.Layer):
    """Learned absolute position embeddings: one trainable row per position.

    The layer owns one weight, `embeddings`, of shape `(sequence_length, dim)`,
    with `dim` taken from the last axis of the inputs at build time. A call
    returns rows `start_index .. start_index + length - 1` broadcast to the
    shape of the inputs; add them to the token embeddings yourself.

    A sequence longer than the table is an error, never silent garbage: when
    the length is static and `start_index` is a Python int, `start_index +
    length > sequence_length` raises a `ValueError`. With a traced
    `start_index` no check is possible (JAX and XLA clamp an out-of-range
    slice; plain TensorFlow graphs fail at run time), so decoding loops must
    bound it themselves.

    Args:
        sequence_length: positive int, the number of positions in the table.
        initializer: initializer of the table (name, instance or config).
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `(batch, length, dim)`; only its shape is used.
        start_index: Python int or scalar integer tensor (it may be traced):
            the position of the first element of `inputs`. Defaults to 0.

    Output shape:
        `(batch, length, dim)`, in the compute dtype.

    Example:

    >>> layer = LearnedPositionEmbedding(sequence_length=16)
    >>> tuple(layer(keras.ops.zeros((2, 5, 8))).shape)
    (2, 5, 8)
    >>> tuple(layer.embeddings.shape)
    (16, 8)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        check_positive_int(sequence_length, "sequence_length")
        self.sequence_length = int(sequence_length)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "LearnedPositionEmbedding expects inputs of shape (batch, length, dim) "
                f"with a known dim; received input_shape={tuple(input_shape)}"
            )
        _check_range(0, input_shape[1], self.sequence_length)
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
            trainable=True,
        )
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, dim = shape[1], inputs.shape[-1]
        if isinstance(start_index, int):
            _check_range(start_index, length if isinstance(length, int) else None,
                         self.sequence_length)
        else:
            start_index = ops.cast(start_index, "int32")
        table = ops.cast(self.embeddings, self.compute_dtype)  # a tensor, not the variable
        # (length, dim) rows of the table; the start may be a traced scalar.
        rows = ops.slice(table, [start_index, 0], [length, dim])
        return ops.broadcast_to(rows[None, :, :], shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config


def _check_range(start_index, length, sequence_length):
    check_start_index(start_index)
    if length is not None and start_index + length > sequence_length:
        raise ValueError(
            f"positions {start_index}..{start_index + length - 1} do not fit the position "
            f"table: start_index + length must be at most sequence_length; received "
            f"start_index={start_index}, length={length}, sequence_length={sequence_length}"
        )
