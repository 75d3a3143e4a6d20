"""The BERT family: config and presets, backbone, task models."""

from keras_transformer.models.bert import bert_presets  # noqa: F401  (registers the presets)
from keras_transformer.models.bert.bert_backbone import BertBackbone
from keras_transformer.models.bert.bert_classifier import BertClassifier
from keras_transformer.models.bert.bert_config import BertConfig
from keras_transformer.models.bert.bert_masked_lm import BertMaskedLM
from keras_transformer.models.bert.bert_output_bias import BertOutputBias
from keras_transformer.models.bert.bert_question_answering import BertQuestionAnswering
from keras_transformer.models.bert.bert_sentence_embedding import BertSentenceEmbedding
from keras_transformer.models.bert.bert_token_classifier import BertTokenClassifier
