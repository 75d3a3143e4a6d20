"""GPT causal language model: the backbone plus the (tied) vocabulary projection."""

import keras
from keras import ops

from keras_transformer.models.backbone import GenerativeTask, token_cross_entropy, token_metrics
from keras_transformer.models.gpt.gpt_backbone import GPTBackbone
from keras_transformer.registration import register


@register
class GPTCausalLM(GenerativeTask):
    """Next-token logits from a `GPTBackbone`.

    The output projection is the backbone's `token_embedding` called with
    `reverse=True`: the transposed token table when `tie_word_embeddings`
    (GPT-2), else its separate (hidden_dim, vocabulary_size) kernel. Logits are
    float32 under every dtype policy.

    Training: `logits[:, t]` predicts token t + 1, so fit on
    `x = {"token_ids": ids[:, :-1], "padding_mask": mask[:, :-1]}`,
    `y = ids[:, 1:]`, `sample_weight = mask[:, 1:]` (padding then adds nothing
    to the loss or the accuracy). The default `compile()` sets that loss.

    Decoding: `initial_cache` and `call_with_cache` run one token (or a prompt
    chunk) at a time against a key/value cache; the logits equal those of the
    full forward pass on the sequence so far.

    Args:
        backbone: a `GPTBackbone`.
        generation_config: optional dict of Hugging Face `GenerationConfig`
            settings, the defaults of `generate()` (an imported checkpoint's).
        **kwargs: `name`, `trainable`, `dtype`.

    Inputs: {"token_ids": (batch, length), "padding_mask": (batch, length)}.
    Outputs: {"logits": (batch, length, vocabulary_size)}, float32.

    Example:
    >>> lm = GPTCausalLM.from_preset("gpt2_tiny")
    >>> ids = np.array([[5, 6, 7]]); mask = np.ones_like(ids)
    >>> lm({"token_ids": ids, "padding_mask": mask})["logits"].shape
    (1, 3, 257)
    """

    backbone_class = GPTBackbone

    def __init__(self, backbone, generation_config=None, **kwargs):
        if not isinstance(backbone, GPTBackbone):
            raise ValueError(
                f"GPTCausalLM needs a GPTBackbone; received {type(backbone).__name__}"
            )
        inputs = backbone.input  # {"token_ids", "padding_mask"}
        hidden = backbone(inputs)["sequence_output"]
        # Calls the backbone's own embedding layer, so the head shares its table.
        logits = backbone.token_embedding(hidden, reverse=True)
        super().__init__(backbone, inputs, {"logits": logits}, generation_config, **kwargs)

    def compile_defaults(self):
        """`compile()`'s "auto" arguments: Adam(2e-5) (fine-tuning; pass your own to
        train from scratch), sparse cross-entropy on the logits averaged over
        weighted tokens, and token accuracy and perplexity as weighted metrics
        (weighted by the `sample_weight` that masks padding)."""
        return {
            "optimizer": lambda: keras.optimizers.Adam(2e-5),
            "loss": token_cross_entropy,
            "weighted_metrics": token_metrics,
        }

    # ------------------------------------------------------------- decoding

    def initial_cache(self, batch_size, max_length):
        """Zeros of shape (batch, num_layers, 2, max_length, kv_heads, head_dim).

        Axis 2 holds keys then values; the dtype is the compute dtype.
        """
        config = self.backbone.model_config
        static = isinstance(max_length, int)  # a traced length is checked by the caller
        if config.position_encoding == "learned" and static and max_length > config.max_sequence_length:
            raise ValueError(
                f"max_length={max_length} exceeds the position table: "
                f"max_sequence_length={config.max_sequence_length}"
            )
        blocks = self.backbone.transformer_layers
        return ops.stack([block.initial_cache(batch_size, max_length) for block in blocks], axis=1)

    def call_with_cache(self, token_ids, cache, cache_update_index, padding_mask=None, position_offsets=None):
        """Logits of `token_ids` at positions `cache_update_index ...`, and the updated cache.

        Args:
            token_ids: (batch, chunk) ids, one token or a prompt chunk.
            cache: (batch, num_layers, 2, max_length, kv_heads, head_dim), from
                `initial_cache` or a previous call.
            cache_update_index: int or scalar int tensor (may be traced): the
                position of `token_ids[:, 0]`; keys/values are written there.
            padding_mask: optional (batch, max_length) over cache positions,
                1 = real token. Positions after the chunk are masked causally
                whatever it holds.
            position_offsets: optional (batch,) int: each row's left padding.
                Row r's token at cache position p gets position p - offset[r]
                (left-padded prompts then decode as if unpadded).

        Returns:
            (logits (batch, chunk, vocabulary_size) float32, new cache).
        """
        backbone = self.backbone
        x = self._embed_at(token_ids, cache_update_index, position_offsets)
        caches = []
        for i, block in enumerate(backbone.transformer_layers):
            x, layer_cache = block.call_with_cache(
                x,
                cache[:, i],  # (batch, 2, max_length, kv_heads, head_dim)
                cache_update_index,
                decoder_padding_mask=padding_mask,
                training=False,
            )
            caches.append(layer_cache)
        x = backbone.layer_norm(x)
        logits = backbone.token_embedding(x, reverse=True)
        return logits, ops.stack(caches, axis=1)

    def _embed_at(self, token_ids, start_index, position_offsets):
        backbone = self.backbone
        if position_offsets is None or backbone.position_embedding is None:
            # Rotary attention depends on position differences only: offsets change nothing.
            return backbone.embed(token_ids, start_index=start_index, training=False)
        chunk = ops.shape(token_ids)[1]
        positions = start_index + ops.arange(chunk, dtype="int32")[None, :]
        table = ops.cast(backbone.position_embedding.embeddings, backbone.token_embedding.compute_dtype)
        # (batch, chunk); clipped into the table: a row that has already ended (a served batch runs
        # until its longest row is done) keeps stepping past its own last position.
        positions = ops.clip(positions - ops.cast(position_offsets, "int32")[:, None], 0, ops.shape(table)[0] - 1)
        return backbone.token_embedding(token_ids) + ops.take(table, positions, axis=0)

    def generation_adapter(self, use_cache=True):
        """The decoding core's adapter (see `keras_transformer.generation.decoding`)."""
        return _CausalAdapter(self, use_cache)


