"""T5 presets: the published shapes (Raffel et al., 2020; the T5 v1.1 release), randomly initialised."""

from keras_transformer.models.presets import register_preset
from keras_transformer.models.t5.t5_config import T5Config


def _t5(num_layers, hidden_dim, num_heads, intermediate_dim, v1_1=False):
    # v1.0: ReLU feed-forward, tied head with the d_model**-0.5 rescale.
    # v1.1: gated-GELU (tanh form) feed-forward, separate head, no rescale.
    return T5Config(
        vocabulary_size=32128,
        num_layers=num_layers,
        num_heads=num_heads,
        key_dim=64,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        activation="gelu_approximate" if v1_1 else "relu",
        gated_feed_forward=v1_1,
        tie_word_embeddings=not v1_1,
        scale_decoder_outputs=not v1_1,
    )


def _v1_0(num_layers, hidden_dim, num_heads, intermediate_dim):
    return _t5(num_layers, hidden_dim, num_heads, intermediate_dim)


def _v1_1(num_layers, hidden_dim, num_heads, intermediate_dim):
    return _t5(num_layers, hidden_dim, num_heads, intermediate_dim, v1_1=True)


PRESETS = {
    "t5_small": _v1_0(6, 512, 8, 2048),  # 60.5M parameters
    "t5_base": _v1_0(12, 768, 12, 3072),  # 222.9M
    "t5_large": _v1_0(24, 1024, 16, 4096),  # 737.7M
    "t5_1_1_small": _v1_1(8, 512, 6, 1024),  # 77.0M
    "t5_1_1_base": _v1_1(12, 768, 12, 2048),  # 247.6M
    "t5_1_1_large": _v1_1(24, 1024, 16, 2816),  # 783.2M
    # For tests (byte-level vocabulary): one encoder and two decoder blocks,
    # heads * key_dim != hidden_dim.
    "t5_tiny": T5Config(
        vocabulary_size=257,
        num_layers=1,
        num_decoder_layers=2,
        num_heads=4,
        key_dim=8,
        hidden_dim=24,
        intermediate_dim=48,
        dropout=0.0,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        max_sequence_length=64,
    ),
}

for _name, _config in PRESETS.items():
    register_preset(_name, "t5", _config)
