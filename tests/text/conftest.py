"""Shared, session-wide fixtures: a small slice of the built-in corpus and one
tokenizer of each kind, trained on it once (training WordPiece takes seconds)."""

import pytest

from keras_transformer.text.corpus import stdlib_documents


@pytest.fixture(scope="session")
def documents():
    return stdlib_documents(max_files=40)[:300]


@pytest.fixture(scope="session")
def wordpiece(documents):
    from keras_transformer.text.tokenizers import train_tokenizer

    return train_tokenizer("wordpiece", documents[:150], 400)


@pytest.fixture(scope="session")
def sentencepiece(documents):
    from keras_transformer.text.tokenizers import train_tokenizer

    return train_tokenizer("sentencepiece", documents, 400)


@pytest.fixture(scope="session")
def byte_tokenizer():
    from keras_transformer.text.tokenizers import train_tokenizer

    return train_tokenizer("bytes")


@pytest.fixture(scope="session")
def tokenizers(wordpiece, sentencepiece, byte_tokenizer):
    return {"wordpiece": wordpiece, "sentencepiece": sentencepiece, "bytes": byte_tokenizer}
