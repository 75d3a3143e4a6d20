"""The BERT encoder as a functional model: embeddings, post-norm blocks, pooler."""

import keras

from keras_transformer.layers.reversible_embedding import ReversibleEmbedding
from keras_transformer.layers.token_and_position_embedding import TokenAndPositionEmbedding
from keras_transformer.layers.transformer_encoder_block import TransformerEncoderBlock
from keras_transformer.models.backbone import Backbone
from keras_transformer.models.bert.bert_config import BertConfig
from keras_transformer.registration import register


def bert_initializer():
    """BERT's N(0, 0.02) truncated at two standard deviations; a fresh instance per weight."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


@register
class BertBackbone(Backbone):
    """BERT encoder: token + learned position + segment embeddings, post-norm blocks, pooler.

    embeddings = LayerNorm(token[ids] + position[0..L-1] + segment[segment_ids]),
    then dropout, then `num_layers` post-norm `TransformerEncoderBlock`s
    (LayerNorm after each residual, exact GELU by default), and a pooler:
    `tanh(dense(sequence_output[:, 0]))`, the first ([CLS]) token.

    Sublayers (stable names; the Hugging Face converter relies on them):
    `token_embedding` (a `TokenAndPositionEmbedding`: `.token_embedding`
    holds the word table, `.position_embedding` the position table; task
    heads call it with `reverse=True` for tied logits), `segment_embedding`,
    `embeddings_layer_norm`, `embeddings_dropout`, `encoder_blocks`
    (list; `encoder_block_{i}`), `pooled_dense`; `position_embedding` is an
    alias of `token_embedding.position_embedding`. Files saved when the
    blocks were `transformer_layers` / `transformer_layer_{i}` load unchanged
    (`.keras` weights are addressed by layer order, not by name).

    Inputs (dict): `token_ids` (batch, length) int, `segment_ids` (batch,
    length) int in [0, num_segments), `padding_mask` (batch, length), 1 for
    real tokens and 0 for padding (padded keys get no attention; outputs at
    padded positions are computed but meaningless).
    Outputs (dict): `sequence_output` (batch, length, hidden_dim) and
    `pooled_output` (batch, hidden_dim).

    A missing input key, a token or segment id out of range (eager calls),
    or a length above `max_sequence_length` raises a ValueError (the
    `Backbone` input contract, shared by every family).

    Arguments are the `BertConfig` fields plus `name`, `trainable`, `dtype`.

    Example:
    >>> backbone = BertBackbone.from_preset("bert_test")
    >>> out = backbone({"token_ids": np.array([[5, 6, 7]]),
    ...                 "segment_ids": np.array([[0, 0, 1]]),
    ...                 "padding_mask": np.array([[1, 1, 1]])})
    >>> out["sequence_output"].shape, out["pooled_output"].shape
    ((1, 3, 16), (1, 16))
    """

    config_class = BertConfig
    family = "bert"
    input_keys = ("token_ids", "segment_ids", "padding_mask")
    length_keys = ("token_ids", "segment_ids")
    id_limits = {"token_ids": "vocabulary_size", "segment_ids": "num_segments"}

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        max_sequence_length=512,
        num_segments=2,
        layer_norm_epsilon=1e-12,
        activation="gelu",
        dtype=None,
        **kwargs,
    ):
        config = BertConfig(
            vocabulary_size=vocabulary_size,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            max_sequence_length=max_sequence_length,
            num_segments=num_segments,
            layer_norm_epsilon=layer_norm_epsilon,
            activation=activation,
        )

        # === Layers ===
        self.token_embedding = TokenAndPositionEmbedding(
            vocabulary_size,
            max_sequence_length,
            hidden_dim,
            position_encoding="learned",
            embeddings_initializer=bert_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        # A ReversibleEmbedding (not keras Embedding) so concrete ids are range-checked.
        self.segment_embedding = ReversibleEmbedding(
            num_segments,
            hidden_dim,
            embeddings_initializer=bert_initializer(),
            dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embeddings_dropout"
        )
        self.encoder_blocks = [
            TransformerEncoderBlock(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                dropout=dropout,
                activation=activation,
                normalize_first=False,  # post-norm, as in BERT
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=bert_initializer(),
                dtype=dtype,
                name=f"encoder_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim,
            activation="tanh",
            kernel_initializer=bert_initializer(),
            dtype=dtype,
            name="pooled_dense",
        )

        # === Functional model ===
        inputs = {
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
            "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
        }
        x = self.embeddings_add(
            [
                self.token_embedding(inputs["token_ids"]),  # (batch, length, hidden)
                self.segment_embedding(inputs["segment_ids"]),
            ]
        )
        x = self.embeddings_layer_norm(x)
        x = self.embeddings_dropout(x)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=inputs["padding_mask"])
        outputs = {
            "sequence_output": x,
            "pooled_output": self.pooled_dense(x[:, 0, :]),  # the [CLS] position
        }
        super().__init__(inputs=inputs, outputs=outputs, config=config, dtype=dtype, **kwargs)

    @property
    def position_embedding(self):
        """The learned position table (inside `token_embedding`)."""
        return self.token_embedding.position_embedding
