"""Transformer layers and BERT/GPT/T5-style models for Keras 3.

Importing the package registers every public layer with Keras serialization, so
a `.keras` file that uses them loads with a plain `keras.saving.load_model(path)`.
"""

__version__ = "0.1.0"

from keras_transformer import layers  # noqa: E402,F401  (registers the layers)
from keras_transformer import models  # noqa: E402,F401  (registers the models)
