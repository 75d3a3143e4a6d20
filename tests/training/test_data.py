"""The training stream is a function of the step; validation sets; corpus checks."""

import numpy as np
import pytest

from keras_transformer.text.span_corruption import noise_counts, span_corruption_lengths
from keras_transformer.text.tokenizers import train_tokenizer
from training import data
from training.config import TrainConfig

DOCUMENTS = [f"document number {i} says something about item {i * 7 % 13}." for i in range(40)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer("bytes", num_sentinels=0)


def _batches(dataset, count):
    return [np.asarray(y) for _, y, _ in dataset.take(count)]


def test_the_stream_at_a_step_is_the_same_whatever_came_before(tokenizer):
    config = TrainConfig(batch_size=4, sequence_length=16)
    corpus = data.Corpus(DOCUMENTS, DOCUMENTS[:4], "test")
    shapes = data.Shapes(16)
    stream = data.training_stream(config, "gpt", tokenizer, corpus, shapes, 0)
    first = _batches(stream, 12)
    again = _batches(stream, 12)  # a second iterator over the same dataset object
    resumed = _batches(data.training_stream(config, "gpt", tokenizer, corpus, shapes, 7), 5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first[7:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(first[0], other) for other in first[1:])


def test_the_pipelines_own_shuffle_would_not_be(tokenizer):
    """Why `training_stream` exists: `shuffle=True` reseeds each new iterator."""
    from keras_transformer.text.datasets import causal_lm_dataset

    dataset = causal_lm_dataset(DOCUMENTS, tokenizer, sequence_length=16, batch_size=4, shuffle=True, seed=0)
    assert not all(np.array_equal(a, b) for a, b in zip(_batches(dataset, 3), _batches(dataset, 3)))


def test_each_epoch_of_documents_is_a_new_permutation():
    stream = [d.decode() for d in data.document_stream(DOCUMENTS, seed=3).take(3 * len(DOCUMENTS)).as_numpy_iterator()]
    epochs = [stream[i * len(DOCUMENTS):(i + 1) * len(DOCUMENTS)] for i in range(3)]
    assert all(sorted(epoch) == sorted(DOCUMENTS) for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != DOCUMENTS
    other_seed = [d.decode() for d in data.document_stream(DOCUMENTS, seed=4).take(len(DOCUMENTS)).as_numpy_iterator()]
    assert other_seed != epochs[0]


def test_small_validation_sets_shrink_the_batch_to_the_replicas(tokenizer):
    config = TrainConfig(batch_size=32, sequence_length=16)
    corpus = data.Corpus(DOCUMENTS, DOCUMENTS[:2], "test")  # about 8 rows of 17 bytes
    dataset, batches = data.validation_set(config, "gpt", tokenizer, corpus, data.Shapes(16), 32, replicas=2)
    sizes = [len(y) for _, y, _ in dataset]
    assert batches == len(sizes) == 1 and sizes[0] % 2 == 0 and 2 <= sizes[0] < 32
    assert dataset.cardinality().numpy() == 1  # known: Keras then starts a fresh pass at each validation


def test_unigram_entropy_of_a_two_symbol_corpus(tokenizer):
    # "ab" twice per document plus the end id: p = (2/5, 2/5, 1/5).
    expected = -(2 * 0.4 * np.log(0.4) + 0.2 * np.log(0.2))
    assert data.unigram_entropy(["abab"] * 3, tokenizer) == pytest.approx(expected, rel=1e-6)


def test_span_corruption_needs_enough_sentinels(tokenizer):
    spans = noise_counts(span_corruption_lengths(64)[0])[1]
    with pytest.raises(ValueError, match=f"needs {spans} sentinel tokens; the tokenizer has 0"):
        data.check_sentinels(tokenizer, data.Shapes(64, 16))


def test_sequence_longer_than_the_model_is_refused():
    with pytest.raises(ValueError, match="--sequence-length 256 exceeds the model's max_sequence_length 128"):
        data.shapes_for(TrainConfig(sequence_length=256), "gpt", 128)


def test_epochs_count_the_batches_of_one_pass(tokenizer):
    config = TrainConfig(batch_size=4, sequence_length=16, epochs=2.5, steps_per_execution=2, checkpoint_every=2)
    corpus = data.Corpus(DOCUMENTS, DOCUMENTS[:4], "test")
    one_pass = data.one_pass(config, "gpt", tokenizer, corpus, data.Shapes(16))
    batches = data.count_batches(one_pass)
    rows = sum(len(d.encode()) + 1 for d in DOCUMENTS) // 17  # packed rows of 16 + 1 tokens
    assert batches == rows // 4
    assert data.steps_for_epochs(config, one_pass) == int(2.5 * batches) // 2 * 2


def test_trained_tokenizers_are_not_trained_on_every_worker():
    config = TrainConfig(strategy="multi_worker", tokenizer_kind="wordpiece")
    with pytest.raises(ValueError, match="must be trained once, not on every worker: run .*python -m training "
                                         "tokenizer"):
        data.make_tokenizer(config, "gpt", data.Corpus(DOCUMENTS, DOCUMENTS, "test"))
