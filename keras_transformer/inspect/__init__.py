"""Looking inside models: attention maps (`attention_maps`)."""

from keras_transformer.inspect.attention_maps import attention_maps

__all__ = ["attention_maps"]
