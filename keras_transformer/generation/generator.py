"""Cached, compiled decoding loops for causal (GPT) and sequence-to-sequence (T5) models.

The loop is keras-hub's sampler `while_loop`: a fixed-size token buffer whose
prompt positions are kept and whose other positions are filled one step at a
time. Each step feeds one token through the model's `call_with_cache`, so a new
token costs one cached step (O(length) attention), not a full forward pass.
Everything traced is `keras.ops`, so the same step runs eagerly, under XLA
(`tf.function(jit_compile=True)` / `jax.jit`) and in an exported graph.

Model contract (duck-typed, no import of the model classes):
  causal LM: `initial_cache(batch, max_length)`,
      `call_with_cache(token_ids, cache, index) -> (logits, cache)`,
      `backbone.model_config.max_sequence_length`, `.vocabulary_size`;
  seq2seq LM: additionally `encode(ids, mask)`,
      `compute_cross_attention_cache(encoder_output)`, and
      `call_with_cache(ids, cache, index, cross_attention_cache=..., encoder_padding_mask=...)`.
"""

import itertools
import json

import keras
import numpy as np
from keras import ops

from keras_transformer.generation.samplers import get_sampler


def generate(
    model,
    inputs,
    max_new_tokens,
    sampler="greedy",
    stop_token_ids=None,
    use_cache=True,
    jit_compile="auto",
    run_eagerly=False,
    decoder_start_token_id=0,
    **sampler_kwargs,
):
    """Generates token ids from a causal LM or a seq2seq LM.

    Args:
        model: a GPT-style causal LM or a T5-style seq2seq LM (see module doc).
        inputs: the model's own input dict. Causal: `token_ids` (batch, length)
            and optional `padding_mask` (right padding: each row's prompt is
            its real tokens). Seq2seq: `encoder_token_ids` and optional
            `encoder_padding_mask`.
        max_new_tokens: tokens to add to every row, > 0.
        sampler: "greedy", "random", "top_k", "top_p", "beam", or a
            keras-hub sampler; `sampler_kwargs` (temperature, top_k, top_p,
            num_beams, seed) configure a named one.
        stop_token_ids: ids that end a row (kept as its last token).
        use_cache: False recomputes the whole sequence every step (slow; for
            checking and benchmarks).
        jit_compile: on TensorFlow, compile the traced loop with XLA; "auto"
            (the default, as Keras decides for `fit`) uses XLA when a GPU is
            present and a plain `tf.function` graph on CPU, where TensorFlow's
            own kernels are faster. JAX always runs the loop under `jax.jit`.
        run_eagerly: run the loop op by op, uncompiled (for debugging).
        decoder_start_token_id: first decoder token of a seq2seq model.

    Returns:
        dict with `token_ids` (batch, length) int32 — causal: prompt then
        continuation; seq2seq: the start token then the output — and
        `padding_mask` (batch, length) bool, True up to each row's last token
        (its stop token included, or `max_new_tokens` new tokens).
    """
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive integer; received max_new_tokens={max_new_tokens!r}")
    stop_token_ids = tuple(int(i) for i in stop_token_ids) if stop_token_ids is not None else None
    sampler = get_sampler(sampler, **sampler_kwargs)
    config = model.backbone.model_config
    if hasattr(model, "encode"):
        ids, mask, lengths = _prompt(inputs, "encoder_token_ids", "encoder_padding_mask", config)
        batch = ids.shape[0]
        decoder = np.zeros((batch, max_new_tokens + 1), "int32")
        decoder[:, 0] = decoder_start_token_id
        arrays = (ids, mask, decoder)
        starts = np.ones(batch, "int64")
        kind = "seq2seq"
    else:
        ids, mask, lengths = _prompt(inputs, "token_ids", "padding_mask", config)
        total = int(lengths.max()) + max_new_tokens
        limit = config.max_sequence_length
        if total > limit:
            raise ValueError(
                f"the longest prompt ({int(lengths.max())} tokens) plus max_new_tokens="
                f"{max_new_tokens} is {total} tokens, more than the model's context "
                f"max_sequence_length={limit}"
            )
        buffer = np.zeros((ids.shape[0], total), "int32")
        buffer[:, : ids.shape[1]] = ids * mask
        prompt_mask = np.zeros_like(buffer)
        prompt_mask[:, : ids.shape[1]] = mask
        arrays = (buffer, prompt_mask)
        starts = lengths
        kind = "causal"
    step, sampler = _compiled(model, kind, sampler, stop_token_ids, use_cache, jit_compile, run_eagerly)
    _reset_seed(sampler)
    token_ids = ops.convert_to_numpy(step(*[ops.convert_to_tensor(a) for a in arrays]))
    return {"token_ids": token_ids.astype("int32"), "padding_mask": _output_mask(token_ids, starts, max_new_tokens, stop_token_ids)}


