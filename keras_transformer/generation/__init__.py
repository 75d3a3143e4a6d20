"""Text generation: cached, compiled decoding loops over keras-hub samplers."""

from keras_transformer.generation.generator import generate  # noqa: F401
from keras_transformer.generation.samplers import get_sampler  # noqa: F401
