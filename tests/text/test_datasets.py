import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text.datasets import causal_lm_dataset, masked_lm_dataset, span_corruption_dataset
from keras_transformer.text.inspection import format_sample
from keras_transformer.text.span_corruption import span_corrupt, span_corruption_lengths
from keras_transformer.text.special_tokens import SpecialTokens


def stream(tokenizer, documents, separator_id):
    """The token stream that packing cuts into rows (no shuffling)."""
    return np.concatenate([np.append(np.asarray(ids, "int32"), separator_id) for ids in tokenizer(documents)])


def batches(dataset, count):
    return [tf.nest.map_structure(np.asarray, batch) for batch in dataset.take(count)]


def check_spec(dataset, x_shapes, y_shape):
    x_spec, y_spec, w_spec = dataset.element_spec
    assert {key: (spec.shape.as_list(), spec.dtype) for key, spec in x_spec.items()} == {
        key: (shape, tf.int32) for key, shape in x_shapes.items()
    }
    assert (y_spec.shape.as_list(), y_spec.dtype) == (y_shape, tf.int32)
    assert (w_spec.shape.as_list(), w_spec.dtype) == (y_shape, tf.float32)


@pytest.fixture(scope="module")
def masked_lm(wordpiece, documents):
    return masked_lm_dataset(documents, wordpiece, sequence_length=64, batch_size=16, shuffle=False)


# Module-wide datasets use tokenizers without a SentencePiece resource: the
# autouse fixture's reseeding would delete it (see refresh_graph_resources).
@pytest.fixture(scope="module")
def span_corruption(byte_tokenizer, documents):
    return span_corruption_dataset(documents, byte_tokenizer, encoder_sequence_length=64, batch_size=8, shuffle=False)


def test_masked_lm(masked_lm, wordpiece, documents):
    special = SpecialTokens.from_tokenizer(wordpiece)
    dataset = masked_lm
    full = [16, 64]
    check_spec(dataset, {"token_ids": full, "segment_ids": full, "padding_mask": full, "mask_positions": [16, 10]}, [16, 10])
    # Unshuffled packed rows are consecutive 62-token pieces of the stream: rebuild the originals.
    rows = stream(wordpiece, documents, special.end_id)[: 6 * 16 * 62].reshape(6, 16, 62)
    counts = {"mask": 0, "random": 0, "kept": 0}
    selected = selectable = 0
    for (x, y, weights), row in zip(batches(dataset, 6), rows):
        original = np.pad(row, [[0, 0], [1, 1]], constant_values=(special.start_id, special.end_id))
        assert (x["segment_ids"] == 0).all() and (x["padding_mask"] == 1).all()
        is_masked = np.zeros_like(original, bool)
        np.put_along_axis(is_masked, x["mask_positions"], weights > 0, axis=1)
        np.testing.assert_array_equal(x["token_ids"][~is_masked], original[~is_masked])
        chosen = np.take_along_axis(original, x["mask_positions"], axis=1)
        np.testing.assert_array_equal(y[weights > 0], chosen[weights > 0])  # y = original ids
        assert not np.isin(y[weights > 0], special.all_ids).any()  # never a special token
        selectable_per_row = np.sum(~np.isin(original, special.all_ids), axis=1)
        assert (weights[weights > 0] == 1).all()
        np.testing.assert_array_equal(weights.sum(axis=1), np.ceil(0.15 * selectable_per_row))
        new = np.take_along_axis(x["token_ids"], x["mask_positions"], axis=1)[weights > 0]
        counts["mask"] += np.sum(new == special.mask_id)
        counts["kept"] += np.sum(new == y[weights > 0])
        counts["random"] += np.sum((new != special.mask_id) & (new != y[weights > 0]))
        selected += weights.sum()
        selectable += selectable_per_row.sum()
    assert abs(selected / selectable - 0.15) < 0.02
    total = sum(counts.values())
    assert abs(counts["mask"] / total - 0.8) < 0.05
    assert abs(counts["random"] / total - 0.1) < 0.04 and abs(counts["kept"] / total - 0.1) < 0.04


