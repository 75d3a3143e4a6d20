"""The hyperparameters of a T5 encoder-decoder (v1.0 and v1.1 styles)."""

import dataclasses
import numbers

from keras_transformer.layers.feed_forward import _resolve_activation
from keras_transformer.models.config import ModelConfig, positive


@dataclasses.dataclass
class T5Config(ModelConfig):
    """T5 shapes and options. Defaults are `t5_small` (v1.0).

    Fields (Hugging Face `T5Config` names in brackets):
        vocabulary_size [vocab_size]: shared by encoder, decoder and head.
        num_layers [num_layers]: encoder blocks.
        num_decoder_layers [num_decoder_layers]: decoder blocks; None means
            `num_layers` (see `decoder_layers`).
        num_heads [num_heads]: attention heads.
        key_dim [d_kv]: per-head width; `num_heads * key_dim` need not equal
            `hidden_dim` (t5_1_1_small: 6 * 64 != 512).
        hidden_dim [d_model], intermediate_dim [d_ff].
        dropout [dropout_rate]: embeddings, residual branches, attention
            probabilities and the final outputs.
        layer_norm_epsilon: RMSNorm epsilon.
        activation: feed-forward activation; "relu" (v1.0) or
            "gelu_approximate" with `gated_feed_forward=True` (v1.1 "gated-gelu",
            whose GELU is the tanh form); any `FeedForward` activation name.
        gated_feed_forward: GEGLU-style feed-forward (v1.1).
        tie_word_embeddings: the LM head is the transposed token embedding
            (v1.0); otherwise a separate `lm_head` (v1.1).
        scale_decoder_outputs: multiply the decoder output by
            `hidden_dim ** -0.5` before the head (v1.0, with the tied head).
        relative_attention_num_buckets, relative_attention_max_distance: T5's
            bucketed relative position bias (one table per stack).
        max_sequence_length: the longest encoder or decoder input the
            backbone accepts (T5 has no position table; its relative
            buckets extend to any length, but the input contract is shared).
    """

    vocabulary_size: int = positive(32128)
    num_layers: int = positive(6)
    num_decoder_layers: int = positive(None, optional=True)
    num_heads: int = positive(8)
    key_dim: int = positive(64)
    hidden_dim: int = positive(512)
    intermediate_dim: int = positive(2048)
    dropout: float = 0.1
    layer_norm_epsilon: float = 1e-6
    activation: str = "relu"
    gated_feed_forward: bool = False
    tie_word_embeddings: bool = True
    scale_decoder_outputs: bool = True
    relative_attention_num_buckets: int = positive(32)
    relative_attention_max_distance: int = positive(128)
    max_sequence_length: int = positive(512)

    @property
    def decoder_layers(self):
        """The number of decoder blocks (`num_decoder_layers`, else `num_layers`)."""
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers

    def validate(self):
        super().validate()
        for name in ("gated_feed_forward", "tie_word_embeddings", "scale_decoder_outputs"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"T5Config.{name} must be a bool; received {name}={value!r}")
        epsilon = self.layer_norm_epsilon
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or epsilon <= 0:
            raise ValueError(
                f"T5Config.layer_norm_epsilon must be a positive float; received "
                f"layer_norm_epsilon={epsilon!r}"
            )
        if not isinstance(self.activation, str):
            raise ValueError(
                f"T5Config.activation must be an activation name; received "
                f"activation={self.activation!r}"
            )
        _resolve_activation(self.activation)  # raises a ValueError naming it
        # The causal (decoder) table is the stricter one: its exact range is
        # num_buckets // 2 offsets, and larger ones are log-spaced up to max_distance.
        buckets, distance = self.relative_attention_num_buckets, self.relative_attention_max_distance
        if buckets < 4 or distance <= buckets // 2:
            raise ValueError(
                "T5Config needs relative_attention_num_buckets >= 4 and "
                "relative_attention_max_distance > relative_attention_num_buckets // 2; "
                f"received relative_attention_num_buckets={buckets}, "
                f"relative_attention_max_distance={distance}"
            )

    def count_params(self, lm_head=False):
        """Parameters of `T5Backbone`, in pure Python; `lm_head` adds `T5Seq2SeqLM`'s untied head.

        No biases anywhere. Attention: query, key, value (h x n·k each) and
        output (n·k x h). Feed-forward: h x f in (twice when gated) and f x h
        out. RMSNorm: h scales. Encoder blocks have one attention and two
        norms, decoder blocks two attentions and three norms; each stack adds
        a final norm and a (buckets x heads) relative position table; the
        token table (v x h) is shared. The untied head (v1.1) is h x v.
        """
        h, f, v = self.hidden_dim, self.intermediate_dim, self.vocabulary_size
        inner = self.num_heads * self.key_dim
        attention = 4 * h * inner
        feed_forward = (2 if self.gated_feed_forward else 1) * h * f + f * h
        encoder_block = attention + feed_forward + 2 * h
        decoder_block = 2 * attention + feed_forward + 3 * h
        stacks = self.num_layers * encoder_block + self.decoder_layers * decoder_block
        position_tables = 2 * self.relative_attention_num_buckets * self.num_heads
        total = v * h + stacks + 2 * h + position_tables
        if lm_head and not self.tie_word_embeddings:
            total += h * v
        return total
