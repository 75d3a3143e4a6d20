"""THE decoding core: one loop for `generate()`, streaming and exported signatures.

Written with keras.ops only and traceable with a dynamic batch and length, so
it runs eagerly, under `jax.jit`, under `tf.function` (XLA or not) and inside
a SavedModel. The family-specific part is the task model's adapter
(`model.generation_adapter()`):

    adapter.prefill(inputs, prompt, prompt_mask, max_length) -> (logits, state)
        prompt (batch, prompt_length) int32, LEFT-padded (prompt_mask 0 on
        the left); `inputs` is the rest the model needs (a seq2seq encoder
        input, or None); logits (batch, vocab) float32 are those of position
        `prompt_length`; `state` is any structure of batch-major tensors
        (caches, masks, position offsets).
    adapter.step(token_ids, state, index) -> (logits, state)
        token_ids (batch, 1) placed at position `index` (a traced scalar);
        logits of position index + 1.

Rows are left-padded so that every row fills the same position at each
step; each row's positions are offset by its padding (the adapter's job), so
a prompt gives the same tokens whatever its padding. Every row fills
`prompt_length + max_new_tokens[row]` positions at most and ends at its first
stop id (kept).

Greedy and sampling: `start` -> `advance` (any number of times; streaming
advances a few steps per call) -> `finish`. Beam search: `beam_search`,
with transformers' beam semantics (2 * num_beams candidates per step, finished
hypotheses scored by sum of log-probs / generated_length ** length_penalty,
`early_stopping` True / False / "never").
"""

import keras
from keras import ops

_NEG = -1.0e9


def _column(buffer, index, values):
    """buffer (batch, length) with column `index` set to values (batch,)."""
    return ops.slice_update(buffer, [0, index], ops.cast(values, buffer.dtype)[:, None])


def _is_stop(tokens, stop_token_ids):
    stopped = ops.zeros_like(tokens, "bool")
    for stop in stop_token_ids:
        stopped = stopped | (tokens == stop)
    return stopped


def start(adapter, inputs, prompt, prompt_mask, max_new_tokens, buffer_new_tokens=None):
    """Prefills the model; returns the loop state (a dict of tensors).

    max_new_tokens: (batch,) int32, each row's limit (>= 1).
    buffer_new_tokens: a Python int >= max(max_new_tokens) sizing the token
        buffer statically (JAX needs static shapes under `jit`); None sizes it
        from the traced maximum.
    """
    prompt = ops.cast(prompt, "int32")
    prompt_mask = ops.cast(prompt_mask, "bool")
    batch, prompt_length = ops.shape(prompt)[0], ops.shape(prompt)[1]
    max_new_tokens = ops.cast(max_new_tokens, "int32")
    new = ops.max(max_new_tokens) if buffer_new_tokens is None else buffer_new_tokens
    total = prompt_length + new
    tokens = ops.concatenate([ops.where(prompt_mask, prompt, 0), ops.zeros((batch, new), "int32")], axis=1)
    valid = ops.concatenate([prompt_mask, ops.zeros((batch, new), "bool")], axis=1)
    logits, model_state = adapter.prefill(inputs, prompt, prompt_mask, total)
    return {
        "tokens": tokens,  # (batch, total)
        "valid": valid,  # (batch, total): real tokens so far
        "logits": ops.cast(logits, "float32"),  # (batch, vocab), of position `index`
        "model_state": model_state,
        "index": ops.convert_to_tensor(prompt_length, "int32"),
        "done": max_new_tokens <= 0,
        "max_new_tokens": max_new_tokens,
        "log_probs": ops.zeros((batch, new), "float32"),
        "prompt_length": ops.convert_to_tensor(prompt_length, "int32"),
    }


def advance(adapter, processor, chooser, state, steps=None):
    """Fills up to `steps` more positions (all remaining ones when None); returns the new state."""
    state = dict(state)
    total = ops.shape(state["tokens"])[1]
    limit = total if steps is None else ops.minimum(state["index"] + steps, total)
    stop_ids = processor.stop_token_ids
    fixed = {name: state[name] for name in ("max_new_tokens", "prompt_length")}
    seed = state.get("chooser_seed")  # a sampler's base seed for this decoding (see choosers.SamplerChooser)
    names = ("tokens", "valid", "logits", "model_state", "index", "done", "log_probs")

    def cond(tokens, valid, logits, model_state, index, done, log_probs):
        return (index < limit) & ops.logical_not(ops.all(done))

    def body(tokens, valid, logits, model_state, index, done, log_probs):
        new_index = index - fixed["prompt_length"]
        row_lengths = ops.sum(ops.cast(valid, "int32"), axis=1)
        scores = processor(logits, tokens, valid, index, new_index, fixed["max_new_tokens"], row_lengths)
        chosen, log_prob = chooser(scores, index, seed)
        chosen = ops.where(done, 0, chosen)
        tokens = _column(tokens, index, chosen)
        valid = _column(valid, index, ops.logical_not(done))
        log_probs = _column(log_probs, new_index, ops.where(done, 0.0, log_prob))
        done = done | _is_stop(chosen, stop_ids) | (new_index + 1 >= fixed["max_new_tokens"])
        logits, model_state = adapter.step(chosen[:, None], model_state, index)
        return tokens, valid, ops.cast(logits, "float32"), model_state, index + 1, done, log_probs

    values = ops.while_loop(cond, body, tuple(state[name] for name in names))
    state.update(zip(names, values))
    return state


