"""T5 sequence-to-sequence language model: the backbone plus a (tied or separate) vocabulary head."""

import keras
from keras import ops

from keras_transformer.models.backbone import GenerativeTask, token_cross_entropy, token_metrics
from keras_transformer.models.t5.t5_backbone import T5Backbone
from keras_transformer.registration import register


@register
class T5Seq2SeqLM(GenerativeTask):
    """Next-token logits of the T5 decoder, given the encoder input.

    The head is the transposed shared embedding when the backbone's
    `tie_word_embeddings` (v1.0), else a separate bias-free `lm_head` Dense
    (v1.1). With `scale_decoder_outputs` the decoder output is multiplied by
    `hidden_dim ** -0.5` first (v1.0).

    Inputs: the backbone's dict (`encoder_token_ids`, `encoder_padding_mask`,
    `decoder_token_ids`, `decoder_padding_mask`). Output: `logits`
    (batch, target, vocabulary_size).

    Training: `compile()` defaults to AdamW and sparse cross-entropy on the
    logits. Targets are the decoder ids shifted left; pass the target padding
    mask as `sample_weight` so padding does not count (`fit(x, targets,
    sample_weight=mask)`).

    Decoding (for a generation loop; each step costs O(max_length)):

        encoder_output = lm.encode(encoder_token_ids, encoder_padding_mask)
        cross_cache = lm.compute_cross_attention_cache(encoder_output)  # once
        cache = lm.initial_cache(batch_size, max_length)
        logits, cache = lm.call_with_cache(
            ids[:, i:i + 1], cache, i, cross_cache, encoder_padding_mask)

    `call_with_cache` at index i equals the full forward pass at position i.

    Args:
        backbone: a `T5Backbone`.
        generation_config: optional dict of Hugging Face `GenerationConfig`
            settings, the defaults of `generate()` (an imported checkpoint's).
        **kwargs: `name`, `trainable`, `dtype`.
    """

    backbone_class = T5Backbone

    def __init__(self, backbone, generation_config=None, **kwargs):
        config = backbone.model_config
        dtype = backbone.dtype_policy
        # === Layers ===
        self.decoder_output_rescale = None
        if config.scale_decoder_outputs:
            self.decoder_output_rescale = keras.layers.Rescaling(
                config.hidden_dim**-0.5, dtype=dtype, name="decoder_output_rescale"
            )
        self.lm_head = None
        if not config.tie_word_embeddings:
            self.lm_head = keras.layers.Dense(
                config.vocabulary_size,
                use_bias=False,
                kernel_initializer=keras.initializers.RandomNormal(stddev=config.hidden_dim**-0.5),
                dtype=dtype,
                name="lm_head",
            )
        # === Functional model ===
        inputs = backbone.input
        hidden = backbone(inputs)["decoder_sequence_output"]
        outputs = {"logits": self._logits(hidden, backbone)}
        super().__init__(backbone, inputs, outputs, generation_config, **kwargs)

    def _logits(self, hidden, backbone=None):
        """(batch, target, hidden_dim) final decoder states -> (batch, target, vocab) logits."""
        backbone = backbone or self.backbone
        if self.decoder_output_rescale is not None:
            hidden = self.decoder_output_rescale(hidden)
        if self.lm_head is not None:
            return self.lm_head(hidden)
        return backbone.token_embedding(hidden, reverse=True)

    def compile_defaults(self):
        """`compile()`'s "auto" arguments: AdamW(3e-4, weight decay 0.01, clipnorm 1),
        the usual rate for fine-tuning T5 (pass your own to train from
        scratch); sparse cross-entropy on the logits averaged over weighted
        tokens; token accuracy and perplexity as weighted metrics. `logits` is
        the only output, so `y` may be the (batch, target) target ids; mask
        padding with `sample_weight`."""
        return {
            "optimizer": lambda: keras.optimizers.AdamW(learning_rate=3e-4, weight_decay=0.01, clipnorm=1.0),
            "loss": token_cross_entropy,
            "weighted_metrics": token_metrics,
        }

    # ---------------------------------------------------------- decoding

    def encode(self, encoder_token_ids, encoder_padding_mask):
        """(batch, source) ids and mask -> (batch, source, hidden_dim) encoder output (inference)."""
        return self.backbone.encode(encoder_token_ids, encoder_padding_mask, training=False)

    def initial_cache(self, batch_size, max_length):
        """Zero self-attention cache (batch, num_decoder_layers, 2, max_length, heads, key_dim)."""
        config = self.backbone.model_config
        shape = (batch_size, config.decoder_layers, 2, max_length, config.num_heads, config.key_dim)
        return ops.zeros(shape, dtype=self.backbone.decoder_blocks[0].compute_dtype)

    def compute_cross_attention_cache(self, encoder_sequence_output):
        """Each decoder block's cross-attention keys/values of the encoder output, computed once.

        Returns (batch, num_decoder_layers, 2, source, heads, key_dim).
        """
        caches = [
            block.compute_cross_attention_cache(encoder_sequence_output)
            for block in self.backbone.decoder_blocks
        ]
        return ops.stack(caches, axis=1)

    def call_with_cache(
        self,
        decoder_token_ids,
        self_attention_cache,
        cache_update_index,
        cross_attention_cache=None,
        encoder_padding_mask=None,
        decoder_padding_mask=None,
        encoder_sequence_output=None,
    ):
        """Logits of `decoder_token_ids` (batch, step) placed at `cache_update_index`.

        Args:
            decoder_token_ids: (batch, step) ids, usually step 1.
            self_attention_cache: (batch, num_decoder_layers, 2, max_length,
                heads, key_dim), from `initial_cache` or a previous step.
            cache_update_index: int or scalar tensor (may be traced): the
                position of the first id in `decoder_token_ids`.
            cross_attention_cache: from `compute_cross_attention_cache`; or
                pass `encoder_sequence_output` to compute it here (each call).
            encoder_padding_mask: (batch, source), 1 for real encoder tokens.
            decoder_padding_mask: (batch, max_length) over the cached
                positions, or None (all real).

        Returns `(logits, self_attention_cache)`: logits (batch, step, vocab)
        and the cache with this step's keys/values written in.
        """
        if cross_attention_cache is None:
            if encoder_sequence_output is None:
                raise ValueError(
                    "call_with_cache needs `cross_attention_cache` (from "
                    "compute_cross_attention_cache) or `encoder_sequence_output`"
                )
            cross_attention_cache = self.compute_cross_attention_cache(encoder_sequence_output)
        backbone = self.backbone
        x = backbone.token_embedding(decoder_token_ids)  # (batch, step, hidden)
        # Query positions start at the index; keys are all max_length cached
        # positions (later ones are masked causally). (1, heads, step, max_length)
        keys_like = self_attention_cache[:, 0, 0]  # (batch, max_length, heads, key_dim)
        bias = backbone.decoder_relative_position_bias(x, keys_like, start_index=cache_update_index)
        caches = []
        for i, block in enumerate(backbone.decoder_blocks):
            x, cache = block.call_with_cache(
                x,
                self_attention_cache[:, i],
                cache_update_index,
                cross_attention_cache=cross_attention_cache[:, i],
                decoder_padding_mask=decoder_padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                self_attention_bias=bias,
            )
            caches.append(cache)
        x = backbone.decoder_norm(x)
        return self._logits(x), ops.stack(caches, axis=1)

    def generation_adapter(self, use_cache=True):
        """The decoding core's adapter (see `keras_transformer.generation.decoding`)."""
        return _Seq2SeqAdapter(self, use_cache)


