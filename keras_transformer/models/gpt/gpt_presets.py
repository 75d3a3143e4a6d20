"""GPT presets: the four published GPT-2 sizes and a tiny one for tests.

Presets are configs only (freshly initialised weights); published weights come
in through `keras_transformer.convert.from_huggingface`.
"""

from keras_transformer.models.gpt.gpt_config import GPTConfig
from keras_transformer.models.presets import register_preset


def _gpt2(num_layers, hidden_dim, num_heads):
    return GPTConfig(
        vocabulary_size=50257,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=4 * hidden_dim,
        dropout=0.1,
        max_sequence_length=1024,
    )


PRESETS = {
    # name -> config
    "gpt2_small": _gpt2(12, 768, 12),
    "gpt2_medium": _gpt2(24, 1024, 16),
    "gpt2_large": _gpt2(36, 1280, 20),
    "gpt2_xl": _gpt2(48, 1600, 25),
    # Byte-level sized (ids 1..256 are bytes + 1, 0 is padding), for tests and demos.
    "gpt2_tiny": GPTConfig(
        vocabulary_size=257,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=256,
        dropout=0.0,
        max_sequence_length=128,
    ),
}

for _name, _config in PRESETS.items():
    register_preset(_name, "gpt", _config)
