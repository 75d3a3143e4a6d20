"""The T5 encoder-decoder backbone: shared embedding, relative position bias, pre-norm RMSNorm blocks."""

import keras

from keras_transformer.layers import (
    RelativePositionBias,
    ReversibleEmbedding,
    RMSNorm,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from keras_transformer.models.backbone import Backbone
from keras_transformer.models.t5.t5_config import T5Config
from keras_transformer.registration import register

INPUT_KEYS = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask")


@register
class T5Backbone(Backbone):
    """T5 (Raffel et al., 2020) encoder-decoder, v1.0 or v1.1 style.

    One token embedding is shared by encoder and decoder. Each stack has one
    `RelativePositionBias` (bidirectional for the encoder, causal for the
    decoder), computed once and added to the attention logits of every block
    (T5 keeps the table in block 0 and reuses its output). Blocks are pre-norm
    with RMSNorm, have no biases and no 1/sqrt(key_dim) scaling; each stack
    ends with an RMSNorm and dropout.

    Arguments are the fields of `T5Config` (same names, same defaults) plus
    `name`, `trainable` and `dtype`. `tie_word_embeddings` and
    `scale_decoder_outputs` only concern the LM head (`T5Seq2SeqLM`).

    Inputs (dict): `encoder_token_ids` (batch, source) and
    `decoder_token_ids` (batch, target) int ids; `encoder_padding_mask` and
    `decoder_padding_mask`, 1 for real tokens. The padding masks are explicit
    because T5's decoder start token is the pad id 0. The decoder is causal
    and cross-attends to the encoder output with the encoder padding mask.

    Outputs (dict): `encoder_sequence_output` (batch, source, hidden_dim) and
    `decoder_sequence_output` (batch, target, hidden_dim), both after their
    stack's final RMSNorm (the decoder's BEFORE any head rescale).

    Example:
    >>> backbone = T5Backbone.from_preset("t5_tiny")
    >>> out = backbone({"encoder_token_ids": np.ones((2, 5), "int32"),
    ...                 "encoder_padding_mask": np.ones((2, 5), "int32"),
    ...                 "decoder_token_ids": np.zeros((2, 3), "int32"),
    ...                 "decoder_padding_mask": np.ones((2, 3), "int32")})
    >>> tuple(out["decoder_sequence_output"].shape)
    (2, 3, 24)
    """

    config_class = T5Config
    family = "t5"
    input_keys = INPUT_KEYS
    length_keys = ("encoder_token_ids", "decoder_token_ids")
    id_limits = {"encoder_token_ids": "vocabulary_size", "decoder_token_ids": "vocabulary_size"}

    def __init__(
        self,
        vocabulary_size=32128,
        num_layers=6,
        num_decoder_layers=None,
        num_heads=8,
        key_dim=64,
        hidden_dim=512,
        intermediate_dim=2048,
        dropout=0.1,
        layer_norm_epsilon=1e-6,
        activation="relu",
        gated_feed_forward=False,
        tie_word_embeddings=True,
        scale_decoder_outputs=True,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        max_sequence_length=512,
        dtype=None,
        **kwargs,
    ):
        config = T5Config(
            vocabulary_size=vocabulary_size,
            num_layers=num_layers,
            num_decoder_layers=num_decoder_layers,
            num_heads=num_heads,
            key_dim=key_dim,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            activation=activation,
            gated_feed_forward=gated_feed_forward,
            tie_word_embeddings=tie_word_embeddings,
            scale_decoder_outputs=scale_decoder_outputs,
            relative_attention_num_buckets=relative_attention_num_buckets,
            relative_attention_max_distance=relative_attention_max_distance,
            max_sequence_length=max_sequence_length,
        )
        # === Layers ===
        # T5 draws the shared table from N(0, 1); the tied head's d_model**-0.5
        # rescale brings its logits back to unit scale.
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=True,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype=dtype,
            name="token_embedding",
        )
        self.encoder_relative_position_bias = self._position_bias(config, True, dtype, "encoder")
        self.decoder_relative_position_bias = self._position_bias(config, False, dtype, "decoder")
        block_args = dict(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            key_dim=key_dim,
            dropout=dropout,
            activation=activation,
            gated_feed_forward=gated_feed_forward,
            normalization="rms_norm",
            normalize_first=True,
            layer_norm_epsilon=layer_norm_epsilon,
            use_bias=False,
            use_attention_scale=False,
            dtype=dtype,
        )
        self.encoder_blocks = [
            TransformerEncoderBlock(**block_args, name=f"encoder_block_{i}")
            for i in range(num_layers)
        ]
        self.decoder_blocks = [
            TransformerDecoderBlock(**block_args, name=f"decoder_block_{i}")
            for i in range(config.decoder_layers)
        ]
        self.encoder_norm = RMSNorm(layer_norm_epsilon, dtype=dtype, name="encoder_norm")
        self.decoder_norm = RMSNorm(layer_norm_epsilon, dtype=dtype, name="decoder_norm")
        # Dropout after the embedding lookup and after each final norm, as T5 does.
        self.encoder_embedding_dropout = self._dropout(dropout, dtype, "encoder_embedding_dropout")
        self.encoder_output_dropout = self._dropout(dropout, dtype, "encoder_output_dropout")
        self.decoder_embedding_dropout = self._dropout(dropout, dtype, "decoder_embedding_dropout")
        self.decoder_output_dropout = self._dropout(dropout, dtype, "decoder_output_dropout")

        # === Functional model ===
        inputs = {
            key: keras.Input(shape=(None,), dtype="int32", name=key) for key in INPUT_KEYS
        }
        encoder_output = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        decoder_output = self.decode(
            inputs["decoder_token_ids"],
            inputs["decoder_padding_mask"],
            encoder_output,
            inputs["encoder_padding_mask"],
        )
        outputs = {
            "encoder_sequence_output": encoder_output,
            "decoder_sequence_output": decoder_output,
        }
        super().__init__(inputs=inputs, outputs=outputs, config=config, dtype=dtype, **kwargs)
        self._scale_query_initialization()

    @staticmethod
    def _position_bias(config, bidirectional, dtype, stack):
        return RelativePositionBias(
            num_heads=config.num_heads,
            num_buckets=config.relative_attention_num_buckets,
            max_distance=config.relative_attention_max_distance,
            bidirectional=bidirectional,
            dtype=dtype,
            name=f"{stack}_relative_position_bias",
        )

    @staticmethod
    def _dropout(rate, dtype, name):
        return keras.layers.Dropout(rate, dtype=dtype, name=name)

    def _scale_query_initialization(self):
        # T5 computes attention logits without 1/sqrt(key_dim) and folds that
        # factor into the query initialisation instead (Mesh TensorFlow: std
        # (hidden_dim * key_dim) ** -0.5), so initial logits stay O(1) and the
        # softmax is not saturated; from-scratch training needs it.
        factor = self.model_config.key_dim**-0.5
        for block in self.encoder_blocks + self.decoder_blocks:
            for attention in (block.self_attention, getattr(block, "cross_attention", None)):
                if attention is not None:
                    query = getattr(attention, "query_dense", None) or attention._query_dense
                    kernel = query.kernel
                    kernel.assign(kernel * factor)

    # ------------------------------------------------------------ stacks
    # Used to build the functional graph, and by `T5Seq2SeqLM` to run the
    # encoder alone for decoding.

    def encode(self, token_ids, padding_mask, training=None):
        """(batch, source) ids and mask -> (batch, source, hidden_dim) encoder output."""
        x = self.token_embedding(token_ids)
        x = self.encoder_embedding_dropout(x, training=training)
        bias = self.encoder_relative_position_bias(x)  # (1, heads, source, source)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=padding_mask, attention_bias=bias, training=training)
        x = self.encoder_norm(x)
        return self.encoder_output_dropout(x, training=training)

    def decode(self, token_ids, padding_mask, encoder_output, encoder_padding_mask, training=None):
        """The whole target at once: (batch, target) -> (batch, target, hidden_dim)."""
        x = self.token_embedding(token_ids)
        x = self.decoder_embedding_dropout(x, training=training)
        bias = self.decoder_relative_position_bias(x)  # (1, heads, target, target), causal buckets
        for block in self.decoder_blocks:
            x = block(
                x,
                encoder_output,
                decoder_padding_mask=padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                self_attention_bias=bias,
                training=training,
            )
        x = self.decoder_norm(x)
        return self.decoder_output_dropout(x, training=training)