def _prompt(inputs, ids_key, mask_key, config):
    """Checks a prompt batch; returns (ids, mask, lengths) as NumPy arrays."""
    if not isinstance(inputs, dict) or ids_key not in inputs:
        raise ValueError(f"generate() needs a dict with `{ids_key}`; received {type(inputs).__name__}"
                         + (f" with keys {sorted(inputs)}" if isinstance(inputs, dict) else ""))
    ids = np.asarray(ops.convert_to_numpy(inputs[ids_key]))
    if ids.ndim != 2 or ids.shape[1] == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`{ids_key}` must be a non-empty integer (batch, length) array; "
                         f"received dtype {ids.dtype}, shape {ids.shape}")
    mask = inputs.get(mask_key)
    mask = np.ones_like(ids, bool) if mask is None else np.asarray(ops.convert_to_numpy(mask)).astype(bool)
    if mask.shape != ids.shape:
        raise ValueError(f"`{mask_key}` shape {mask.shape} differs from `{ids_key}` shape {ids.shape}")
    lengths = mask.sum(axis=1)
    if np.any(lengths == 0):
        raise ValueError(f"empty prompt: row(s) {np.flatnonzero(lengths == 0).tolist()} have no real tokens")
    if np.any(mask != (np.arange(ids.shape[1])[None] < lengths[:, None])):
        raise ValueError(f"prompts must be right-padded: `{mask_key}` must be ones then zeros in every row")
    vocabulary = config.vocabulary_size
    bad = mask & ((ids < 0) | (ids >= vocabulary))
    if np.any(bad):
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"token id {ids[row, col]} at ({row}, {col}) is outside the vocabulary "
                         f"[0, {vocabulary})")
    return ids.astype("int32"), mask.astype("int32"), lengths


def _output_mask(token_ids, starts, max_new_tokens, stop_token_ids):
    """True up to each row's stop token or its last allowed new token."""
    positions = np.arange(token_ids.shape[1])[None]
    mask = positions < (starts[:, None] + max_new_tokens)
    if stop_token_ids:
        generated = positions >= starts[:, None]
        stops = np.isin(token_ids, stop_token_ids) & generated
        after_stop = (np.cumsum(stops, axis=1) - stops) > 0
        mask &= ~after_stop
    return mask


# ------------------------------------------------------------------ steps


def _causal_step(model, sampler, stop_token_ids, use_cache):
    def step(buffer, prompt_mask):
        batch, length = ops.shape(buffer)[0], ops.shape(buffer)[1]
        prompt_mask = ops.cast(prompt_mask, "bool")  # (batch, length): the right-padded prompts
        index = ops.min(ops.sum(ops.cast(prompt_mask, "int32"), axis=1))
        if use_cache:
            cache = model.initial_cache(batch, length)
            _, cache = model.call_with_cache(buffer, cache, 0)  # prefill every position

            def next_logits(prompt, cache, index):
                rows = ops.shape(prompt)[0]  # batch * beams under beam search
                token = ops.slice(prompt, [0, index - 1], [rows, 1])
                logits, cache = model.call_with_cache(token, cache, index - 1)
                return ops.squeeze(logits, axis=1), None, cache

        else:
            cache = None
            ones = ops.ones_like(buffer)

            def next_logits(prompt, cache, index):
                logits = model({"token_ids": prompt, "padding_mask": ones}, training=False)["logits"]
                return ops.take(logits, index - 1, axis=1), None, cache

        return sampler(next_logits, buffer, cache=cache, index=index, mask=prompt_mask,
                       stop_token_ids=stop_token_ids, model=model)

    return step