class _CausalAdapter:
    """Prefill and one step of a `GPTCausalLM` for the decoding core.

    State: (cache or token buffer, padding (batch, max_length) int32,
    position offsets (batch,) int32). Without a cache every step recomputes
    the whole sequence (for checks and benchmarks).
    """

    def __init__(self, model, use_cache=True):
        self.model = model
        self.use_cache = use_cache

    def _full(self, tokens, padding, offsets):
        cache = self.model.initial_cache(ops.shape(tokens)[0], ops.shape(tokens)[1])
        logits, _ = self.model.call_with_cache(tokens, cache, 0, padding_mask=padding, position_offsets=offsets)
        return logits

    def prefill(self, inputs, prompt, prompt_mask, max_length):
        batch, length = ops.shape(prompt)[0], ops.shape(prompt)[1]
        prompt_mask = ops.cast(prompt_mask, "int32")
        offsets = length - ops.sum(prompt_mask, axis=1)  # (batch,) left padding
        padding = ops.concatenate([prompt_mask, ops.ones((batch, max_length - length), "int32")], axis=1)
        if not self.use_cache:
            tokens = ops.concatenate([prompt, ops.zeros((batch, max_length - length), "int32")], axis=1)
            logits = self._full(tokens, padding, offsets)
            return ops.take(logits, length - 1, axis=1), (tokens, padding, offsets)
        cache = self.model.initial_cache(batch, max_length)
        logits, cache = self.model.call_with_cache(prompt, cache, 0, padding_mask=padding, position_offsets=offsets)
        return logits[:, -1], (cache, padding, offsets)

    def step(self, token_ids, state, index):
        cache, padding, offsets = state
        if not self.use_cache:
            tokens = ops.slice_update(cache, [0, index], token_ids)
            logits = self._full(tokens, padding, offsets)
            last = ops.minimum(index, ops.shape(tokens)[1] - 1)
            return ops.take(logits, last, axis=1), (tokens, padding, offsets)
        logits, cache = self.model.call_with_cache(token_ids, cache, index, padding_mask=padding,
                                                   position_offsets=offsets)
        return logits[:, 0], (cache, padding, offsets)
