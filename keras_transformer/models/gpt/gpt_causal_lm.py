"""GPT causal language model: the backbone plus the (tied) vocabulary projection."""

import keras
from keras import ops

from keras_transformer.models.backbone import Task, token_cross_entropy, token_metrics
from keras_transformer.models.gpt.gpt_backbone import GPTBackbone
from keras_transformer.registration import register


@register
class GPTCausalLM(Task):
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

    def __init__(self, backbone, **kwargs):
        if not isinstance(backbone, GPTBackbone):
            raise ValueError(
                f"GPTCausalLM needs a GPTBackbone; received {type(backbone).__name__}"
            )
        inputs = backbone.input  # {"token_ids", "padding_mask"}
        hidden = backbone(inputs)["sequence_output"]
        # Calls the backbone's own embedding layer, so the head shares its table.
        logits = backbone.token_embedding(hidden, reverse=True)
        super().__init__(backbone, inputs=inputs, outputs={"logits": logits}, **kwargs)

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
        if config.position_encoding == "learned" and max_length > config.max_sequence_length:
            raise ValueError(
                f"max_length={max_length} exceeds the position table: "
                f"max_sequence_length={config.max_sequence_length}"
            )
        blocks = self.backbone.transformer_layers
        return ops.stack([block.initial_cache(batch_size, max_length) for block in blocks], axis=1)

    def call_with_cache(self, token_ids, cache, cache_update_index, padding_mask=None):
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

        Returns:
            (logits (batch, chunk, vocabulary_size) float32, new cache).
        """
        backbone = self.backbone
        x = backbone.embed(token_ids, start_index=cache_update_index, training=False)
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


    def generate(self, inputs, max_new_tokens, sampler="greedy", stop_token_ids=None, **kwargs):
        """Continues right-padded prompts; see `keras_transformer.generation.generate`.

        `inputs` is `{"token_ids", "padding_mask"}`; returns `{"token_ids",
        "padding_mask"}` with the prompts followed by up to `max_new_tokens`
        tokens per row. The loop is cached and compiled (`jit_compile=True`).

        >>> lm.generate({"token_ids": ids, "padding_mask": mask}, max_new_tokens=20,
        ...             sampler="top_p", top_p=0.9, seed=0)
        """
        from keras_transformer.generation import generate  # generation builds on the models

        return generate(self, inputs, max_new_tokens, sampler=sampler, stop_token_ids=stop_token_ids, **kwargs)
