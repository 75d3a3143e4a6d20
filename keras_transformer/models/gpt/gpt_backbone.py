"""The GPT backbone: token (+ learned position) embedding, pre-norm causal decoder blocks."""

import keras

from keras_transformer.layers import (
    LearnedPositionEmbedding,
    ReversibleEmbedding,
    TransformerDecoderBlock,
)
from keras_transformer.models.backbone import Backbone
from keras_transformer.models.gpt.gpt_config import GPTConfig
from keras_transformer.registration import register

INPUT_KEYS = ("token_ids", "padding_mask")


def _initializer():
    # GPT-2 initialises every weight matrix from N(0, 0.02); a fresh object per layer.
    return keras.initializers.RandomNormal(stddev=0.02)


@register
class GPTBackbone(Backbone):
    """GPT-2-style decoder-only Transformer (no cross-attention), functional.

    token_ids -> token embedding (+ learned position embedding for positions
    0..length-1) -> dropout -> `num_layers` pre-norm causal
    `TransformerDecoderBlock`s -> final LayerNorm -> `sequence_output`.
    With `position_encoding="rotary"` there is no position table; each block
    rotates its queries and keys instead.

    Positions count from 0 in every row, as GPT-2's `forward()` does, so
    batches should be right-padded. `padding_mask` (batch, length), 1 = real
    token, hides padded keys from every query; with right padding causality
    hides them from real tokens anyway, so outputs at real positions do not
    depend on the padding. Example: `padding_mask=[[1, 1, 0]]` lets positions
    0, 1, 2 attend to `[[1,0,0],[1,1,0],[1,1,0]]`.

    Layers reachable as attributes (checkpoint converters and
    `GPTCausalLM.call_with_cache` use them): `token_embedding`
    (`ReversibleEmbedding`, doubles as the output projection),
    `position_embedding` (`LearnedPositionEmbedding` or None),
    `embeddings_dropout`, `decoder_blocks` (list; `decoder_block_{i}`),
    `decoder_norm`. `transformer_layers` and `layer_norm` are read-only
    aliases of the last two (their names before the families shared one
    vocabulary; `.keras` files of that time load unchanged).

    Args: the fields of `GPTConfig` (see there), plus `name`, `trainable`,
    `dtype` (a dtype policy passed to every layer).

    Inputs: {"token_ids": int (batch, length), "padding_mask": int/bool (batch, length)}.
    Outputs: {"sequence_output": (batch, length, hidden_dim)}.

    Example:
    >>> backbone = GPTBackbone.from_preset("gpt2_tiny")
    >>> ids = np.array([[5, 6, 7, 0]]); mask = np.array([[1, 1, 1, 0]])
    >>> backbone({"token_ids": ids, "padding_mask": mask})["sequence_output"].shape
    (1, 4, 64)
    """

    config_class = GPTConfig
    family = "gpt"
    input_keys = INPUT_KEYS
    length_keys = ("token_ids",)
    id_limits = {"token_ids": "vocabulary_size"}

    def __init__(
        self,
        vocabulary_size=50257,
        num_layers=12,
        num_heads=12,
        num_key_value_heads=None,
        hidden_dim=768,
        intermediate_dim=3072,
        dropout=0.1,
        max_sequence_length=1024,
        layer_norm_epsilon=1e-5,
        position_encoding="learned",
        activation="gelu_approximate",
        tie_word_embeddings=True,
        **kwargs,
    ):
        config = GPTConfig(
            vocabulary_size=vocabulary_size,
            num_layers=num_layers,
            num_heads=num_heads,
            num_key_value_heads=num_key_value_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            max_sequence_length=max_sequence_length,
            layer_norm_epsilon=layer_norm_epsilon,
            position_encoding=position_encoding,
            activation=activation,
            tie_word_embeddings=tie_word_embeddings,
        )
        dtype = kwargs.get("dtype")

        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=tie_word_embeddings,
            embeddings_initializer=_initializer(),
            # float32 logits even under mixed precision: a large-vocabulary
            # softmax and its loss lose too much in float16.
            reverse_dtype="float32",
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = None
        if position_encoding == "learned":
            self.position_embedding = LearnedPositionEmbedding(
                max_sequence_length,
                initializer=keras.initializers.RandomNormal(stddev=0.01),
                dtype=dtype,
                name="position_embedding",
            )
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.decoder_blocks = [
            TransformerDecoderBlock(
                num_heads,
                intermediate_dim,
                num_key_value_heads=num_key_value_heads,
                dropout=dropout,
                activation=activation,
                normalize_first=True,
                layer_norm_epsilon=layer_norm_epsilon,
                use_rotary_embedding=position_encoding == "rotary",
                kernel_initializer=_initializer(),
                dtype=dtype,
                name=f"decoder_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.decoder_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="decoder_norm"
        )

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = self.embed(token_ids)
        for block in self.decoder_blocks:
            x = block(x, decoder_padding_mask=padding_mask)
        sequence_output = self.decoder_norm(x)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": sequence_output},
            config=config,
            **kwargs,
        )

    def embed(self, token_ids, start_index=0, training=None):
        """Token (+ position) embeddings of ids whose first position is `start_index`.

        (batch, length) -> (batch, length, hidden_dim). `start_index` may be a
        traced scalar (cached decoding).
        """
        x = self.token_embedding(token_ids)
        if self.position_embedding is not None:
            x = x + self.position_embedding(x, start_index=start_index)
        return self.embeddings_dropout(x, training=training)

    @property
    def layer_norm(self):
        """Read-only alias of `decoder_norm`."""
        return self.decoder_norm
