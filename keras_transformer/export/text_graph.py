"""Tokenization and packing as graph ops, for the text signatures.

Tokenizers are the keras-hub ones `keras_transformer.text` makes (WordPiece,
SentencePiece, bytes); inside a traced function they run tensorflow-text ops.
Packing follows the training pipelines (`keras_transformer.text.supervised`):
BERT `[CLS] text [SEP]`, T5 encoder `text </s>`, GPT prompts as plain ids.
Every packed batch is as long as its longest row, never longer than the
model's `max_sequence_length`; longer texts are truncated (the policy of
each signature is in its description).
"""

import tensorflow as tf

from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.tokenizers import refresh_graph_resources, tokenizer_kind


def prepare_tokenizer(tokenizer):
    """Makes a tokenizer ready to be traced and tracked; returns its `SpecialTokens`.

    keras-hub builds a tokenizer's TensorFlow objects (tf-text tokenizer,
    lookup constants) lazily on the first graph call; built inside a traced
    function they would belong to that graph. Building them eagerly here lets
    every endpoint share them, and the eager calls build the layer, which
    `ExportArchive.track` requires.
    """
    tokenizer_kind(tokenizer)  # ValueError for a tokenizer kind we cannot export
    refresh_graph_resources(tokenizer)
    with tf.init_scope():
        if hasattr(tokenizer, "_maybe_initialized_tf"):
            tokenizer._maybe_initialized_tf()  # keras-hub 0.32: the TF path's lazy setup
        tokenizer(["warm"])
        tokenizer.detokenize([[1]])
    return SpecialTokens.from_tokenizer(tokenizer)


def vocabulary_strings(tokenizer, size):
    """The token string of every id below `size`; ids the tokenizer lacks map to ""."""
    vocabulary = tokenizer.get_vocabulary()
    if isinstance(vocabulary, dict):  # bytes: {token: id}
        strings = [""] * tokenizer.vocabulary_size()
        for token, index in vocabulary.items():
            strings[index] = token
    else:
        strings = list(vocabulary)
    return (strings + [""] * size)[:size]


def tokenize(tokenizer, text):
    """(batch,) strings -> (batch, [tokens]) int32 ragged ids."""
    ids = tokenizer(text)
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(ids)
    return tf.cast(ids, tf.int32)


def tokenize_with_mask(tokenizer, text, mask_token, mask_id):
    """Like `tokenize`, but every literal `mask_token` in the text becomes `mask_id`.

    Tokenizers split "[MASK]" into pieces, so the text is cut at each mask
    token, the pieces are tokenized and the mask id goes between them.
    """
    pieces = tf.strings.split(text, sep=mask_token)  # (batch, [pieces])
    piece_ids = tokenize(tokenizer, pieces.flat_values)  # (pieces, [tokens])
    mask_column = tf.fill([tf.shape(pieces.flat_values)[0], 1], mask_id)
    with_mask = tf.concat([piece_ids, tf.RaggedTensor.from_tensor(mask_column)], axis=1)
    rows = tf.RaggedTensor.from_row_lengths(with_mask, pieces.row_lengths()).merge_dims(1, 2)
    return rows[:, :-1]  # no mask after the last piece


def to_dense(ids, pad_id):
    """(batch, [len]) ragged -> (token_ids, padding_mask), both (batch, longest) int32."""
    token_ids = ids.to_tensor(default_value=pad_id)
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    mask = tf.sequence_mask(lengths, tf.shape(token_ids)[1], dtype=tf.int32)
    return token_ids, mask


def pack_bert(ids, special, max_length):
    """`[CLS] ids [SEP]`, truncated to `max_length` -> the BERT input dict (segment 0)."""
    batch = ids.nrows(out_type=tf.int32)
    start = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], special.start_id))
    end = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], special.end_id))
    packed = tf.concat([start, ids[:, : max_length - 2], end], axis=1)
    token_ids, padding_mask = to_dense(packed, special.pad_id)
    return {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids), "padding_mask": padding_mask}


def pack_t5_encoder(ids, special, max_length):
    """`ids </s>`, truncated to `max_length` -> (encoder_token_ids, encoder_padding_mask)."""
    batch = ids.nrows(out_type=tf.int32)
    end = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], special.end_id))
    return to_dense(tf.concat([ids[:, : max_length - 1], end], axis=1), special.pad_id)


def keep_last(ids, keep):
    """Left truncation: each row's last `keep[row]` ids (the most recent context)."""
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    positions = tf.ragged.range(lengths)
    return tf.ragged.boolean_mask(ids, positions >= (lengths - keep)[:, None])