def test_masked_lm_never_masks_padding(byte_tokenizer):
    texts = ["short text number %d" % i for i in range(8)]
    dataset = masked_lm_dataset(texts, byte_tokenizer, sequence_length=48, batch_size=8, pack=False)
    (x, y, weights), = batches(dataset, 1)
    lengths = x["padding_mask"].sum(axis=1)
    assert sorted(lengths) == sorted(len(t) + 2 for t in texts)
    assert (x["token_ids"][x["padding_mask"] == 0] == 0).all()
    positions = x["mask_positions"][weights > 0]
    rows = np.nonzero(weights > 0)[0]
    assert (x["padding_mask"][rows, positions] == 1).all()
    assert (positions > 0).all() and (positions < lengths[rows] - 1).all()  # not [CLS], [SEP] or padding
    assert (weights.sum(axis=1) == np.ceil(0.15 * (lengths - 2))).all()


@pytest.mark.parametrize("pack", [True, False])
def test_causal_lm(byte_tokenizer, documents, pack):
    special = SpecialTokens.from_tokenizer(byte_tokenizer)
    texts = [d[: 40 + 12 * (i % 8)] for i, d in enumerate(documents[:40])]  # 40 to 124 bytes
    dataset = causal_lm_dataset(texts, byte_tokenizer, sequence_length=96, batch_size=8, pack=pack, shuffle=False)
    check_spec(dataset, {"token_ids": [8, 96], "padding_mask": [8, 96]}, [8, 96])
    for x, y, weights in batches(dataset, 3):
        np.testing.assert_array_equal(x["token_ids"][:, 1:], y[:, :-1])  # y is x shifted by one
        np.testing.assert_array_equal(weights, (y != special.pad_id).astype("float32"))
        np.testing.assert_array_equal(x["padding_mask"], x["token_ids"] != special.pad_id)
    if pack:
        rows = stream(byte_tokenizer, texts, special.end_id)[: 3 * 8 * 97].reshape(3, 8, 97)
        for (x, y, _), row in zip(batches(dataset, 3), rows):
            np.testing.assert_array_equal(x["token_ids"], row[:, :-1])
            np.testing.assert_array_equal(y, row[:, 1:])
    else:
        (x, y, weights), = batches(dataset, 1)
        ends = weights.sum(axis=1).astype(int) - 1  # each document ends with </s>, then padding
        assert (y[np.arange(8), ends] == special.end_id).all()
        assert ((weights == 0) == (y == special.pad_id)).all() and (weights == 0).any()


def test_span_corruption(span_corruption, byte_tokenizer, documents):
    special = SpecialTokens.from_tokenizer(byte_tokenizer)
    sentinels = np.asarray(special.sentinel_ids)
    dataset = span_corruption
    raw_length, target_length = span_corruption_lengths(64)
    assert (raw_length, target_length) == (70, 14)  # 10 noise tokens in 3 spans: 70 - 10 + 3 + 1 = 64
    encoder, decoder = [8, 64], [8, 14]
    check_spec(dataset, {"encoder_token_ids": encoder, "encoder_padding_mask": encoder,
                         "decoder_token_ids": decoder, "decoder_padding_mask": decoder}, decoder)
    reconstructed, noise_tokens, spans = [], 0, 0
    for x, y, weights in batches(dataset, 6):
        np.testing.assert_array_equal(x["decoder_token_ids"][:, 0], 0)  # decoder start id
        np.testing.assert_array_equal(x["decoder_token_ids"][:, 1:], y[:, :-1])
        np.testing.assert_array_equal(x["decoder_padding_mask"], y != special.pad_id)
        np.testing.assert_array_equal(weights, (y != special.pad_id).astype("float32"))
        np.testing.assert_array_equal(x["encoder_padding_mask"], x["encoder_token_ids"] != special.pad_id)
        for inputs, targets in zip(x["encoder_token_ids"], y):
            inputs, targets = inputs[inputs != special.pad_id], targets[targets != special.pad_id]
            assert inputs[-1] == targets[-1] == special.end_id
            inputs, targets = inputs[:-1], targets[:-1]
            input_sentinels = inputs[np.isin(inputs, sentinels)]
            target_sentinels = targets[np.isin(targets, sentinels)]
            # One sentinel per span, <extra_id_0>, <extra_id_1>, ... in order, in both.
            np.testing.assert_array_equal(input_sentinels, sentinels[: len(input_sentinels)])
            np.testing.assert_array_equal(target_sentinels, input_sentinels)
            assert targets[0] == sentinels[0]
            starts = list(np.nonzero(np.isin(targets, sentinels))[0]) + [len(targets)]
            span_after = {targets[a]: targets[a + 1 : b] for a, b in zip(starts[:-1], starts[1:])}
            pieces = [span_after[token] if token in span_after else [token] for token in inputs]
            reconstructed.append(np.concatenate(pieces).astype("int32"))
            noise_tokens += len(targets) - len(target_sentinels)
            spans += len(target_sentinels)
    original = stream(byte_tokenizer, documents, special.end_id)
    reconstructed = np.concatenate(reconstructed)
    np.testing.assert_array_equal(reconstructed, original[: len(reconstructed)])  # nothing lost or moved
    assert abs(noise_tokens / len(reconstructed) - 0.15) < 0.01
    assert abs(noise_tokens / spans - 3.0) < 0.5


