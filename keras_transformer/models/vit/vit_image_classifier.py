"""Image classification on a ViT backbone: class-token or mean pooling, then one dense layer."""

import keras
from keras import ops

from keras_transformer.models.backbone import Task
from keras_transformer.models.vit.vit_backbone import ViTBackbone, vit_initializer
from keras_transformer.models.vit.vit_config import POOLINGS
from keras_transformer.registration import register


@register
class ViTImageClassifier(Task):
    """Classifies images from the backbone's `sequence_output`.

    features = sequence_output[:, 0] (`pooling="token"`, the class token, as
    transformers' `ViTForImageClassification`) or the mean over the patch
    tokens (`pooling="mean"`, the class token left out); logits =
    dense(dropout(features)).

    Sublayers: `backbone`, `output_dropout`, `output_dense`.

    Args:
        backbone: a `ViTBackbone` (shared, not copied).
        num_classes: int > 0.
        pooling: "token" (needs a backbone with a class token) or "mean".
        dropout: float in [0, 1), before the output layer.

    Inputs: `{"images": (batch, height, width, channels)}` (or the bare tensor).
    Outputs (dict): `logits` (batch, num_classes).

    `compile()` defaults ("auto"): AdamW(3e-4), sparse categorical
    cross-entropy from logits, accuracy.

    Example:
    >>> model = ViTImageClassifier(ViTBackbone.from_preset("vit_tiny"), num_classes=3)
    >>> model(np.zeros((2, 32, 32, 3), "float32"))["logits"].shape
    (2, 3)
    """

    backbone_class = ViTBackbone

    def __init__(self, backbone, num_classes, pooling="token", dropout=0.0, **kwargs):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"num_classes must be a positive integer; received num_classes={num_classes!r}"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; received pooling={pooling!r}")
        config = backbone.model_config
        if pooling == "token" and not config.use_class_token:
            raise ValueError(
                "pooling='token' needs a backbone with a class token; received a backbone "
                "with use_class_token=False (use pooling='mean')"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received dropout={dropout!r}")
        dtype = backbone.dtype_policy
        self.output_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="output_dropout")
        self.output_dense = keras.layers.Dense(
            num_classes, kernel_initializer=vit_initializer(), dtype=dtype, name="output_dense"
        )
        images = keras.Input((None, None, config.num_channels), dtype="float32", name="images")
        sequence = backbone({"images": images})["sequence_output"]  # (batch, tokens, hidden)
        if pooling == "token":
            features = sequence[:, 0, :]
        else:
            first = int(config.use_class_token)
            features = ops.mean(sequence[:, first:, :], axis=1)
        logits = self.output_dense(self.output_dropout(features))
        super().__init__(backbone, inputs={"images": images}, outputs={"logits": logits}, **kwargs)
        self.num_classes = num_classes
        self.pooling = pooling
        self.dropout = dropout

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, dict):
            inputs = {"images": inputs}
        return super().__call__(inputs, *args, **kwargs)

    def compile_defaults(self):
        return {
            "optimizer": lambda: keras.optimizers.AdamW(3e-4),
            "loss": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "metrics": lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_classes": self.num_classes, "pooling": self.pooling, "dropout": self.dropout}
        )
        return config