def _seq2seq_step(model, sampler, stop_token_ids, use_cache):
    def step(encoder_ids, encoder_mask, decoder):
        batch, length = ops.shape(decoder)[0], ops.shape(decoder)[1]
        encoded = model.encode(encoder_ids, encoder_mask)
        keep = ops.arange(length) < 1  # only the start token is given
        prompt_mask = ops.broadcast_to(ops.expand_dims(keep, 0), (batch, length))
        if use_cache:
            # Every batch-shaped tensor rides in the cache, so beam search expands it too.
            cache = (model.initial_cache(batch, length), model.compute_cross_attention_cache(encoded), encoder_mask)

            def next_logits(prompt, cache, index):
                self_cache, cross_cache, source_mask = cache
                rows = ops.shape(prompt)[0]
                token = ops.slice(prompt, [0, index - 1], [rows, 1])
                logits, self_cache = model.call_with_cache(
                    token, self_cache, index - 1, cross_attention_cache=cross_cache,
                    encoder_padding_mask=source_mask,
                )
                return ops.squeeze(logits, axis=1), None, (self_cache, cross_cache, source_mask)

        else:
            cache = (encoder_ids, encoder_mask)

            def next_logits(prompt, cache, index):
                source_ids, source_mask = cache
                logits = model({
                    "encoder_token_ids": source_ids, "encoder_padding_mask": source_mask,
                    "decoder_token_ids": prompt, "decoder_padding_mask": ops.ones_like(prompt),
                }, training=False)["logits"]
                return ops.take(logits, index - 1, axis=1), None, cache

        return sampler(next_logits, decoder, cache=cache, index=1, mask=prompt_mask,
                       stop_token_ids=stop_token_ids, model=model)

    return step


# --------------------------------------------------------------- compiling


def _compiled(model, kind, sampler, stop_token_ids, use_cache, jit_compile, run_eagerly):
    """(step function, its sampler) for these settings, compiled once and kept on the model.

    A later call with an equal sampler configuration reuses both.
    """
    functions = model.__dict__.setdefault("_keras_transformer_generate_functions", {})
    key = (kind, json.dumps(sampler.get_config(), sort_keys=True, default=str), stop_token_ids,
           use_cache, jit_compile, run_eagerly, keras.config.dtype_policy().name)
    if key not in functions:
        make = _causal_step if kind == "causal" else _seq2seq_step
        step = make(model, sampler, stop_token_ids, use_cache)
        functions[key] = (step if run_eagerly else _compile(step, model, sampler, jit_compile), sampler)
    return functions[key]


def _compile(step, model, sampler, jit_compile):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if jit_compile == "auto":
            jit_compile = bool(tf.config.list_physical_devices("GPU"))
        return tf.function(step, jit_compile=bool(jit_compile))
    if backend == "jax":
        import jax

        def stateless(state, *arrays):
            sampler_values, trainable, non_trainable = state
            mapping = itertools.chain(
                zip(sampler.variables, sampler_values),
                zip(model.trainable_variables, trainable),
                zip(model.non_trainable_variables, non_trainable),
            )
            with keras.StatelessScope(state_mapping=mapping):
                return step(*arrays)

        jitted = jax.jit(stateless)

        def call(*arrays):
            state = (
                [v.value for v in sampler.variables],
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
            )
            return jitted(state, *arrays)

        return call
    return step


def _reset_seed(sampler):
    """Seeded samplers restart from their seed, so equal calls give equal tokens."""
    generator = getattr(sampler, "seed_generator", None)
    if generator is not None and getattr(sampler, "seed", None) is not None:
        initial = sampler.__dict__.setdefault("_initial_seed_state", ops.convert_to_numpy(generator.state.value))
        generator.state.assign(initial)
