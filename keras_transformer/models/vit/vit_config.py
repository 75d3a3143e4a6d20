"""ViT hyperparameters, and the closed-form parameter count they imply."""

import dataclasses

from keras_transformer.models.config import ModelConfig, positive

POOLINGS = ("token", "mean")


@dataclasses.dataclass
class ViTConfig(ModelConfig):
    """Hyperparameters of a Vision Transformer (Dosovitskiy et al., 2021). Defaults are ViT-B/16.

    Fields:
        image_size: side of the (square) training images; sets the position table.
        patch_size: side of a square patch.
        num_channels: image channels (3 for RGB).
        num_layers: pre-norm encoder blocks.
        num_heads: attention heads; must divide `hidden_dim`.
        hidden_dim: model width.
        intermediate_dim: feed-forward hidden width.
        dropout: residual, embedding and attention-probability dropout.
        layer_norm_epsilon: epsilon of every LayerNorm (1e-12 in transformers' ViT).
        activation: feed-forward activation ("gelu" is the exact erf form).
        use_class_token: prepend a learned class token to the patches.
        use_pooler: `pooled_output` is tanh(dense(first token)), transformers'
            `ViTModel` pooler; without it, `pooled_output` is the class
            token's output (or the mean over patches when there is none).
        image_mean, image_std: per-channel normalisation of [0, 1] pixels
            (`preprocess_images`); 0.5 / 0.5 maps pixels to [-1, 1] as
            transformers' `ViTImageProcessor` does.
    """

    image_size: int = positive(224)
    patch_size: int = positive(16)
    num_channels: int = positive(3)
    num_layers: int = positive(12)
    num_heads: int = positive(12)
    hidden_dim: int = positive(768)
    intermediate_dim: int = positive(3072)
    dropout: float = 0.0
    layer_norm_epsilon: float = 1e-12
    activation: str = "gelu"
    use_class_token: bool = True
    use_pooler: bool = True
    image_mean: tuple = (0.5, 0.5, 0.5)
    image_std: tuple = (0.5, 0.5, 0.5)

    def __post_init__(self):
        self.image_mean = tuple(float(v) for v in self.image_mean)
        self.image_std = tuple(float(v) for v in self.image_std)
        super().__post_init__()

    def validate(self):
        super().validate()
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                "num_heads must divide hidden_dim; received "
                f"hidden_dim={self.hidden_dim}, num_heads={self.num_heads}"
            )
        if self.patch_size > self.image_size:
            raise ValueError(
                "patch_size must not exceed image_size; received "
                f"image_size={self.image_size}, patch_size={self.patch_size}"
            )
        if not (isinstance(self.layer_norm_epsilon, (int, float)) and self.layer_norm_epsilon > 0):
            raise ValueError(
                f"layer_norm_epsilon must be a positive number; received "
                f"layer_norm_epsilon={self.layer_norm_epsilon!r}"
            )
        if self.use_pooler and not self.use_class_token:
            raise ValueError(
                "use_pooler needs a class token to pool; received use_pooler=True, "
                "use_class_token=False"
            )
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            if len(value) != self.num_channels:
                raise ValueError(
                    f"{name} needs one value per channel (num_channels={self.num_channels}); "
                    f"received {name}={value!r}"
                )
        if min(self.image_std) <= 0:
            raise ValueError(f"image_std must be positive; received image_std={self.image_std!r}")

    @property
    def grid_size(self):
        """Patches along each side of an `image_size` image."""
        return self.image_size // self.patch_size

    @property
    def max_sequence_length(self):
        """Tokens of an `image_size` image: patches plus the class token."""
        return self.grid_size**2 + int(self.use_class_token)

    def count_params(self, num_classes=None):
        """Parameters of `ViTBackbone` (with its pooler when used), without building it.

        `num_classes` adds a `ViTImageClassifier` head. ViT-B/16 gives
        86,389,248, transformers' `ViTModel` count (with pooler).
        """
        h, f = self.hidden_dim, self.intermediate_dim
        embeddings = self.patch_size**2 * self.num_channels * h + h  # convolution
        embeddings += self.max_sequence_length * h + (h if self.use_class_token else 0)
        attention = 4 * (h * h + h)
        feed_forward = (h * f + f) + (f * h + h)
        layer = attention + feed_forward + 2 * (2 * h)
        total = embeddings + self.num_layers * layer + 2 * h  # + final LayerNorm
        if self.use_pooler:
            total += h * h + h
        if num_classes:
            total += h * num_classes + num_classes
        return total
