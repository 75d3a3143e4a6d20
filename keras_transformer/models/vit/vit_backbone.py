"""The Vision Transformer encoder as a functional model: patches, pre-norm blocks, pooler."""

import keras
from keras import ops

from keras_transformer.layers.patch_embedding import PatchEmbedding
from keras_transformer.layers.transformer_encoder_block import TransformerEncoderBlock
from keras_transformer.models.backbone import Backbone
from keras_transformer.models.vit.vit_config import ViTConfig
from keras_transformer.registration import register


def vit_initializer():
    """N(0, 0.02) truncated at two standard deviations; a fresh instance per weight."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


@register
class ViTBackbone(Backbone):
    """ViT encoder: patch embedding (+ class token, learned positions), pre-norm blocks, final norm.

    tokens = PatchEmbedding(images) (class token first), then dropout, then
    `num_layers` pre-norm `TransformerEncoderBlock`s (exact GELU), then a
    LayerNorm: `sequence_output`. `pooled_output` is `tanh(dense(first
    token))` with `use_pooler` (transformers' `ViTModel`), else the class
    token's output, or the mean over patches without a class token.

    Images of another size than `image_size` work: the position table is
    resampled bicubically to the new patch grid (see `PatchEmbedding`).

    Sublayers (stable names; the Hugging Face converter relies on them):
    `patch_embedding`, `embeddings_dropout`, `encoder_blocks` (list;
    `encoder_block_{i}`), `encoder_norm`, `pooled_dense` (None without pooler).

    Inputs: a dict `{"images": (batch, height, width, num_channels) float}`
    (a bare tensor is accepted too), pixels normalised as
    `preprocess_images` does. No padding mask: every patch is real.
    Outputs (dict): `sequence_output` (batch, tokens, hidden_dim) and
    `pooled_output` (batch, hidden_dim).

    Arguments are the `ViTConfig` fields plus `name`, `trainable`, `dtype`.

    Example:
    >>> backbone = ViTBackbone.from_preset("vit_tiny")
    >>> out = backbone({"images": np.zeros((2, 32, 32, 3), "float32")})
    >>> out["sequence_output"].shape, out["pooled_output"].shape
    ((2, 17, 32), (2, 32))
    """

    config_class = ViTConfig
    family = "vit"
    input_keys = ("images",)

    def __init__(
        self,
        image_size,
        patch_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        num_channels=3,
        dropout=0.0,
        layer_norm_epsilon=1e-12,
        activation="gelu",
        use_class_token=True,
        use_pooler=True,
        image_mean=(0.5, 0.5, 0.5),
        image_std=(0.5, 0.5, 0.5),
        dtype=None,
        **kwargs,
    ):
        config = ViTConfig(
            image_size=image_size,
            patch_size=patch_size,
            num_channels=num_channels,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            activation=activation,
            use_class_token=use_class_token,
            use_pooler=use_pooler,
            image_mean=image_mean,
            image_std=image_std,
        )

        # === Layers ===
        self.patch_embedding = PatchEmbedding(
            image_size,
            patch_size,
            hidden_dim,
            num_channels=num_channels,
            use_class_token=use_class_token,
            kernel_initializer=vit_initializer(),
            embeddings_initializer=vit_initializer(),
            dtype=dtype,
            name="patch_embedding",
        )
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.encoder_blocks = [
            TransformerEncoderBlock(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                dropout=dropout,
                activation=activation,
                normalize_first=True,  # pre-norm, as in ViT
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=vit_initializer(),
                dtype=dtype,
                name=f"encoder_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.encoder_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="encoder_norm"
        )
        self.pooled_dense = None
        if use_pooler:
            self.pooled_dense = keras.layers.Dense(
                hidden_dim,
                activation="tanh",
                kernel_initializer=vit_initializer(),
                dtype=dtype,
                name="pooled_dense",
            )

        # === Functional model ===
        images = keras.Input((None, None, num_channels), dtype="float32", name="images")
        x = self.embeddings_dropout(self.patch_embedding(images))  # (batch, tokens, hidden)
        for block in self.encoder_blocks:
            x = block(x)
        x = self.encoder_norm(x)
        if use_pooler:
            pooled = self.pooled_dense(x[:, 0, :])  # the class token
        elif use_class_token:
            pooled = x[:, 0, :]
        else:
            pooled = ops.mean(x, axis=1)
        super().__init__(
            inputs={"images": images},
            outputs={"sequence_output": x, "pooled_output": pooled},
            config=config,
            dtype=dtype,
            **kwargs,
        )

    def check_inputs(self, inputs, owner=None):
        """The shared contract, plus: `images` is (batch, height, width, num_channels)."""
        super().check_inputs(inputs, owner)
        shape = tuple(inputs["images"].shape)
        channels = self.model_config.num_channels
        if len(shape) != 4 or shape[-1] != channels:
            raise ValueError(
                f"{owner or type(self).__name__}: images must have shape (batch, height, width, "
                f"{channels}) (channels last); received shape {shape}"
            )

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, dict):
            inputs = {"images": inputs}
        return super().__call__(inputs, *args, **kwargs)
