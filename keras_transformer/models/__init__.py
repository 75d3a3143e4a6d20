"""BERT-, GPT- and T5-style functional models, presets by name."""

from keras_transformer.models.backbone import Backbone, GenerativeTask, Task
from keras_transformer.models.config import ModelConfig
from keras_transformer.models.presets import get_preset, list_presets

# --- bert ---
from keras_transformer.models.bert import (  # noqa: F401
    BertBackbone,
    BertClassifier,
    BertConfig,
    BertMaskedLM,
    BertOutputBias,
    BertQuestionAnswering,
    BertSentenceEmbedding,
    BertTokenClassifier,
)
# --- gpt ---
from keras_transformer.models.gpt import GPTBackbone, GPTCausalLM, GPTConfig  # noqa: F401
# --- t5 ---
from keras_transformer.models.t5 import T5Backbone, T5Config, T5Seq2SeqLM
# --- vit ---
from keras_transformer.models.vit import ViTBackbone, ViTConfig, ViTImageClassifier  # noqa: F401
