"""Perplexity of a language model, as a Keras metric."""

import keras
from keras import ops

from keras_transformer.registration import register


@register
class Perplexity(keras.metrics.Mean):
    """exp(mean token cross-entropy), weighted by `sample_weight` (0 = padding).

    Accumulates the mean cross-entropy over batches and exponentiates at the
    end, so it is the perplexity of the whole evaluation set, not a mean of
    per-batch perplexities.
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        losses = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return super().update_state(losses, sample_weight=sample_weight)

    def result(self):
        return ops.exp(super().result())
