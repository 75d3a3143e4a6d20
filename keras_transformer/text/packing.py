"""From documents to rows of token ids: shuffling, batched tokenization, packing.

Packing concatenates the tokenized documents, each followed by a separator
id, and cuts the stream into rows of exactly `row_length` tokens (the last
one padded), so short documents fill whole training rows instead of padding.
Every token lands in exactly one row, in order. keras-hub's packers
(`StartEndPacker`, `MultiSegmentPacker`) then add start/end ids and padding
per row; this module only makes the rows.
"""

import tensorflow as tf

from keras_transformer.text.tokenizers import refresh_graph_resources

AUTOTUNE = tf.data.AUTOTUNE
TOKENIZE_BATCH = 256  # documents tokenized per call: amortises the per-call cost


def document_dataset(documents, shuffle=True, seed=0, shuffle_buffer=None):
    """A `tf.data.Dataset` of document strings, shuffled with `seed` if asked.

    Args:
        documents: a list of strings or a `tf.data.Dataset` of strings.
        shuffle_buffer: default: every document (a list) or 10000 (a dataset).
            `token_sequences` uses it for packed rows too (default 1024).
    """
    if isinstance(documents, tf.data.Dataset):
        dataset, size = documents, 10_000
    else:
        documents = list(documents)
        if not documents or not all(isinstance(d, str) for d in documents):
            raise ValueError("documents must be a non-empty list of strings or a tf.data.Dataset of strings")
        dataset, size = tf.data.Dataset.from_tensor_slices(documents), len(documents)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer or size, seed=seed, reshuffle_each_iteration=True)
    return dataset


def pack_token_sequences(sequences, row_length, pad_id=0):
    """Packs a dataset of 1-D int token tensors into rows of `row_length` tokens.

    Tokens keep their order and every token appears in exactly one row; only
    the final row is padded (with `pad_id`). Elements: (row_length,) int32.
    """
    if not isinstance(row_length, int) or row_length < 1:
        raise ValueError(f"row_length must be a positive int; received row_length={row_length!r}")
    # A final empty element tells the scan to flush what it holds.
    flagged = sequences.map(lambda tokens: (tf.cast(tokens, tf.int32), False)).concatenate(
        tf.data.Dataset.from_tensors((tf.zeros([0], tf.int32), True))
    )

    def step(carry, element):
        tokens, last = element
        buffer = tf.concat([carry, tokens], axis=0)
        size = tf.size(buffer)
        # Emit every full row; on the last element the remainder too, padded.
        emitted = tf.where(last, size, size // row_length * row_length)
        num_rows = (emitted + row_length - 1) // row_length
        rows = tf.pad(buffer[:emitted], [[0, num_rows * row_length - emitted]], constant_values=pad_id)
        return buffer[emitted:], tf.reshape(rows, [num_rows, row_length])

    # The carry's length changes from step to step; tf.data relaxes its shape to [None].
    # Dense rows: unbatching and batching them is ~5x faster than ragged rows.
    return flagged.scan(tf.zeros([0], tf.int32), step).unbatch()


def token_sequences(documents, tokenizer, row_length, *, pack, separator_id, pad_id, seed, shuffle=True,
                    shuffle_buffer=None):
    """Rows of tokenized documents: (row_length,) int32, padded at the end with `pad_id`.

    With `pack`, documents (each followed by `separator_id`) are packed into
    rows of `row_length` and the rows shuffled again; without, each document
    is one row, truncated to `row_length` tokens. Empty documents give nothing.
    """
    refresh_graph_resources(tokenizer)
    dataset = document_dataset(documents, shuffle, seed, shuffle_buffer)
    dataset = dataset.batch(TOKENIZE_BATCH).map(
        lambda texts: tf.cast(tokenizer(texts), tf.int32), num_parallel_calls=AUTOTUNE
    )  # (documents, None) ragged
    if pack:
        separators = lambda ids: tf.fill([ids.nrows(), 1], tf.constant(separator_id, tf.int32))
        dataset = dataset.map(
            lambda ids: tf.concat([ids, separators(ids)], axis=1).flat_values,
            num_parallel_calls=AUTOTUNE,
        )
        dataset = pack_token_sequences(dataset, row_length, pad_id)
        if shuffle:
            dataset = dataset.shuffle(shuffle_buffer or 1024, seed=seed + 1, reshuffle_each_iteration=True)
    else:
        dataset = dataset.map(
            lambda ids: ids[:, :row_length].to_tensor(pad_id, shape=[None, row_length]),
            num_parallel_calls=AUTOTUNE,
        ).unbatch()
    return dataset.filter(lambda row: row[0] != pad_id)


def strip_padding(rows, pad_id):
    """(batch, length) rows padded at the end -> a ragged batch without the padding."""
    return tf.RaggedTensor.from_tensor(rows, padding=pad_id)
