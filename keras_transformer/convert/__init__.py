"""Hugging Face checkpoint import: `from_huggingface(path)`."""

from keras_transformer.convert.huggingface import from_huggingface  # noqa: F401
