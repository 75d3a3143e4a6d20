"""T5 encoder-decoder: config and presets, backbone, sequence-to-sequence LM."""

from keras_transformer.models.t5 import t5_presets  # noqa: F401  (registers the presets)
from keras_transformer.models.t5.t5_backbone import T5Backbone
from keras_transformer.models.t5.t5_config import T5Config
from keras_transformer.models.t5.t5_seq2seq_lm import T5Seq2SeqLM
