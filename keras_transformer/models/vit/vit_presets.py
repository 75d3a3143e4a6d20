"""ViT presets: the published ViT-B/16 and ViT-L/16 shapes, and a tiny one for tests (random weights).

Published weights come in through `keras_transformer.convert.from_huggingface`.
"""

from keras_transformer.models.presets import register_preset
from keras_transformer.models.vit.vit_config import ViTConfig

# name: (num_layers, hidden_dim, num_heads, intermediate_dim)
_SHAPES = {
    "vit_base_patch16_224": (12, 768, 12, 3072),
    "vit_large_patch16_224": (24, 1024, 16, 4096),
}

for _name, (_layers, _hidden, _heads, _ffn) in _SHAPES.items():
    register_preset(
        _name,
        "vit",
        ViTConfig(
            image_size=224,
            patch_size=16,
            num_layers=_layers,
            num_heads=_heads,
            hidden_dim=_hidden,
            intermediate_dim=_ffn,
        ),
    )

# 32 x 32 images in 8 x 8 patches (16 tokens + class token), about 40k parameters.
register_preset(
    "vit_tiny",
    "vit",
    ViTConfig(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        layer_norm_epsilon=1e-6,
    ),
)
