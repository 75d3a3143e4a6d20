"""The base of the BERT task models."""

from keras_transformer.models.backbone import Task
from keras_transformer.models.bert.bert_backbone import BertBackbone


class BertTask(Task):
    """`Task` on a `BertBackbone`."""

    backbone_class = BertBackbone
