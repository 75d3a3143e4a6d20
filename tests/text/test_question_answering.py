"""Question answering data: token offsets, windows with a document stride, span labels, reading answers."""

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text.offsets import tokenize_with_offsets
from keras_transformer.text.question_answering import (
    QASettings,
    answer_byte_span,
    best_answer,
    question_answer_windows,
    question_answering_dataset,
    window_builder,
)
from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.squad import QAExample
from keras_transformer.text.tokenizers import refresh_graph_resources

TEXTS = ["Return os.path.join() of the PARTS, naïve café", "", "tab\there 3.14; 中文 ok", "x" * 120 + " end"]


def _graph(function, *arguments):
    """Runs `function` traced, as tf.data and the SavedModels run it (keras-hub tokenizers take their
    TensorFlow path only inside a graph)."""
    return tf.function(function, autograph=False)(*arguments)


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece", "bytes"])
def test_offsets_keep_the_tokenizer_ids_and_cover_their_text(tokenizers, kind):
    tokenizer = refresh_graph_resources(tokenizers[kind])
    text = tf.constant(TEXTS)
    ids, starts, ends = _graph(lambda t: tokenize_with_offsets(tokenizer, t), text)
    assert ids.to_list() == _graph(lambda t: tf.cast(tokenizer(t), tf.int32), text).to_list()
    for row, sentence in enumerate(TEXTS):
        encoded = sentence.encode("utf-8")
        spans = list(zip(starts[row].numpy(), ends[row].numpy()))
        assert all(0 <= a <= b <= len(encoded) for a, b in spans)
        assert [a for a, _ in spans] == sorted(a for a, _ in spans)
        for a, b in spans:
            encoded[a:b].decode("utf-8")  # character boundaries only
            if kind != "bytes":  # (a byte token may be a space)
                assert encoded[a:b] == encoded[a:b].strip()  # no surrounding whitespace


def test_wordpiece_spans_are_exact_in_ascii_words_and_whole_non_ascii_words(tokenizers):
    tokenizer = tokenizers["wordpiece"]
    text = "Return os.path.join() of the PARTS, naïve café"
    ids, starts, ends = _graph(lambda t: tokenize_with_offsets(tokenizer, t), tf.constant([text]))
    pieces = [tokenizer.id_to_token(int(i)) for i in ids[0].numpy()]
    spans = [text.encode()[a:b].decode() for a, b in zip(starts[0].numpy(), ends[0].numpy())]
    for piece, span in zip(pieces, spans):
        if span.isascii():
            assert span.lower() == piece.removeprefix("##")  # ASCII: the piece's own characters
        else:
            assert span in ("naïve", "café")  # every piece of a non-ASCII word spans the word
    ascii_spans = [span for span in spans if span.isascii()]
    assert "".join(ascii_spans) == "Returnos.path.join()ofthePARTS,"  # in order, every character once


def test_byte_tokens_span_their_whole_character(tokenizers):
    ids, starts, ends = _graph(lambda t: tokenize_with_offsets(tokenizers["bytes"], t), tf.constant(["aé!"]))
    assert ids.to_list() == [[97, 0xC3, 0xA9, 33]]
    assert list(zip(starts[0].numpy(), ends[0].numpy())) == [(0, 1), (1, 3), (1, 3), (3, 4)]


def test_lowercasing_byte_tokenizer_is_refused():
    from keras_transformer.text.tokenizers import train_tokenizer

    with pytest.raises(ValueError, match="without lowercase"):
        tokenize_with_offsets(train_tokenizer("bytes", lowercase=True), tf.constant(["x"]))


@pytest.fixture(scope="module")
def byte_windows(tokenizers):
    """Two examples in rows of 10 bytes: "q?" + "abcdefghij" (three windows, stride 3) and "xyz" + "é"."""
    tokenizer = tokenizers["bytes"]
    special = SpecialTokens.from_tokenizer(tokenizer)
    settings = QASettings(sequence_length=10, doc_stride=3, max_question_length=2, max_answer_length=5)
    spans = tf.constant([answer_byte_span("abcdefghij", "efg", 4), answer_byte_span("é", "é", 0)], tf.int64)
    features = _graph(lambda q, c, a: question_answer_windows(tokenizer, special, q, c, settings, a),
                      tf.constant(["q?", "xyz"]), tf.constant(["abcdefghij", "é"]), spans)
    return {name: value.numpy() for name, value in features.items()}, special


