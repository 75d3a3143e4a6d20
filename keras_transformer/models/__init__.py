"""BERT-, GPT- and T5-style functional models, presets by name."""

from keras_transformer.models.backbone import Backbone, Task
from keras_transformer.models.config import ModelConfig
from keras_transformer.models.presets import get_preset, list_presets

# --- bert ---
# --- gpt ---
from keras_transformer.models.gpt import GPTBackbone, GPTCausalLM, GPTConfig  # noqa: F401
# --- t5 ---
