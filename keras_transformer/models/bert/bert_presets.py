"""BERT presets: the published shapes (Turc et al., 2019 for the small ones), random weights.

Registering happens on import of `keras_transformer.models.bert`. Every preset
uses the uncased WordPiece vocabulary size (30522), 512 positions, 2 segments.
"""

from keras_transformer.models.bert.bert_config import BertConfig
from keras_transformer.models.presets import register_preset

# name: (num_layers, hidden_dim, num_heads, intermediate_dim)
_SHAPES = {
    "bert_tiny": (2, 128, 2, 512),
    "bert_mini": (4, 256, 4, 1024),
    "bert_small": (4, 512, 8, 2048),
    "bert_medium": (8, 512, 8, 2048),
    "bert_base": (12, 768, 12, 3072),
    "bert_large": (24, 1024, 16, 4096),
}

for _name, (_layers, _hidden, _heads, _ffn) in _SHAPES.items():
    register_preset(
        _name,
        "bert",
        BertConfig(
            vocabulary_size=30522,
            num_layers=_layers,
            num_heads=_heads,
            hidden_dim=_hidden,
            intermediate_dim=_ffn,
            max_sequence_length=512,
            num_segments=2,
        ),
    )

# A few thousand parameters, for tests and examples (byte-level ids fit its vocabulary).
register_preset(
    "bert_test",
    "bert",
    BertConfig(
        vocabulary_size=260,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        dropout=0.0,
        max_sequence_length=32,
        num_segments=2,
    ),
)
