"""Cached decoding loops as plain TensorFlow graphs (for the `generate` signatures).

The same procedure as `keras_transformer.generation` (keras-hub's sampler
loop): a (batch, length) token buffer holding the prompts, filled one
position per step from the model's `call_with_cache`, starting at the
shortest prompt; positions inside a longer prompt keep their prompt token.
Differences, all needed in a served graph:

* lengths are tensors (batch and prompt lengths vary per request), so the
  cache is built from the blocks' `initial_cache` (the task model's own
  method checks its length with Python `if`, which a traced length cannot
  take) and sizes are checked before the loop;
* every row has its own `max_new_tokens` and sampling settings
  (`keras_transformer.export.sampling`);
* a row ends at its first stop token or at its own limit; positions after
  its end hold the pad id 0 and are False in `padding_mask`.

With greedy settings the tokens equal `model.generate(...)`'s wherever its
`padding_mask` is True (a test checks this).
"""

import tensorflow as tf

from keras_transformer.export.sampling import next_tokens


def _column_update(buffer, index, values):
    """buffer (batch, length) with column `index` set to values (batch,)."""
    rows = tf.range(tf.shape(buffer)[0])
    indices = tf.stack([rows, tf.fill(tf.shape(rows), index)], axis=1)
    return tf.tensor_scatter_nd_update(buffer, indices, values)


def output_mask(token_ids, starts, limits, stop_ids):
    """(batch, length) int32: 1 up to each row's first generated stop token (kept) or its limit."""
    positions = tf.range(tf.shape(token_ids)[1])[None, :]
    mask = positions < limits[:, None]
    if stop_ids:
        generated = positions >= starts[:, None]
        stops = tf.reduce_any(token_ids[:, :, None] == tf.constant(stop_ids, tf.int32), axis=-1) & generated
        stop_count = tf.math.cumsum(tf.cast(stops, tf.int32), axis=1)
        mask &= (stop_count - tf.cast(stops, tf.int32)) == 0  # nothing after the first stop
    return tf.cast(mask, tf.int32)


def decode(step, buffer, cache, prompt_lengths, limits, settings, stop_ids, vocabulary_limit):
    """Fills `buffer` (batch, length) int32 from position min(prompt_lengths) on.

    Args:
        step: `(tokens (batch, 1), cache, position) -> (logits (batch, 1, vocab), cache)`,
            the model's cached call for the token at `position`.
        buffer: prompts, right-padded with 0; as long as the longest limit.
        cache: the model's decoding cache (any structure), prefilled if needed.
        prompt_lengths: (batch,) int32, positions kept from the prompt.
        limits: (batch,) int32, each row's end (prompt length + max_new_tokens).
        settings: the sampling tensors of `sampling.next_tokens`.
        stop_ids: tuple of ints that end a row.
        vocabulary_limit: ids at or above it (ids the tokenizer cannot
            decode) are never chosen; None for no limit.

    Returns:
        (token_ids, padding_mask), both (batch, length) int32.
    """
    length = tf.shape(buffer)[1]
    positions = tf.range(length)[None, :]
    in_prompt = positions < prompt_lengths[:, None]  # (batch, length)
    stop_ids = tuple(int(i) for i in stop_ids or ())
    stop_table = tf.constant(stop_ids or (-1,), tf.int32)

    def cond(buffer, cache, index, done):
        return (index < length) & tf.logical_not(tf.reduce_all(done))

    def body(buffer, cache, index, done):
        token = buffer[:, index - 1 : index]
        logits, cache = step(token, cache, index - 1)
        logits = tf.cast(logits[:, 0, :], tf.float32)  # (batch, vocab)
        if vocabulary_limit is not None:
            allowed = tf.range(tf.shape(logits)[1]) < vocabulary_limit
            logits = tf.where(allowed[None, :], logits, -float("inf"))
        chosen = next_tokens(logits, settings, index)
        from_prompt = in_prompt[:, index]
        active = tf.logical_not(done) & (index < limits)
        chosen = tf.where(from_prompt, buffer[:, index], tf.where(active, chosen, 0))
        buffer = _column_update(buffer, index, chosen)
        stopped = tf.reduce_any(chosen[:, None] == stop_table[None, :], axis=-1) if stop_ids else False
        done = done | (active & tf.logical_not(from_prompt) & stopped) | (index + 1 >= limits)
        return buffer, cache, index + 1, done

    start = tf.reduce_min(prompt_lengths)
    done = tf.zeros_like(prompt_lengths, tf.bool) | (limits <= start)
    buffer, _, _, _ = tf.while_loop(
        cond, body, (buffer, cache, start, done), maximum_iterations=length - start
    )
    mask = output_mask(buffer, prompt_lengths, limits, stop_ids)
    return buffer * mask, mask


def causal_generate(model, prompt_ids, max_new_tokens, settings, stop_ids, vocabulary_limit=None):
    """GPT-style continuation of ragged prompts (batch, [len]) -> (token_ids, padding_mask).

    The caller guarantees every prompt is non-empty and length +
    max_new_tokens <= the model's max_sequence_length.
    """
    lengths = tf.cast(prompt_ids.row_lengths(), tf.int32)
    limits = lengths + max_new_tokens
    batch, total = prompt_ids.nrows(out_type=tf.int32), tf.reduce_max(limits)
    buffer = prompt_ids.to_tensor(default_value=0, shape=tf.stack([batch, total]))
    blocks = model.backbone.transformer_layers
    # (batch, num_layers, 2, total, kv_heads, head_dim): GPTCausalLM.initial_cache's layout.
    cache = tf.stack([block.initial_cache(batch, total) for block in blocks], axis=1)
    _, cache = model.call_with_cache(buffer, cache, 0)  # prefill every position, as generation does

    def step(token, cache, position):
        return model.call_with_cache(token, cache, position)

    return decode(step, buffer, cache, lengths, limits, settings, stop_ids, vocabulary_limit)


def seq2seq_generate(model, encoder_ids, encoder_mask, max_new_tokens, settings, stop_ids,
                     vocabulary_limit=None, decoder_start_token_id=0):
    """T5-style outputs (batch, 1 + max(max_new_tokens)) starting with the decoder start token."""
    batch = tf.shape(encoder_ids)[0]
    length = 1 + tf.reduce_max(max_new_tokens)
    buffer = tf.concat([tf.fill([batch, 1], decoder_start_token_id), tf.zeros([batch, length - 1], tf.int32)], 1)
    encoded = model.encode(encoder_ids, encoder_mask)
    cross_cache = model.compute_cross_attention_cache(encoded)  # computed once
    cache = model.initial_cache(batch, length)

    def step(token, cache, position):
        return model.call_with_cache(
            token, cache, position, cross_attention_cache=cross_cache, encoder_padding_mask=encoder_mask
        )

    ones = tf.ones([batch], tf.int32)
    return decode(step, buffer, cache, ones, 1 + max_new_tokens, settings, stop_ids, vocabulary_limit)
