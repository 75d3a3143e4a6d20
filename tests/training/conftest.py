"""Small data sets and finished runs shared by the training tests."""

import os
import random

import pytest

from keras_transformer.text.corpus import stdlib_documents

HF_FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface")
# A run small enough for a test: 2 checkpoints of 3 steps, batch 8 x 32 tokens.
SMALL = dict(steps=6, checkpoint_every=3, batch_size=8, sequence_length=32, validation_steps=2, log_every=2,
             verbose=0)
POSITIVE = ["good", "great", "fine", "lovely", "excellent", "nice"]
NEGATIVE = ["bad", "awful", "poor", "terrible", "broken", "sad"]
FILLER = ["the", "movie", "was", "really", "quite", "a"]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """corpus.txt (docstrings, one per line), labelled.txt (label<TAB>text), pairs.txt (source<TAB>target)."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "corpus.txt").write_text("\n".join(stdlib_documents(max_files=40)) + "\n", encoding="utf-8")
    rng = random.Random(0)
    lines = []
    for _ in range(160):
        label = rng.choice(["neg", "pos"])
        words = rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        lines.append(f"{label}\t{' '.join(words)}")
    (folder / "labelled.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pairs = []
    for _ in range(160):
        words = rng.sample(POSITIVE + NEGATIVE, 3)
        pairs.append(f"reverse: {' '.join(words)}\t{' '.join(reversed(words))}")
    (folder / "pairs.txt").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def wordpiece_dir(data_dir, tmp_path_factory):
    """A WordPiece tokenizer of under 100 ids: it fits the tiny Hugging Face fixtures' vocabularies."""
    from keras_transformer.text.tokenizers import save_tokenizer, train_tokenizer

    texts = [line.partition("\t")[2] for line in (data_dir / "labelled.txt").read_text().splitlines()]
    tokenizer = train_tokenizer("wordpiece", texts, vocabulary_size=90)
    assert tokenizer.vocabulary_size() <= 90
    folder = tmp_path_factory.mktemp("wordpiece")
    save_tokenizer(tokenizer, str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def gpt_run(data_dir, tmp_path_factory):
    """A finished 6-step GPT pre-training run on corpus.txt: (config, summary)."""
    from training.config import TrainConfig
    from training.run import train

    config = TrainConfig(data=[str(data_dir / "corpus.txt")], output=str(tmp_path_factory.mktemp("gpt")), **SMALL)
    return config, train(config)