def finish(state):
    """(token_ids, padding_mask, log_probs) of a finished (or partial) state.

    token_ids (batch, total) int32 left-padded prompts then the new tokens, 0
    outside the mask; padding_mask (batch, total) bool; log_probs (batch, new).
    """
    return state["tokens"], state["valid"], state["log_probs"]


def decode(adapter, processor, chooser, inputs, prompt, prompt_mask, max_new_tokens):
    """start + advance to the end + finish, in one traceable function."""
    return finish(advance(adapter, processor, chooser, seeded(start(adapter, inputs, prompt, prompt_mask,
                                                                    max_new_tokens), chooser)))


def seeded(state, chooser):
    """`state` with the chooser's base seed for this decoding (drawn once, outside the loop), if it has one."""
    seed = chooser.draw_seed()
    return state if seed is None else dict(state, chooser_seed=seed)


# ----------------------------------------------------------------- beams


def _take_rows(structure, rows):
    return keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), structure)


def _gather_beams(x, indices):
    """x (batch, beams) or (batch, beams, length) gathered along axis 1 by indices (batch, k)."""
    if len(x.shape) == 3:
        shape = ops.shape(indices)
        indices = ops.broadcast_to(indices[:, :, None], (shape[0], shape[1], ops.shape(x)[2]))
    return ops.take_along_axis(x, indices, axis=1)


