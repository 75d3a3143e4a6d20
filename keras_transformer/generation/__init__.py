"""Text generation: THE decoding core (`decoding`), its controls (`processors`), token choosers
(`choosers`), settings with Hugging Face names (`config`), and the Python entry points."""

from keras_transformer.generation.choosers import RowChooser, SamplerChooser  # noqa: F401
from keras_transformer.generation.generator import generate, stream_generate  # noqa: F401
from keras_transformer.generation.processors import LogitsProcessor  # noqa: F401
from keras_transformer.generation.samplers import get_sampler  # noqa: F401