class _Seq2SeqAdapter:
    """Prefill (encoder once, start token) and one decoder step of a `T5Seq2SeqLM`.

    `inputs` is (encoder_token_ids, encoder_padding_mask). State: (self-attention
    cache, cross-attention cache, encoder mask); without a cache, (encoder ids,
    encoder mask, decoder buffer) and every step reruns the whole model.
    """

    def __init__(self, model, use_cache=True):
        self.model = model
        self.use_cache = use_cache

    def _full(self, encoder_ids, encoder_mask, decoder):
        return self.model({
            "encoder_token_ids": encoder_ids, "encoder_padding_mask": encoder_mask,
            "decoder_token_ids": decoder, "decoder_padding_mask": ops.ones_like(decoder),
        }, training=False)["logits"]

    def prefill(self, inputs, prompt, prompt_mask, max_length):
        encoder_ids, encoder_mask = inputs
        batch, length = ops.shape(prompt)[0], ops.shape(prompt)[1]
        if not self.use_cache:
            decoder = ops.concatenate([prompt, ops.zeros((batch, max_length - length), "int32")], axis=1)
            logits = self._full(encoder_ids, encoder_mask, decoder)
            return ops.take(logits, length - 1, axis=1), (encoder_ids, encoder_mask, decoder)
        encoded = self.model.encode(encoder_ids, encoder_mask)
        cross = self.model.compute_cross_attention_cache(encoded)  # computed once
        cache = self.model.initial_cache(batch, max_length)
        logits, cache = self.model.call_with_cache(prompt, cache, 0, cross_attention_cache=cross,
                                                   encoder_padding_mask=encoder_mask)
        return logits[:, -1], (cache, cross, encoder_mask)

    def step(self, token_ids, state, index):
        if not self.use_cache:
            encoder_ids, encoder_mask, decoder = state
            decoder = ops.slice_update(decoder, [0, index], token_ids)
            logits = self._full(encoder_ids, encoder_mask, decoder)
            return ops.take(logits, index, axis=1), (encoder_ids, encoder_mask, decoder)
        cache, cross, encoder_mask = state
        logits, cache = self.model.call_with_cache(token_ids, cache, index, cross_attention_cache=cross,
                                                   encoder_padding_mask=encoder_mask)
        return logits[:, 0], (cache, cross, encoder_mask)
