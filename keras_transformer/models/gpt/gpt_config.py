"""Hyperparameters of a GPT-style decoder-only model."""

import dataclasses
import numbers

from keras_transformer.models.config import ModelConfig, positive

POSITION_ENCODINGS = ("learned", "rotary")


@dataclasses.dataclass
class GPTConfig(ModelConfig):
    """A GPT-style causal language model (GPT-2 and its rotary/grouped-query variants).

    The defaults are GPT-2 small (124M parameters).

    Args:
        vocabulary_size: number of token ids.
        num_layers: number of decoder blocks.
        num_heads: query heads per block; must divide `hidden_dim`.
        num_key_value_heads: key/value heads (grouped-query attention); None
            means `num_heads`; must divide `num_heads`.
        hidden_dim: model width.
        intermediate_dim: feed-forward width (GPT-2: 4 * hidden_dim).
        dropout: rate for the embedding, residual and attention dropouts.
        max_sequence_length: longest sequence; the size of the learned
            position table.
        layer_norm_epsilon: LayerNorm epsilon.
        position_encoding: "learned" (GPT-2: a trained table added to the token
            embeddings) or "rotary" (RoPE applied to queries and keys).
        activation: feed-forward activation; "gelu_approximate" is GPT-2's
            tanh form ("gelu_new"), "gelu" the exact erf form.
        tie_word_embeddings: the output projection reuses the token embedding
            matrix; False gives a separate (hidden_dim, vocabulary_size) head.
    """

    vocabulary_size: int = positive(50257)
    num_layers: int = positive(12)
    num_heads: int = positive(12)
    num_key_value_heads: int = positive(None, optional=True)
    hidden_dim: int = positive(768)
    intermediate_dim: int = positive(3072)
    dropout: float = 0.1
    max_sequence_length: int = positive(1024)
    layer_norm_epsilon: float = 1e-5
    position_encoding: str = "learned"
    activation: str = "gelu_approximate"
    tie_word_embeddings: bool = True

    def validate(self):
        super().validate()
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                "num_heads must divide hidden_dim; received "
                f"hidden_dim={self.hidden_dim}, num_heads={self.num_heads}"
            )
        if self.num_heads % self.key_value_heads:
            raise ValueError(
                "num_key_value_heads must divide num_heads; received "
                f"num_heads={self.num_heads}, num_key_value_heads={self.num_key_value_heads}"
            )
        if self.position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"position_encoding must be one of {POSITION_ENCODINGS}; "
                f"received position_encoding={self.position_encoding!r}"
            )
        if self.position_encoding == "rotary" and self.head_dim % 2:
            raise ValueError(
                "rotary position encoding needs an even head size hidden_dim / num_heads; "
                f"received hidden_dim={self.hidden_dim}, num_heads={self.num_heads}"
            )
        epsilon = self.layer_norm_epsilon
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or epsilon <= 0:
            raise ValueError(
                f"layer_norm_epsilon must be a positive number; received layer_norm_epsilon={epsilon!r}"
            )
        if not isinstance(self.tie_word_embeddings, bool):
            raise ValueError(
                "tie_word_embeddings must be a bool; "
                f"received tie_word_embeddings={self.tie_word_embeddings!r}"
            )

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    @property
    def key_value_heads(self):
        """num_key_value_heads with None resolved to num_heads."""
        return self.num_key_value_heads or self.num_heads

    def count_params(self):
        """Parameters of `GPTBackbone` (and so of `GPTCausalLM`), in pure Python.

        Per block: two LayerNorms (4h), query and output projections with
        biases (2h² + 2h), key and value projections with biases (2·h·kv + 2kv,
        kv = key/value heads × head size), feed-forward (2·h·i + i + h). Plus
        the token table (v·h), the position table (n·h, learned only), the
        final LayerNorm (2h) and the untied head (h·v) when not tied.
        """
        h, i, v = self.hidden_dim, self.intermediate_dim, self.vocabulary_size
        kv = self.key_value_heads * self.head_dim
        attention = 2 * h * h + 2 * h + 2 * h * kv + 2 * kv
        feed_forward = 2 * h * i + i + h
        block = attention + feed_forward + 4 * h
        total = v * h + self.num_layers * block + 2 * h
        if self.position_encoding == "learned":
            total += self.max_sequence_length * h
        if not self.tie_word_embeddings:
            total += h * v
        return total
