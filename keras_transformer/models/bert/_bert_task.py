"""The base of the BERT task models."""

import keras

from keras_transformer.models.backbone import Task
from keras_transformer.models.bert.bert_backbone import BertBackbone, bert_initializer


class BertTask(Task):
    """`Task` on a `BertBackbone`."""

    backbone_class = BertBackbone

    def _classification_head(self, backbone, num_classes, dropout, output_key):
        """Dropout + dense over `backbone` output `output_key`; returns (inputs, {"logits"}).

        Shared by the sequence and token classifiers, which differ only in the
        backbone output they classify.
        """
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"num_classes must be a positive integer; received num_classes={num_classes!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received dropout={dropout!r}")
        dtype = backbone.dtype_policy
        self.backbone = backbone
        self.output_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="output_dropout")
        self.output_dense = keras.layers.Dense(
            num_classes, kernel_initializer=bert_initializer(), dtype=dtype, name="output_dense"
        )
        inputs = {
            name: keras.Input((None,), dtype="int32", name=name)
            for name in ("token_ids", "segment_ids", "padding_mask")
        }
        hidden = backbone(inputs)[output_key]
        return inputs, {"logits": self.output_dense(self.output_dropout(hidden))}