def test_long_contexts_become_overlapping_windows(byte_windows):
    features, special = byte_windows
    cls, sep, pad = special.start_id, special.end_id, special.pad_id
    q = [ord("q"), ord("?")]
    letters = [ord(ch) for ch in "abcdefghij"]
    # room for 10 - 3 - 2 = 5 context bytes; windows start at 0, 3, 6 and the last ends at the context's end
    np.testing.assert_array_equal(features["token_ids"][:3], [
        [cls, *q, sep, *letters[0:5], sep],
        [cls, *q, sep, *letters[3:8], sep],
        [cls, *q, sep, *letters[6:10], sep, pad]])
    # the second question is cut to max_question_length; "é" is two byte tokens of one character
    np.testing.assert_array_equal(features["token_ids"][3], [cls, ord("x"), ord("y"), sep, 0xC3, 0xA9, sep, pad,
                                                             pad, pad])
    np.testing.assert_array_equal(features["example"], [0, 0, 0, 1])
    np.testing.assert_array_equal(features["segment_ids"][2], [0, 0, 0, 0, 1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(features["padding_mask"][3], [1] * 7 + [0] * 3)
    np.testing.assert_array_equal(features["token_starts"][1], [-1] * 4 + [3, 4, 5, 6, 7, -1])
    np.testing.assert_array_equal(features["token_ends"][3], [-1] * 4 + [2, 2] + [-1] * 4)
    np.testing.assert_array_equal(features["question_tokens"], [2, 3])
    np.testing.assert_array_equal(features["context_tokens"], [10, 2])


def test_labels_point_at_the_answer_or_at_cls_when_a_window_cuts_it(byte_windows):
    features, _ = byte_windows
    # "efg" is bytes 4-6: window 0 (bytes 0-4) holds "e" only and window 2 (6-9) "g" only, so both
    # point at [CLS]; window 1 (3-7) holds it at positions 4 + (4 - 3) .. 4 + (6 - 3).
    np.testing.assert_array_equal(features["start_positions"], [0, 5, 0, 4])
    np.testing.assert_array_equal(features["end_positions"], [0, 7, 0, 5])


def test_dataset_rows_and_labels(tokenizers):
    settings = QASettings(sequence_length=10, doc_stride=3, max_question_length=2)
    example = QAExample("1", "q?", "abcdefghij", (("efg", 4),))
    dataset = question_answering_dataset([example], tokenizers["bytes"], settings, batch_size=2, shuffle=False,
                                         drop_remainder=False)
    batches = list(dataset)
    assert [x["token_ids"].shape for x, _, _ in batches] == [(2, 10), (1, 10)]
    starts = np.concatenate([y["start_logits"].numpy() for _, y, _ in batches])
    np.testing.assert_array_equal(starts, [0, 5, 0])
    assert all(np.all(w.numpy() == 1) for _, _, w in batches)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="doc_stride must be a positive integer; received doc_stride=0"):
        QASettings(doc_stride=0)
    with pytest.raises(ValueError, match="at most sequence_length - 4 = 12; received max_question_length=13"):
        QASettings(sequence_length=16, max_question_length=13)
    assert QASettings.for_length(384) == QASettings(384, 192, 96, 30)


def test_best_answer_reads_the_best_span_over_windows():
    context = "é ab cd"  # bytes: é 0-2, ab 3-5, cd 6-8
    starts = np.array([[-1, 0, 3, -1], [-1, 3, 6, -1]])
    ends = np.array([[-1, 2, 5, -1], [-1, 5, 8, -1]])
    start_logits = np.array([[9.0, 1.0, 2.0, 9.0], [9.0, 0.0, 2.0, 0.0]], "float32")  # [CLS] and [SEP] ignored
    end_logits = np.array([[9.0, 0.5, 1.0, 9.0], [9.0, 0.0, 1.5, 0.0]], "float32")
    answer = best_answer(context, start_logits, end_logits, starts, ends, max_answer_length=2)
    # window 1 "cd" alone: 2 + 1.5 = 3.5 beats window 0's "ab" (3.0) and "é ab" (1 + 1 = 2)
    assert (answer.text, answer.start, answer.end, answer.score) == ("cd", 5, 7, 3.5)
    assert context[answer.start:answer.end] == answer.text
    # spans longer than max_answer_length are not read; ties go to the earlier window
    end_logits[1, 2] = 1.0
    answer = best_answer(context, start_logits, end_logits, starts, ends, max_answer_length=1)
    assert (answer.text, answer.start, answer.end) == ("ab", 2, 4)
    start_logits[0, 1] = 5.0
    long = best_answer(context, start_logits, end_logits, starts, ends, max_answer_length=2)
    assert (long.text, long.start, long.score) == ("é ab", 0, 6.0)
    with pytest.raises(ValueError, match="no token"):
        best_answer("", start_logits, end_logits, np.full_like(starts, -1), ends, max_answer_length=2)


def test_window_builder_matches_the_dataset_rows(tokenizers):
    settings = QASettings(sequence_length=24, doc_stride=4, max_question_length=6)
    example = QAExample("1", "Which one?", "The json module reads JSON text.", (("json", 4),))
    rows = window_builder(tokenizers["wordpiece"], settings)([example.question], [example.context])
    x, _, _ = next(iter(question_answering_dataset([example], tokenizers["wordpiece"], settings, batch_size=8,
                                                   shuffle=False, drop_remainder=False)))
    np.testing.assert_array_equal(rows["token_ids"], x["token_ids"].numpy())
