"""BERT hyperparameters, and the closed-form parameter count they imply."""

import dataclasses

from keras_transformer.models.config import ModelConfig, positive


@dataclasses.dataclass
class BertConfig(ModelConfig):
    """Hyperparameters of a BERT encoder (Devlin et al., 2019). Defaults are BERT-base.

    Fields:
        vocabulary_size: token ids lie in [0, vocabulary_size).
        num_layers: post-norm encoder blocks.
        num_heads: attention heads; must divide `hidden_dim`.
        hidden_dim: model width.
        intermediate_dim: feed-forward hidden width.
        dropout: residual, embedding and attention-probability dropout.
        max_sequence_length: rows of the learned position table (longest input).
        num_segments: rows of the segment ("token type") table.
        layer_norm_epsilon: epsilon of every LayerNorm (1e-12 in BERT).
        activation: feed-forward activation: "gelu" is the exact erf form of
            the original BERT; "gelu_approximate" the tanh form (HF "gelu_new").
    """

    vocabulary_size: int = positive(30522)
    num_layers: int = positive(12)
    num_heads: int = positive(12)
    hidden_dim: int = positive(768)
    intermediate_dim: int = positive(3072)
    dropout: float = 0.1
    max_sequence_length: int = positive(512)
    num_segments: int = positive(2)
    layer_norm_epsilon: float = 1e-12
    activation: str = "gelu"

    def validate(self):
        super().validate()
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                "num_heads must divide hidden_dim; received "
                f"hidden_dim={self.hidden_dim}, num_heads={self.num_heads}"
            )
        if not (isinstance(self.layer_norm_epsilon, (int, float)) and self.layer_norm_epsilon > 0):
            raise ValueError(
                f"layer_norm_epsilon must be a positive number; received "
                f"layer_norm_epsilon={self.layer_norm_epsilon!r}"
            )
        if not isinstance(self.activation, str):
            raise ValueError(
                f"activation must be an activation name such as 'gelu'; received "
                f"activation={self.activation!r}"
            )

    def count_params(self, masked_lm_head=False, next_sentence_head=False):
        """Parameters of `BertBackbone` (with its pooler), computed without building it.

        `masked_lm_head` adds the MLM transform (dense + LayerNorm) and output
        bias (the output projection is tied to the token embedding);
        `next_sentence_head` adds the 2-way next-sentence dense layer.
        BERT-base gives 109,482,240, Hugging Face's `BertModel` count.
        """
        h, f = self.hidden_dim, self.intermediate_dim
        embeddings = (self.vocabulary_size + self.max_sequence_length + self.num_segments) * h
        embeddings += 2 * h  # embedding LayerNorm
        attention = 4 * (h * h + h)  # query, key, value, output projections with biases
        feed_forward = (h * f + f) + (f * h + h)
        layer = attention + feed_forward + 2 * (2 * h)  # two LayerNorms
        total = embeddings + self.num_layers * layer + (h * h + h)  # + pooler
        if masked_lm_head:
            total += (h * h + h) + 2 * h + self.vocabulary_size
        if next_sentence_head:
            total += 2 * h + 2
        return total
