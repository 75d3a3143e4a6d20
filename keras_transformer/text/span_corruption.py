"""T5 span corruption of a batch of token rows, with stateless (seeded) randomness.

Neither keras-hub nor tensorflow-text has it, so this follows T5's own
`random_spans_noise_mask` and `noise_span_to_unique_sentinel`
(google-research/text-to-text-transfer-transformer, t5/data/preprocessors.py),
vectorised over a batch (no per-row map: ~10x the rows per second):

    tokens   A B C D E F G H            noise mask . X X . . . Y Y
    inputs   A <extra_id_0> D E F <extra_id_1> </s>
    targets  <extra_id_0> B C <extra_id_1> G H </s>

Noise covers round(noise_density * length) tokens in
round(noise / mean_noise_span_length) spans; a row starts with non-noise and
ends with noise, so inputs and targets each hold one sentinel per span.
"""

import tensorflow as tf


def noise_counts(tokens_length, noise_density=0.15, mean_noise_span_length=3.0):
    """`(noise tokens, noise spans)` of a row of `tokens_length` tokens (T5's rounding)."""
    num_noise = int(round(tokens_length * noise_density))
    num_noise = min(max(num_noise, 1), tokens_length - 1)
    num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
    return num_noise, num_spans


def span_corruption_lengths(inputs_length, noise_density=0.15, mean_noise_span_length=3.0):
    """`(tokens_length, targets_length)`: the longest raw row whose corrupted
    inputs (with `</s>`) fit `inputs_length`, and its targets' length (T5's
    `random_spans_helper`). Shorter rows give shorter inputs and targets."""

    def corrupted(tokens_length):
        num_noise, num_spans = noise_counts(tokens_length, noise_density, mean_noise_span_length)
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    if inputs_length < 3:
        raise ValueError(f"inputs_length must be at least 3; received inputs_length={inputs_length}")
    tokens_length = 2
    while corrupted(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    return tokens_length, corrupted(tokens_length)[1]


def _random_segmentation(num_items, num_segments, width, max_segments, seed):
    """(batch, max_segments) lengths: each row's `num_items` split at random into
    `num_segments` non-empty segments (T5's shuffle of cut points, done by
    ranking random scores); segments past `num_segments` have length 0."""
    batch = tf.shape(num_items)[0]
    slots = tf.range(width - 1)[tf.newaxis]  # a cut may follow item 0 .. width - 2
    scores = tf.random.stateless_uniform([batch, width - 1], seed)
    scores = tf.where(slots < num_items[:, tf.newaxis] - 1, scores, 2.0)  # invalid slots rank last
    rank = tf.argsort(tf.argsort(scores, axis=1), axis=1)
    cuts = tf.cast(rank < num_segments[:, tf.newaxis] - 1, tf.int32)
    segment_id = tf.cumsum(tf.pad(cuts, [[0, 0], [1, 0]]), axis=1)  # (batch, width)
    is_item = tf.range(width)[tf.newaxis] < num_items[:, tf.newaxis]
    one_hot = tf.one_hot(segment_id, max_segments, dtype=tf.int32) * tf.cast(is_item, tf.int32)[..., tf.newaxis]
    return tf.reduce_sum(one_hot, axis=1)


def random_spans_noise_mask(lengths, width, seed, noise_density=0.15, mean_noise_span_length=3.0):
    """(batch, width) bool noise masks for rows of `lengths` (batch,) tokens, each >= 2.

    `seed`: (2,) ints for the stateless random ops. Positions past a row's
    length are never noise.
    """
    lengths = tf.cast(lengths, tf.int32)
    # float64 rounds exactly as `noise_counts` does in Python, so lengths planned there hold.
    num_noise = tf.cast(tf.round(tf.cast(lengths, tf.float64) * noise_density), tf.int32)
    num_noise = tf.clip_by_value(num_noise, 1, lengths - 1)
    num_spans = tf.cast(tf.round(tf.cast(num_noise, tf.float64) / mean_noise_span_length), tf.int32)
    num_spans = tf.maximum(num_spans, 1)
    max_spans = noise_counts(width, noise_density, mean_noise_span_length)[1]  # lengths <= width
    seeds = tf.random.experimental.stateless_split(seed, 2)
    noise = _random_segmentation(num_noise, num_spans, width, max_spans, seeds[0])
    nonnoise = _random_segmentation(lengths - num_noise, num_spans, width, max_spans, seeds[1])
    # Spans alternate non-noise, noise, ...: a position is noise when an odd number of spans end at or before it.
    span_ends = tf.cumsum(tf.reshape(tf.stack([nonnoise, noise], axis=2), [-1, 2 * max_spans]), axis=1)
    positions = tf.range(width)[tf.newaxis, :, tf.newaxis]
    spans_before = tf.reduce_sum(tf.cast(positions >= span_ends[:, tf.newaxis, :], tf.int32), axis=2)
    return tf.equal(spans_before % 2, 1) & (tf.range(width)[tf.newaxis] < lengths[:, tf.newaxis])


def _replace_spans(tokens, span_mask, is_token, sentinel_ids):
    """Each span of `span_mask` -> the next sentinel id; the span's other tokens (and padding) dropped."""
    previous = tf.pad(span_mask[:, :-1], [[0, 0], [1, 0]])
    first = span_mask & ~previous
    span_index = tf.maximum(tf.cumsum(tf.cast(first, tf.int32), axis=1) - 1, 0)
    tokens = tf.where(first, tf.gather(sentinel_ids, span_index), tokens)
    return tf.ragged.boolean_mask(tokens, is_token & ~(span_mask & previous))


def span_corrupt(tokens, lengths, sentinel_ids, seed, noise_density=0.15, mean_noise_span_length=3.0):
    """`(inputs, targets)`, ragged (batch, None), of a (batch, width) int32 batch of rows
    whose first `lengths` tokens are real (at least 2); no `</s>` is added.

    `sentinel_ids`: int32 ids of `<extra_id_0>`, `<extra_id_1>`, ...; there
    must be at least as many as noise spans (checked by the caller).
    """
    width = tokens.shape[1]
    if width is None:
        raise ValueError(f"span_corrupt needs rows of a static width; received shape {tokens.shape}")
    noise_mask = random_spans_noise_mask(lengths, width, seed, noise_density, mean_noise_span_length)
    is_token = tf.range(width)[tf.newaxis] < tf.cast(lengths, tf.int32)[:, tf.newaxis]
    inputs = _replace_spans(tokens, noise_mask, is_token, sentinel_ids)
    targets = _replace_spans(tokens, ~noise_mask & is_token, is_token, sentinel_ids)
    return inputs, targets