def beam_search(adapter, processor, inputs, prompt, prompt_mask, max_new_tokens, num_beams,
                length_penalty=1.0, early_stopping=False, num_return_sequences=1):
    """Beam search; returns (token_ids (batch * n, total), padding_mask, sequence_scores (batch * n,)).

    `max_new_tokens` is a Python int or scalar tensor (one limit for all rows).
    The rows of a batch item's n returned sequences are consecutive, best first.
    """
    k = int(num_beams)
    prompt = ops.cast(prompt, "int32")
    prompt_mask = ops.cast(prompt_mask, "bool")
    batch, prompt_length = ops.shape(prompt)[0], ops.shape(prompt)[1]
    total = prompt_length + max_new_tokens
    logits, model_state = adapter.prefill(inputs, prompt, prompt_mask, total)
    rows = ops.repeat(ops.arange(batch, dtype="int32"), k)
    logits, model_state = _take_rows((logits, model_state), rows)
    start_tokens = ops.concatenate([ops.where(prompt_mask, prompt, 0), ops.zeros((batch, total - prompt_length), "int32")], 1)
    start_valid = ops.concatenate([prompt_mask, ops.zeros((batch, total - prompt_length), "bool")], 1)
    running = ops.repeat(start_tokens[:, None], k, axis=1)  # (batch, k, total)
    valid = ops.repeat(start_valid[:, None], k, axis=1)
    running_scores = ops.repeat(ops.convert_to_tensor([[0.0] + [_NEG] * (k - 1)]), batch, axis=0)
    finished = running
    finished_valid = valid
    finished_scores = ops.full((batch, k), _NEG)
    finished_flags = ops.zeros((batch, k), "bool")
    improvable = ops.ones((batch, 1), "bool")
    stop_ids = processor.stop_token_ids
    keep = max(2, 1 + len(stop_ids)) * k
    top_mask = ops.arange(keep) < k
    max_new = ops.full((batch * k,), max_new_tokens, "int32")
    stopping = early_stopping is True

    def normalize(scores, length):
        return scores / ops.power(ops.cast(length, "float32"), length_penalty)

    def cond(running, valid, scores, finished, finished_valid, finished_scores, flags, improvable,
             logits, model_state, index, all_hit):
        open_beams = ops.logical_not(ops.all(flags) & stopping)
        return (index < total) & ops.any(improvable) & open_beams & ops.logical_not(all_hit)

    def body(running, valid, scores, finished, finished_valid, finished_scores, flags, improvable,
             logits, model_state, index, all_hit):
        new_index = index - prompt_length
        flat_tokens = ops.reshape(running, (batch * k, -1))
        flat_valid = ops.reshape(valid, (batch * k, -1))
        lengths = ops.sum(ops.cast(flat_valid, "int32"), axis=1)
        log_probs = ops.log_softmax(logits, axis=-1)
        log_probs = processor(log_probs, flat_tokens, flat_valid, index, new_index, max_new, lengths)
        vocabulary = ops.shape(log_probs)[1]
        totals = ops.reshape(log_probs, (batch, k, vocabulary)) + scores[:, :, None]
        top_scores, top_ids = ops.top_k(ops.reshape(totals, (batch, -1)), keep)  # (batch, keep)
        top_ids = ops.cast(top_ids, "int32")
        source, token = top_ids // vocabulary, top_ids % vocabulary
        candidates = _gather_beams(running, source)  # (batch, keep, total)
        candidates = ops.slice_update(candidates, [0, 0, index], token[:, :, None])
        candidate_valid = ops.slice_update(_gather_beams(valid, source), [0, 0, index],
                                           ops.ones_like(token, "bool")[:, :, None])
        hits = _is_stop(token, stop_ids) | (index + 1 >= total)
        # Next running beams: the best candidates that did not stop.
        running_candidates = top_scores + ops.cast(hits, "float32") * _NEG
        next_scores, chosen = ops.top_k(running_candidates, k)
        chosen = ops.cast(chosen, "int32")
        running = _gather_beams(candidates, chosen)
        valid = _gather_beams(candidate_valid, chosen)
        # Finished hypotheses: stopped candidates among the top k, length-normalized.
        just_finished = hits & top_mask[None, :]
        normalized = normalize(top_scores, index + 1 - prompt_length)
        full = ops.all(flags, axis=1, keepdims=True) & stopping
        normalized = normalized + _NEG * ops.cast(full | ops.logical_not(improvable)
                                                  | ops.logical_not(just_finished), "float32")
        merged_scores = ops.concatenate([finished_scores, normalized], 1)
        _, best = ops.top_k(merged_scores, k)
        best = ops.cast(best, "int32")
        finished = _gather_beams(ops.concatenate([finished, candidates], 1), best)
        finished_valid = _gather_beams(ops.concatenate([finished_valid, candidate_valid], 1), best)
        flags = _gather_beams(ops.concatenate([flags, just_finished], 1), best)
        finished_scores = _gather_beams(merged_scores, best)
        # The cache follows the beams it continues.
        beam_rows = ops.reshape(_gather_beams(source, chosen) + ops.arange(batch, dtype="int32")[:, None] * k, (-1,))
        model_state = _take_rows(model_state, beam_rows)
        next_tokens = ops.reshape(_gather_beams(token, chosen), (batch * k, 1))
        logits, model_state = adapter.step(next_tokens, model_state, index)
        index = index + 1
        # transformers' heuristic: could a running beam still beat the worst finished one?
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = total - prompt_length
        else:
            best_length = index - prompt_length
        best_possible = normalize(next_scores[:, :1], best_length)
        worst = ops.where(flags, ops.min(finished_scores, axis=1, keepdims=True), _NEG)
        improvable = improvable & ops.any(best_possible > worst, axis=1, keepdims=True)
        return (running, valid, next_scores, finished, finished_valid, finished_scores, flags, improvable,
                ops.cast(logits, "float32"), model_state, index, ops.all(hits))

    loop = (running, valid, running_scores, finished, finished_valid, finished_scores, finished_flags,
            improvable, ops.cast(logits, "float32"), model_state,
            ops.convert_to_tensor(prompt_length, "int32"), ops.convert_to_tensor(False))
    loop = ops.while_loop(cond, body, loop)
    finished, finished_valid, finished_scores = loop[3], loop[4], loop[5]
    n = int(num_return_sequences)
    tokens = ops.reshape(finished[:, :n], (batch * n, -1))
    mask = ops.reshape(finished_valid[:, :n], (batch * n, -1))
    return ops.where(mask, tokens, 0), mask, ops.reshape(finished_scores[:, :n], (-1,))


# ----------------------------------------------------------- padding layout


def shift_rows(tokens, valid, shift):
    """Row r moved left by shift[r] columns (right when negative); vacated columns are invalid and 0.

    tokens (batch, length) int, valid (batch, length) bool, shift (batch,) int.
    """
    length = ops.shape(tokens)[1]
    source = ops.arange(length, dtype="int32")[None, :] + ops.cast(shift, "int32")[:, None]
    inside = (source >= 0) & (source < length)
    source = ops.clip(source, 0, length - 1)
    valid = (ops.take_along_axis(ops.cast(valid, "int32"), source, axis=1) > 0) & inside
    tokens = ops.where(valid, ops.take_along_axis(ops.cast(tokens, "int32"), source, axis=1), 0)
    return tokens, valid


def _first_valid(valid):
    return ops.cast(ops.argmax(ops.cast(valid, "int32"), axis=1), "int32")  # (batch,); 0 for a full row


def left_align(tokens, valid):
    """Each row's one contiguous run of valid positions moved to the row's end (the core's layout)."""
    valid = ops.cast(valid, "bool")
    count = ops.sum(ops.cast(valid, "int32"), axis=1)
    return shift_rows(tokens, valid, _first_valid(valid) - (ops.shape(tokens)[1] - count))


def right_align(tokens, valid):
    """Each row's one contiguous run of valid positions moved to the row's start."""
    valid = ops.cast(valid, "bool")
    return shift_rows(tokens, valid, _first_valid(valid))
