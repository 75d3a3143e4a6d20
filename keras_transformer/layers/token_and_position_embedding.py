"""Token embedding plus a chosen position encoding (BERT, GPT-2, T5 inputs)."""

import keras

from keras_transformer.layers._checks import check_bool, check_one_of, check_positive_int
from keras_transformer.layers.learned_position_embedding import LearnedPositionEmbedding
from keras_transformer.layers.reversible_embedding import ReversibleEmbedding
from keras_transformer.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
from keras_transformer.registration import register

POSITION_ENCODINGS = ("learned", "sinusoidal", None)


@register
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Sum of a token embedding and a position encoding.

    The token embedding is a `ReversibleEmbedding`, exposed as
    `token_embedding`; `layer(hidden, reverse=True)` uses it as the (tied)
    output projection, hidden states to vocabulary logits. Call the outer layer
    for that in a functional model (not `layer.token_embedding` directly), so
    the model shares one layer and saves it once. The position part is
    chosen by `position_encoding`:

      * "learned": `LearnedPositionEmbedding(sequence_length)` (BERT, GPT-2),
        a trainable (sequence_length, embedding_dim) table;
      * "sinusoidal": `SinusoidalPositionEncoding()` (fixed, no weights);
      * None: token embedding only, for models whose attention carries the
        positions (rotary embeddings, T5 relative position bias).

    Args:
        vocabulary_size: int > 0, number of token ids.
        sequence_length: int > 0, the longest sequence (the size of the
            learned position table; kept in the config for the others).
        embedding_dim: int > 0, output width.
        position_encoding: "learned", "sinusoidal" or None.
        tie_weights: bool, passed to the token `ReversibleEmbedding`.
        embeddings_initializer: initializer of the token embedding and of the
            learned position table.
        mask_zero: bool, id 0 is padding (see Masking).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: int token ids, (batch, length).
        start_index: int or scalar int tensor (may be traced), the position of
            the first token; a decoding step at position t passes t.
        reverse: bool; map hidden states (batch, length, embedding_dim) to
            logits (batch, length, vocabulary_size) instead.

    Shapes: (batch, length) -> (batch, length, embedding_dim), compute dtype.

    Masking: with `mask_zero=True` the output carries the Keras mask
    `ids != 0`: ids `[[7, 3, 0, 0]]` give `[[True, True, False, False]]`.

    Example:
    >>> layer = TokenAndPositionEmbedding(vocabulary_size=100, sequence_length=16,
    ...                                   embedding_dim=8)
    >>> hidden = layer(np.array([[5, 6, 7]]))                    # (1, 3, 8)
    >>> logits = layer(hidden, reverse=True)                     # (1, 3, 100)
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        embedding_dim,
        position_encoding="learned",
        tie_weights=True,
        embeddings_initializer="uniform",
        mask_zero=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (
            ("vocabulary_size", vocabulary_size),
            ("sequence_length", sequence_length),
            ("embedding_dim", embedding_dim),
        ):
            check_positive_int(value, arg)
        check_one_of(position_encoding, "position_encoding", POSITION_ENCODINGS)
        check_bool(mask_zero, "mask_zero")
        self.vocabulary_size = int(vocabulary_size)
        self.sequence_length = int(sequence_length)
        self.embedding_dim = int(embedding_dim)
        self.position_encoding = position_encoding
        self.tie_weights = tie_weights
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.mask_zero = mask_zero

        # The token embedding gets mask_zero=False: this layer attaches the
        # mask to the sum itself (a masked input would make the position
        # layer, which does not take masks, warn and drop it).
        self.token_embedding = ReversibleEmbedding(
            self.vocabulary_size,
            self.embedding_dim,
            tie_weights=tie_weights,
            embeddings_initializer=self._clone_initializer(),
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        if position_encoding == "learned":
            self.position_embedding = LearnedPositionEmbedding(
                self.sequence_length,
                initializer=self._clone_initializer(),
                dtype=self.dtype_policy,
                name="position_embedding",
            )
        elif position_encoding == "sinusoidal":
            self.position_embedding = SinusoidalPositionEncoding(
                dtype=self.dtype_policy, name="position_embedding"
            )
        else:
            self.position_embedding = None

    def _clone_initializer(self):
        # A fresh instance per weight, so seeded initializers are not shared.
        return keras.initializers.deserialize(
            keras.initializers.serialize(self.embeddings_initializer)
        )

    def build(self, input_shape):
        input_shape = tuple(input_shape)[:2]  # (batch, length), also from a reverse call
        self.token_embedding.build(input_shape)
        if self.position_embedding is not None:
            self.position_embedding.build(input_shape + (self.embedding_dim,))
        self.built = True

    def call(self, inputs, start_index=0, reverse=False):
        if reverse:
            return self.token_embedding(inputs, reverse=True)  # (batch, length, vocabulary)
        embedded = self.token_embedding(inputs)  # (batch, length, embedding_dim)
        if self.position_embedding is None:
            return embedded
        positions = self.position_embedding(embedded, start_index=start_index)
        return embedded + positions

    def compute_mask(self, inputs, previous_mask=None):
        if len(inputs.shape) == 3:  # a reverse call: hidden states keep their mask
            return previous_mask
        if not self.mask_zero:
            return None
        return keras.ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        if len(input_shape) == 3:  # reverse: (batch, length, dim) -> logits
            return tuple(input_shape[:-1]) + (self.vocabulary_size,)
        return tuple(input_shape) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "position_encoding": self.position_encoding,
                "tie_weights": self.tie_weights,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "mask_zero": self.mask_zero,
            }
        )
        return config
