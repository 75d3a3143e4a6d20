"""GPT-style decoder-only models: config and presets, backbone, causal LM."""

from keras_transformer.models.gpt import gpt_presets  # noqa: F401  (registers the presets)
from keras_transformer.models.gpt.gpt_backbone import GPTBackbone
from keras_transformer.models.gpt.gpt_causal_lm import GPTCausalLM
from keras_transformer.models.gpt.gpt_config import GPTConfig
