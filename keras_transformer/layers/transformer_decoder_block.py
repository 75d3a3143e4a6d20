"""A Transformer decoder block: causal self-attention, optional cross-attention, feed-forward."""

from keras import ops

from keras_transformer.layers import masking
from keras_transformer.layers._transformer_block import TransformerBlockBase
from keras_transformer.registration import register


@register
class TransformerDecoderBlock(TransformerBlockBase):
    """Causal self-attention, cross-attention over an encoder output, feed-forward.

    Cross-attention exists when the block is first called with an
    `encoder_sequence` (GPT-style decoders never pass one). Arguments are those
    of `TransformerEncoderBlock`; cross-attention shares them (no rotary).

    Masking: `decoder_padding_mask` (batch, target_length) masks decoder keys,
    `encoder_padding_mask` (batch, source_length) masks encoder keys; Keras
    implicit masks on `decoder_sequence`/`encoder_sequence` stand in for them.
    `decoder_attention_mask` (batch, target, target) and
    `encoder_attention_mask` (batch, target, source) add explicit masks;
    self-attention is causal unless `use_causal_mask=False`. Example: target
    length 3 with `decoder_padding_mask=[[1, 1, 0]]` lets positions 0, 1, 2
    see `[[1,0,0],[1,1,0],[1,1,0]]`.

    Decoding: `initial_cache`, `compute_cross_attention_cache` and
    `call_with_cache` run one step (or a prompt chunk) against cached
    keys/values; the result equals `call` on the whole sequence.

    Example:
    >>> block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16)
    >>> x, enc = keras.ops.ones((1, 3, 8)), keras.ops.ones((1, 5, 8))
    >>> block(x, enc).shape
    (1, 3, 8)
    """

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        self._check_input(decoder_sequence_shape, "decoder_sequence")
        hidden_dim = decoder_sequence_shape[-1]
        self.self_attention = self._attention(hidden_dim, "self_attention", self.use_rotary_embedding)
        self.self_attention.build(decoder_sequence_shape)
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention_norm.build(decoder_sequence_shape)
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        self.cross_attention = None
        if encoder_sequence_shape is not None:
            self._check_input(encoder_sequence_shape, "encoder_sequence")
            self.cross_attention = self._attention(hidden_dim, "cross_attention", False)
            self.cross_attention.build(decoder_sequence_shape, encoder_sequence_shape)
            self.cross_attention_norm = self._norm("cross_attention_norm")
            self.cross_attention_norm.build(decoder_sequence_shape)
            self.cross_attention_dropout = self._dropout("cross_attention_dropout")
        self.feed_forward_norm.build(decoder_sequence_shape)
        self.feed_forward.build(decoder_sequence_shape)
        self.built = True

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        self_attention_bias=None,
        use_causal_mask=True,
        training=None,
    ):
        self._check_cross_attention(encoder_sequence is not None)
        decoder_padding_mask = masking.resolve_padding_mask(decoder_padding_mask, decoder_sequence)

        def self_attend(x):
            return self.self_attention(
                x,
                padding_mask=decoder_padding_mask,
                attention_mask=decoder_attention_mask,
                attention_bias=self_attention_bias,
                use_causal_mask=use_causal_mask,
                training=training,
            )

        x = self._residual(
            decoder_sequence, self.self_attention_norm, self_attend, self.self_attention_dropout, training
        )
        if encoder_sequence is not None:
            encoder_padding_mask = masking.resolve_padding_mask(encoder_padding_mask, encoder_sequence)

            def cross_attend(y):
                return self.cross_attention(
                    y,
                    encoder_sequence,
                    padding_mask=encoder_padding_mask,
                    attention_mask=encoder_attention_mask,
                    training=training,
                )

            x = self._residual(
                x, self.cross_attention_norm, cross_attend, self.cross_attention_dropout, training
            )
        return self._feed_forward_residual(x, training)

    # ---------------------------------------------------------- decoding

    def initial_cache(self, batch_size, max_length):
        """Empty self-attention cache (batch, 2, max_length, kv_heads, key_dim)."""
        return self.self_attention.initial_cache(batch_size, max_length)

    def compute_cross_attention_cache(self, encoder_sequence):
        """Encoder keys/values projected once, for every decoding step."""
        self._check_cross_attention(True)
        return self.cross_attention.compute_cross_attention_cache(encoder_sequence)

    def call_with_cache(
        self,
        decoder_sequence,
        self_attention_cache,
        self_attention_cache_update_index,
        cross_attention_cache=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
        self_attention_bias=None,
        training=None,
    ):
        """One decoding step (or a prompt chunk) at `self_attention_cache_update_index`.

        `decoder_padding_mask` is (batch, max_length) over the cached positions.
        Returns `(output, self_attention_cache)`; the cross-attention cache is
        read only.
        """
        self._check_cross_attention(cross_attention_cache is not None)
        # Not through `__call__`, so arrays are not converted for us (PyTorch adds no NumPy).
        decoder_sequence = ops.convert_to_tensor(decoder_sequence)
        cache = self_attention_cache

        def self_attend(x):
            nonlocal cache
            out, cache = self.self_attention.call_with_cache(
                x,
                self_attention_cache,
                self_attention_cache_update_index,
                padding_mask=decoder_padding_mask,
                attention_bias=self_attention_bias,
                training=training,
            )
            return out

        x = self._residual(
            decoder_sequence, self.self_attention_norm, self_attend, self.self_attention_dropout, training
        )
        if cross_attention_cache is not None:

            def cross_attend(y):
                out, _ = self.cross_attention.call_with_cache(
                    y, cross_attention_cache, padding_mask=encoder_padding_mask, training=training
                )
                return out

            x = self._residual(
                x, self.cross_attention_norm, cross_attend, self.cross_attention_dropout, training
            )
        return self._feed_forward_residual(x, training), cache

    def _check_cross_attention(self, given):
        has = getattr(self, "cross_attention", None) is not None
        if self.built and given and not has:
            raise ValueError(
                f"{self.name} was built without cross-attention (first called with no "
                "`encoder_sequence`), so it cannot take encoder inputs now"
            )
        if self.built and has and not given:
            raise ValueError(
                f"{self.name} has cross-attention: pass `encoder_sequence` (or a "
                "`cross_attention_cache` when decoding)"
            )

    def compute_output_shape(self, decoder_sequence_shape, encoder_sequence_shape=None):
        return decoder_sequence_shape
