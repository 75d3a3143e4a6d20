"""The base of the BERT task models: a `Task` whose custom `compile()` survives saving."""

import keras

from keras_transformer.models.backbone import Task
from keras_transformer.models.bert.bert_backbone import BertBackbone


class BertTask(Task):
    """`Task` on a `BertBackbone`; restores a saved compile state through `compile()`.

    Keras skips (with a warning) recompiling a loaded model whose class
    overrides `compile()`. Here the saved arguments are the resolved objects
    (no "auto" left), so passing them back to our `compile()` is exact.
    """

    backbone_class = BertBackbone

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)
