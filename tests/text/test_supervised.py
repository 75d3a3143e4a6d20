import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text.inspection import format_sample
from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.supervised import classification_dataset, parse_labelled_lines, text_to_text_dataset

LINES = ["pos\tA fine result.", "neg\tIt broke again.", "", "neutral\tNothing happened\there.", "pos\tGood."]
LABELS = ["neg", "neutral", "pos"]


def test_labelled_lines_parse_to_label_indices():
    texts, ids = parse_labelled_lines(LINES, LABELS)
    assert texts == ["A fine result.", "It broke again.", "Nothing happened\there.", "Good."]
    assert ids == [2, 0, 1, 2]


@pytest.mark.parametrize(
    "line, message",
    [
        ("positive\tso good", r"train.txt line 2 has the unknown label 'positive' \(expected one of \['neg'"),
        ("no tab here", r"train.txt line 2 is not \"label<TAB>text\": 'no tab here'"),
        ("pos\t   ", r"train.txt line 2 is not \"label<TAB>text\""),
    ],
)
def test_bad_lines_raise_naming_the_line(line, message):
    with pytest.raises(ValueError, match=message):
        parse_labelled_lines(["neg\tfine", line], LABELS, source="train.txt")


def test_classification_dataset(byte_tokenizer):
    special = SpecialTokens.from_tokenizer(byte_tokenizer)
    dataset = classification_dataset(LINES, byte_tokenizer, LABELS, sequence_length=16, batch_size=4, shuffle=False)
    x, y, weights = next(iter(dataset))
    assert {key: value.shape.as_list() for key, value in x.items()} == {
        "token_ids": [4, 16], "segment_ids": [4, 16], "padding_mask": [4, 16]
    }
    assert y.dtype == tf.int32 and y.numpy().tolist() == [2, 0, 1, 2]
    np.testing.assert_array_equal(weights, np.ones(4, "float32"))
    token_ids = x["token_ids"].numpy()
    np.testing.assert_array_equal(token_ids[:, 0], special.start_id)
    first = [special.start_id, *b"A fine result.", special.end_id]
    assert token_ids[0, : len(first)].tolist() == first and (token_ids[0, len(first):] == 0).all()
    assert token_ids[2, -1] == special.end_id  # "Nothing happened\there." is truncated to 14 bytes
    np.testing.assert_array_equal(x["padding_mask"], token_ids != special.pad_id)


def test_classification_dataset_rejects_unknown_labels_before_building(byte_tokenizer):
    with pytest.raises(ValueError, match="line 3 has the unknown label 'maybe'"):
        classification_dataset(["pos\ta", "neg\tb", "maybe\tc"], byte_tokenizer, LABELS)


def test_text_to_text_dataset(sentencepiece):
    special = SpecialTokens.from_tokenizer(sentencepiece)
    lines = ["translate: the value\tla valeur", "summarize: return the list of items in order\titems"]
    dataset = text_to_text_dataset(lines, sentencepiece, encoder_sequence_length=24, decoder_sequence_length=8,
                                   batch_size=2, shuffle=False)
    x, y, weights = [tf.nest.map_structure(np.asarray, part) for part in next(iter(dataset))]
    assert x["encoder_token_ids"].shape == (2, 24) and y.shape == x["decoder_token_ids"].shape == (2, 8)
    np.testing.assert_array_equal(x["decoder_token_ids"][:, 0], 0)
    np.testing.assert_array_equal(x["decoder_token_ids"][:, 1:], y[:, :-1])
    np.testing.assert_array_equal(weights, (y != special.pad_id).astype("float32"))
    np.testing.assert_array_equal(x["decoder_padding_mask"], y != special.pad_id)
    assert (weights == 0).any()  # short targets are padded, and padding has no weight
    target = y[1][y[1] != special.pad_id]
    assert target[-1] == special.end_id
    assert sentencepiece.detokenize([target[:-1].tolist()]) == ["items"]
    with pytest.raises(ValueError, match="line 1 is not \"source<TAB>target\""):
        text_to_text_dataset(["no target"], sentencepiece)


def test_format_sample_of_supervised_batches(byte_tokenizer, sentencepiece):
    dataset = classification_dataset(LINES, byte_tokenizer, LABELS, sequence_length=24, batch_size=2, shuffle=False)
    assert format_sample(dataset, byte_tokenizer, 1, LABELS) == (
        "example 0:\n  input:  <s>A fine result.</s>\n  label:  2 (pos)"
    )
    dataset = text_to_text_dataset(["a <extra_id_0> c\t<extra_id_0> b"], sentencepiece, encoder_sequence_length=8,
                                   decoder_sequence_length=8, batch_size=1)
    assert format_sample(dataset, sentencepiece) == (
        "example 0:\n  encoder input: a <extra_id_0> c </s>\n  target:        <extra_id_0> b </s>"
    )
