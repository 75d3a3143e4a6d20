"""Text: the built-in corpus (and, with TensorFlow installed, tokenizers and datasets)."""
