"""Sequence classification on BERT's pooled ([CLS]) output."""

import keras

from keras_transformer.models.bert._bert_task import BertTask
from keras_transformer.registration import register


@register
class BertClassifier(BertTask):
    """Classifies a whole sequence (or sentence pair) from the pooled output.

    logits = dense(dropout(pooled_output)), one logit per class.

    Sublayers: `backbone`, `output_dropout`, `output_dense`.

    Args:
        backbone: a `BertBackbone` (shared, not copied).
        num_classes: int > 0, number of classes.
        dropout: float in [0, 1), dropout before the output layer.

    Inputs (dict): `token_ids`, `segment_ids`, `padding_mask` (batch, length).
    Outputs (dict): `logits` (batch, num_classes).

    `compile()` defaults: Adam(5e-5), sparse categorical cross-entropy from
    logits, accuracy.

    Example:
    >>> model = BertClassifier(BertBackbone.from_preset("bert_test"), num_classes=3)
    >>> model(inputs)["logits"].shape   # (batch, 3)
    """

    def __init__(self, backbone, num_classes, dropout=0.1, **kwargs):
        # (batch, hidden) -> (batch, num_classes)
        inputs, outputs = self._classification_head(backbone, num_classes, dropout, "pooled_output")
        super().__init__(backbone, inputs=inputs, outputs=outputs, **kwargs)
        self.num_classes = num_classes
        self.dropout = dropout

    def compile_defaults(self):
        """`compile()`'s "auto" arguments (see the class docstring)."""
        return {
            "optimizer": lambda: keras.optimizers.Adam(5e-5),
            "loss": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "metrics": lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        }

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "dropout": self.dropout})
        return config
