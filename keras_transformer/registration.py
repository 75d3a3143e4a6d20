"""The one registration decorator for public layers and models."""

import keras

PACKAGE = "keras_transformer"


def register(cls):
    """Registers `cls` for Keras serialization as `keras_transformer>ClassName`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
