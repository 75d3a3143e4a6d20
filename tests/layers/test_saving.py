"""A functional model built only from our layers survives `.keras` (in a fresh process too:
tests/models/test_saving.py)."""

import keras
import numpy as np

from keras_transformer import layers
from tests.test_case import run_model_saving_test

VOCAB, SRC, TGT, DIM = 40, 7, 6, 16


def build_seq2seq():
    """An encoder-decoder touching every public layer."""
    source = keras.Input((SRC,), dtype="int32", name="source_ids")
    source_mask = keras.Input((SRC,), dtype="int32", name="source_padding_mask")
    target = keras.Input((TGT,), dtype="int32", name="target_ids")
    target_mask = keras.Input((TGT,), dtype="int32", name="target_padding_mask")

    embedding = layers.TokenAndPositionEmbedding(VOCAB, SRC, DIM, position_encoding="sinusoidal")
    x = embedding(source)
    bias = layers.RelativePositionBias(num_heads=2, num_buckets=8, max_distance=10)(x)
    x = layers.TransformerEncoderBlock(
        num_heads=2,
        intermediate_dim=24,
        normalization="rms_norm",
        normalize_first=True,
        use_bias=False,
        use_attention_scale=False,
        gated_feed_forward=True,
        activation="gelu_approximate",
    )(x, padding_mask=source_mask, attention_bias=bias)
    x = layers.RMSNorm()(x)

    y = layers.ReversibleEmbedding(VOCAB, DIM, name="target_embedding")(target)
    y = y + layers.LearnedPositionEmbedding(TGT)(y)
    y = layers.TransformerDecoderBlock(
        num_heads=4, intermediate_dim=24, num_key_value_heads=2, use_rotary_embedding=True,
        normalize_first=True,
    )(y, x, decoder_padding_mask=target_mask, encoder_padding_mask=source_mask)
    y = layers.MultiHeadAttention(num_heads=2, key_dim=8)(y, x, padding_mask=source_mask)
    y = layers.FeedForward(32, activation="silu", gated=True)(y)
    y = layers.RotaryEmbedding()(y)
    y = y + layers.SinusoidalPositionEncoding()(y)
    logits = embedding(y, reverse=True)  # tied output projection
    return keras.Model(
        {"source_ids": source, "source_padding_mask": source_mask, "target_ids": target,
         "target_padding_mask": target_mask},
        logits,
    )


def inputs():
    rng = np.random.default_rng(0)
    return {
        "source_ids": rng.integers(1, VOCAB, (3, SRC)).astype("int32"),
        "source_padding_mask": (np.arange(SRC)[None] < np.array([[7], [4], [2]])).astype("int32"),
        "target_ids": rng.integers(1, VOCAB, (3, TGT)).astype("int32"),
        "target_padding_mask": (np.arange(TGT)[None] < np.array([[6], [3], [5]])).astype("int32"),
    }


def test_a_model_of_every_public_layer_saves_and_reloads():
    run_model_saving_test(build_seq2seq(), inputs())