def test_span_corruption_with_sentencepiece(sentencepiece, documents):
    special = SpecialTokens.from_tokenizer(sentencepiece)
    dataset = span_corruption_dataset(documents[:40], sentencepiece, encoder_sequence_length=32, batch_size=4)
    x, y, _ = batches(dataset, 1)[0]
    for inputs, targets in zip(x["encoder_token_ids"], y):
        used = inputs[np.isin(inputs, special.sentinel_ids)]
        np.testing.assert_array_equal(used, special.sentinel_ids[: len(used)])
        np.testing.assert_array_equal(targets[np.isin(targets, special.sentinel_ids)], used)


def test_span_corruption_is_seeded(span_corruption):
    # The noise comes from stateless ops seeded by (seed, batch index): every pass is the same.
    tf.nest.map_structure(np.testing.assert_array_equal, batches(span_corruption, 2), batches(span_corruption, 2))
    rows = tf.constant(np.arange(1, 2 * 70 + 1, dtype="int32").reshape(2, 70))
    sentinel_ids = tf.range(1000, 1010)

    def corrupt(seed):
        inputs, targets = span_corrupt(rows, tf.constant([70, 50]), sentinel_ids, tf.constant(seed, tf.int64))
        return inputs.to_list(), targets.to_list()

    assert corrupt([0, 1]) == corrupt([0, 1]) and corrupt([0, 1]) != corrupt([1, 1])
    inputs, targets = corrupt([0, 1])
    # 70 tokens: 10 noise in 3 spans; 50 tokens: 8 noise in 3 spans. Padding never shows.
    assert [len(row) for row in inputs] == [63, 45] and [len(row) for row in targets] == [13, 11]
    assert set(inputs[1] + targets[1]) == set(range(71, 121)) | {1000, 1001, 1002}


def test_objectives_check_the_tokenizer(wordpiece, documents):
    with pytest.raises(ValueError, match="17-token rows needs 1 sentinel tokens; the tokenizer has 0"):
        span_corruption_dataset(documents, wordpiece, encoder_sequence_length=16)
    with pytest.raises(ValueError, match="sequence_length must be an int >= 3; received sequence_length=2"):
        masked_lm_dataset(documents, wordpiece, sequence_length=2)
    with pytest.raises(ValueError, match="decoder_sequence_length must be at least 14"):
        span_corruption_dataset(documents, wordpiece, encoder_sequence_length=64, decoder_sequence_length=8)


def test_format_sample_shows_masks_and_sentinels(masked_lm, span_corruption, wordpiece, byte_tokenizer, documents):
    text = format_sample(masked_lm, wordpiece, 1)
    assert text.startswith("example 0:\n  input:  [CLS] ") and "[MASK]" in text and "masked: 10 of 64 tokens" in text
    text = format_sample(span_corruption, byte_tokenizer, 2)
    assert text.count("<extra_id_0>") == 4 and text.count("<extra_id_2>") == 4 and text.count("</s>") >= 4
    dataset = causal_lm_dataset(documents[:4], byte_tokenizer, sequence_length=32, batch_size=1, shuffle=False)
    assert format_sample(dataset, byte_tokenizer, 1) == (
        f"example 0:\n  input:  {documents[0][:32]}\n  target: {documents[0][1:33]}"
    )
