"""Token ids with their byte spans in the original text, as graph ops (tf.data and SavedModels alike).

    ids, starts, ends = tokenize_with_offsets(tokenizer, tf.constant(["The json module."]))
    # ids: exactly tokenizer(text); token i covers text[starts[i]:ends[i]] (UTF-8 bytes)

Spans always begin and end on character boundaries, so a span decodes to
text. How each tokenizer kind gets them:

- "wordpiece" (keras-hub's `WordPieceTokenizer` has no offsets): the text is
  split into words with `tensorflow_text.regex_split_with_offsets` and the
  tokenizer's own split patterns, then each word is normalised as the
  tokenizer does it (NFD and accent stripping, case folding) and cut into
  pieces by the tokenizer's `FastWordpieceTokenizer.tokenize_with_offsets`.
  In an ASCII word each piece gets its exact span; normalisation can change
  a non-ASCII word's length, so there every piece gets the whole word's
  span (an answer then starts and ends on whole words).
- "sentencepiece": `tensorflow_text.SentencepieceTokenizer.tokenize_with_offsets`
  (spans in the original text), with the whitespace a piece's "▁" stands for
  left out of its span.
- "bytes": one id per UTF-8 byte; each byte token gets the span of its
  whole character. Needs a tokenizer that neither lower-cases nor
  normalises (the default), which keeps bytes and ids one to one.

The ids equal `tokenizer(text)` for every text (checked in the tests), so a
model sees the same ids as in the other pipelines. As for the tokenizers,
call `keras_transformer.text.tokenizers.refresh_graph_resources` after
seeding and before tracing (the pipelines and exports here do).
"""

import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.src.tokenizers import word_piece_tokenizer as keras_hub_word_piece

from keras_transformer.text.tokenizers import tokenizer_kind


def check_offsets_support(tokenizer):
    """ValueError unless `tokenize_with_offsets` can give `tokenizer`'s ids with their spans."""
    kind = tokenizer_kind(tokenizer)
    if kind == "bytes" and (tokenizer.lowercase or tokenizer.normalization_form):
        raise ValueError("token offsets need a bytes tokenizer without lowercase or normalization_form "
                         f"(they change the bytes); received lowercase={tokenizer.lowercase}, "
                         f"normalization_form={tokenizer.normalization_form!r}")
    if kind == "wordpiece" and (not tokenizer.split or tokenizer.special_tokens_in_strings):
        raise ValueError("token offsets need a WordPieceTokenizer with split=True and "
                         "special_tokens_in_strings=False (as keras_transformer.text.train_tokenizer makes them)")
    return kind


def tokenize_with_offsets(tokenizer, text):
    """(batch,) strings -> (ids, starts, ends): (batch, [tokens]) ragged, int32 ids, int64 byte offsets."""
    kind = check_offsets_support(tokenizer)
    text = tf.convert_to_tensor(text, tf.string)
    if kind == "bytes":
        return _bytes(text)
    if kind == "sentencepiece":
        return _sentencepiece(tokenizer, text)
    return _wordpiece(tokenizer, text)


def _bytes(text):
    # keras-hub's ByteTokenizer: the id of a byte is its value.
    pieces = tf.strings.bytes_split(text)  # (batch, [bytes]) one-byte strings
    ids = pieces.with_flat_values(tf.cast(tf.io.decode_raw(pieces.flat_values, tf.uint8)[:, 0], tf.int32))
    characters = tf.strings.unicode_split(text, "UTF-8")  # (batch, [characters])
    widths = tf.strings.length(characters.flat_values)  # bytes per character
    row = characters.value_rowids()
    char_starts = tf.cast(tf.cumsum(widths, exclusive=True), tf.int64) - tf.gather(pieces.row_splits, row)
    # Every byte of a character gets the character's span.
    starts = tf.repeat(char_starts, widths)
    ends = tf.repeat(char_starts + tf.cast(widths, tf.int64), widths)
    splits = ids.row_splits
    return (ids, tf.RaggedTensor.from_row_splits(starts, splits, validate=False),
            tf.RaggedTensor.from_row_splits(ends, splits, validate=False))


def _sentencepiece(tokenizer, text):
    with tf.init_scope():  # the tf-text resource belongs outside any traced graph
        tokenizer._maybe_initialized_tf()
    ids, starts, ends = tokenizer._sentence_piece.tokenize_with_offsets(text)
    # A piece's span includes the whitespace its "▁" stands for: leave it out.
    rows = tf.gather(text, starts.value_rowids())
    pieces = tf.strings.substr(rows, starts.flat_values, ends.flat_values - starts.flat_values)
    leading = tf.strings.length(pieces) - tf.strings.length(tf.strings.regex_replace(pieces, r"^\s+", ""))
    starts = starts.with_flat_values(starts.flat_values + tf.cast(leading, starts.dtype))
    return tf.cast(ids, tf.int32), tf.cast(starts, tf.int64), tf.cast(ends, tf.int64)


def _wordpiece(tokenizer, text):
    with tf.init_scope():
        tokenizer._maybe_initialized_tf()
    patterns = keras_hub_word_piece
    if tokenizer.split_on_cjk:
        split, keep = patterns.WHITESPACE_PUNCTUATION_AND_CJK_REGEX, patterns.PUNCTUATION_AND_CJK_REGEX
    else:
        split, keep = patterns.WHITESPACE_AND_PUNCTUATION_REGEX, patterns.PUNCTUATION_REGEX
    words, word_starts, word_ends = tf_text.regex_split_with_offsets(text, split, keep)  # (batch, [words])
    original = words.flat_values
    normalized = original
    if tokenizer.strip_accents:
        normalized = tf.strings.regex_replace(tf_text.normalize_utf8(normalized, "NFD"), r"\p{Mn}", "")
    # The tokenizer splits the normalised text; normalising a word can (rarely) expose a delimiter.
    parts = tf_text.regex_split(normalized, split, keep)  # (words, [parts])
    if tokenizer.lowercase:
        parts = tf_text.case_fold_utf8(parts)
    pieces, piece_starts, piece_ends = tokenizer._fast_word_piece.tokenize_with_offsets(parts)
    pieces, piece_starts, piece_ends = (t.merge_dims(1, 2) for t in (pieces, piece_starts, piece_ends))
    ascii_word = tf.strings.regex_full_match(original, r"[\x00-\x7F]*")  # normalisation keeps every byte
    word = pieces.value_rowids()  # the word of each piece
    word_start, word_end = (tf.gather(t.flat_values, word) for t in (word_starts, word_ends))
    exact = tf.gather(ascii_word, word)
    starts = tf.where(exact, word_start + tf.cast(piece_starts.flat_values, tf.int64), word_start)
    ends = tf.where(exact, word_start + tf.cast(piece_ends.flat_values, tf.int64), word_end)
    pieces_per_row = tf.RaggedTensor.from_row_splits(pieces.row_lengths(), words.row_splits, validate=False)
    splits = tf.concat([[0], tf.cumsum(tf.reduce_sum(pieces_per_row, axis=1))], axis=0)
    return tuple(tf.RaggedTensor.from_row_splits(values, splits, validate=False)
                 for values in (tf.cast(pieces.flat_values, tf.int32), starts, ends))
