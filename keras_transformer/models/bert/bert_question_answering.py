"""Extractive question answering on BERT's sequence output: an answer span's start and end."""

import keras

from keras_transformer.models.bert._bert_task import BertTask
from keras_transformer.models.bert.bert_backbone import bert_initializer
from keras_transformer.registration import register


@register
class BertQuestionAnswering(BertTask):
    """Start and end logits of the answer span over each token (SQuAD-style extractive QA).

    The input is `[CLS] question [SEP] context [SEP]` with segment ids 0 then
    1; `output_dense` maps each token's sequence output to two logits, the
    span's start and end (Hugging Face's `BertForQuestionAnswering`: no
    dropout before it, no pooler).

    Sublayers: `backbone`, `output_dense`.

    Args:
        backbone: a `BertBackbone` (shared, not copied).

    Inputs (dict): `token_ids`, `segment_ids`, `padding_mask` (batch, length).
    Outputs (dict): `start_logits`, `end_logits` (batch, length). Padded and
    question positions get logits too: the answer search (and the loss, via
    the labels) keeps to the context.

    `compile()` defaults: Adam(5e-5); per output, sparse categorical
    cross-entropy from logits over positions (labels: `{"start_logits":
    start_index, "end_logits": end_index}`, token indices), and accuracy.

    Example:
    >>> model = BertQuestionAnswering(BertBackbone.from_preset("bert_test"))
    >>> out = model(inputs); out["start_logits"].shape   # (batch, length)
    """

    def __init__(self, backbone, **kwargs):
        if not isinstance(backbone, self.backbone_class):
            raise ValueError(f"BertQuestionAnswering needs a BertBackbone; received {type(backbone).__name__}")
        self.backbone = backbone
        self.output_dense = keras.layers.Dense(
            2, kernel_initializer=bert_initializer(), dtype=backbone.dtype_policy, name="output_dense")
        inputs = {name: keras.Input((None,), dtype="int32", name=name)
                  for name in ("token_ids", "segment_ids", "padding_mask")}
        logits = self.output_dense(backbone(inputs)["sequence_output"])  # (batch, length, 2)
        outputs = {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
        super().__init__(backbone, inputs=inputs, outputs=outputs, **kwargs)

    def compile_defaults(self):
        """`compile()`'s "auto" arguments (see the class docstring)."""
        def loss():
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        return {
            "optimizer": lambda: keras.optimizers.Adam(5e-5),
            "loss": lambda: {"start_logits": loss(), "end_logits": loss()},
            "metrics": lambda: {name: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
                                for name in ("start_logits", "end_logits")},
        }
