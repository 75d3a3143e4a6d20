"""A learned bias added to the masked-LM logits (BERT's `cls.predictions.bias`)."""

import keras
from keras import ops

from keras_transformer.registration import register


@register
class BertOutputBias(keras.layers.Layer):
    """Adds a trainable bias over the last axis: `logits + bias`.

    BERT's MLM output is the tied projection `hidden @ word_embeddings.T` plus
    one bias per vocabulary entry; the tied projection has no bias of its own,
    so this layer carries it. The bias, `bias` with shape (last axis,), is
    created in `build` from the input width.

    Args:
        bias_initializer: initializer of `bias` (default zeros).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Shapes: (..., vocabulary_size) -> the same, in the input's float dtype
    (the MLM logits may be float32 under a mixed policy). A Keras mask on
    the input passes through.

    Example:
    >>> layer = BertOutputBias()
    >>> layer(np.zeros((2, 3, 10), "float32")).shape
    (2, 3, 10)
    """

    def __init__(self, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"BertOutputBias needs a known last axis; received input_shape={tuple(input_shape)}"
            )
        self.bias = self.add_weight(
            name="bias", shape=(input_shape[-1],), initializer=self.bias_initializer
        )
        self.built = True

    def call(self, inputs):
        return ops.add(inputs, ops.cast(self.bias, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["bias_initializer"] = keras.initializers.serialize(self.bias_initializer)
        return config
