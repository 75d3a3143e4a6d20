import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text.packing import pack_token_sequences, token_sequences


def sequences_dataset(sequences):
    return tf.data.Dataset.from_generator(lambda: iter(sequences), output_signature=tf.TensorSpec([None], tf.int32))


def test_packing_keeps_every_token_exactly_once_in_order():
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 1000, size=n)) for n in [3, 7, 0, 12, 1, 5, 40, 2]]
    rows = [row.numpy() for row in pack_token_sequences(sequences_dataset(sequences), 5, pad_id=0)]
    assert all(row.shape == (5,) and row.dtype == np.int32 for row in rows)
    assert all((row != 0).all() for row in rows[:-1])  # only the last row is padded
    packed = np.concatenate(rows)
    expected = np.concatenate([np.asarray(s, "int32") for s in sequences])
    np.testing.assert_array_equal(packed[packed != 0], expected)
    assert len(rows) == -(-len(expected) // 5)


def test_pack_rejects_a_bad_row_length():
    with pytest.raises(ValueError, match="row_length=0"):
        pack_token_sequences(sequences_dataset([[1]]), 0)


def test_token_sequences_pack_and_truncate(byte_tokenizer, documents):
    tokenizer = byte_tokenizer
    texts = documents[:12]
    common = dict(separator_id=256, pad_id=0, seed=0, shuffle=False)
    packed = np.stack(list(token_sequences(texts, tokenizer, 64, pack=True, **common).as_numpy_iterator()))
    stream = np.concatenate([np.append(np.frombuffer(t.encode(), np.uint8), 256) for t in texts])
    np.testing.assert_array_equal(packed.ravel()[: len(stream)], stream)
    assert (packed.ravel()[len(stream):] == 0).all()
    single = list(token_sequences(texts, tokenizer, 64, pack=False, **common).as_numpy_iterator())
    assert len(single) == len(texts)
    for row, text in zip(single, texts):
        np.testing.assert_array_equal(row[row != 0], np.frombuffer(text.encode()[:64], np.uint8))


def test_shuffling_is_reproducible_with_the_same_seed(byte_tokenizer, documents):
    def first_rows(seed):
        dataset = token_sequences(documents[:60], byte_tokenizer, 32, pack=True, separator_id=256, pad_id=0,
                                  seed=seed, shuffle_buffer=64)
        return np.stack(list(dataset.take(20).as_numpy_iterator()))

    np.testing.assert_array_equal(first_rows(3), first_rows(3))
    assert not np.array_equal(first_rows(3), first_rows(4))
