"""Per-token classification (named-entity recognition, tagging) on BERT's sequence output."""

import keras

from keras_transformer.models.bert._bert_task import BertTask
from keras_transformer.registration import register


@register
class BertTokenClassifier(BertTask):
    """One label per token: logits = dense(dropout(sequence_output)).

    Sublayers: `backbone`, `output_dropout`, `output_dense`.

    Args:
        backbone: a `BertBackbone` (shared, not copied).
        num_classes: int > 0, number of labels (e.g. BIO tags).
        dropout: float in [0, 1), dropout before the output layer.

    Inputs (dict): `token_ids`, `segment_ids`, `padding_mask` (batch, length).
    Outputs (dict): `logits` (batch, length, num_classes); padded positions
    get logits too, which the loss must ignore.

    `compile()` defaults: Adam(5e-5), sparse categorical cross-entropy from
    logits that ignores label -100 (Hugging Face's convention for padding and
    sub-word continuations) and averages over the weighted tokens only,
    weighted accuracy. Pass `sample_weight=padding_mask`
    (or a per-token weight) to `fit`, so padded positions count in neither the
    loss nor the accuracy.

    Example:
    >>> model = BertTokenClassifier(BertBackbone.from_preset("bert_test"), num_classes=5)
    >>> model(inputs)["logits"].shape   # (batch, length, 5)
    """

    def __init__(self, backbone, num_classes, dropout=0.1, **kwargs):
        # (batch, length, hidden) -> (batch, length, num_classes)
        inputs, outputs = self._classification_head(backbone, num_classes, dropout, "sequence_output")
        super().__init__(backbone, inputs=inputs, outputs=outputs, **kwargs)
        self.num_classes = num_classes
        self.dropout = dropout

    def compile_defaults(self):
        """`compile()`'s "auto" arguments (see the class docstring)."""
        return {
            "optimizer": lambda: keras.optimizers.Adam(5e-5),
            "loss": lambda: keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=-100, reduction="mean_with_sample_weight"
            ),
            "weighted_metrics": lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        }

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "dropout": self.dropout})
        return config
