"""Hugging Face BERT checkpoints -> `BertMaskedLM` or `BertBackbone`, every weight checked.

Called by `from_huggingface(path)` with the parsed config.json and a
`WeightReader`. What comes back depends on the checkpoint:

* `BertForMaskedLM` -> `BertMaskedLM`. Its checkpoint has no pooler
  (Hugging Face builds it with `add_pooling_layer=False`), so the backbone's
  `pooled_output` keeps its random initialisation, exactly as the HF model
  has no pooled output; older checkpoints that do carry `bert.pooler.*` (or
  `cls.seq_relationship.*`) get those loaded too (the latter as the
  next-sentence head).
* `BertForPreTraining` -> `BertMaskedLM(next_sentence_prediction=True)`.
* `BertForQuestionAnswering` -> `BertQuestionAnswering` (`qa_outputs` is its
  `output_dense`; no pooler, as in the Hugging Face model).
* `BertModel` -> the `BertBackbone` itself: there is no head to wrap, and its
  outputs (`sequence_output` = HF `last_hidden_state`, `pooled_output` = HF
  `pooler_output`) are the encoder outputs. Wrap it in any BERT task model
  (`BertClassifier(backbone, ...)`, ...) for fine-tuning.

A config without `architectures` is read as a masked LM when it has
`cls.predictions.*` weights, else as `BertModel`. Any other architecture,
activation or attention variant raises a ValueError, as does a missing,
unexpected or mis-shaped tensor (named in the message). Tolerated extras: the
`embeddings.position_ids` / `token_type_ids` buffers of older checkpoints, and
`cls.predictions.decoder.{weight,bias}`, which are tied copies of the word
embeddings and `cls.predictions.bias` (they are checked to be equal: an untied
decoder is refused rather than silently dropped).

Layouts: HF `nn.Linear.weight` is (out, in), a Keras kernel (in, out); our
attention kernels are query/key/value (hidden, heads, head_dim) and output
(heads, head_dim, hidden).
"""

import logging

import keras
import numpy as np

from keras_transformer.models.bert.bert_backbone import BertBackbone
from keras_transformer.models.bert.bert_masked_lm import BertMaskedLM
from keras_transformer.models.bert.bert_question_answering import BertQuestionAnswering

logger = logging.getLogger(__name__)

# Hugging Face `hidden_act` -> our activation name.
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
}
MASKED_LM_ARCHITECTURES = ("BertForMaskedLM", "BertForPreTraining")
ARCHITECTURES = MASKED_LM_ARCHITECTURES + ("BertModel", "BertForQuestionAnswering")
NO_POOLER = ("BertForMaskedLM", "BertForQuestionAnswering")  # built with add_pooling_layer=False
# Non-parameter buffers some checkpoints store.
IGNORED_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


def backbone_kwargs(config):
    """`BertBackbone` arguments from a Hugging Face BERT config.json dict."""
    activation = config.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unsupported BERT hidden_act={activation!r}; supported: {sorted(ACTIVATIONS)}"
        )
    for key, supported in (
        ("position_embedding_type", "absolute"),
        ("is_decoder", False),
        ("add_cross_attention", False),
    ):
        if config.get(key, supported) != supported:
            raise ValueError(
                f"unsupported BERT {key}={config[key]!r}; only {key}={supported!r} is supported"
            )
    try:
        return {
            "vocabulary_size": config["vocab_size"],
            "num_layers": config["num_hidden_layers"],
            "num_heads": config["num_attention_heads"],
            "hidden_dim": config["hidden_size"],
            "intermediate_dim": config["intermediate_size"],
            "dropout": config.get("hidden_dropout_prob", 0.1),
            "max_sequence_length": config.get("max_position_embeddings", 512),
            "num_segments": config.get("type_vocab_size", 2),
            "layer_norm_epsilon": config.get("layer_norm_eps", 1e-12),
            "activation": ACTIVATIONS[activation],
        }
    except KeyError as error:
        raise ValueError(f"BERT config.json lacks the field {error.args[0]!r}") from None


def convert(config, weights):
    """The BERT model for `config` (config.json dict) with every tensor of `weights` loaded."""
    weights.ignored_suffixes = tuple(weights.ignored_suffixes) + IGNORED_SUFFIXES
    architecture = _architecture(config, weights)
    backbone = BertBackbone(**backbone_kwargs(config))
    # BertModel's tensors have no prefix; the heads' models nest it under "bert.".
    prefix = "" if architecture == "BertModel" else "bert."
    _load_backbone(backbone, weights, prefix, architecture)
    if architecture == "BertModel":
        weights.finish()
        return backbone
    if architecture == "BertForQuestionAnswering":
        model = BertQuestionAnswering(backbone)
        _dense(weights, model.output_dense, "qa_outputs")
        weights.finish()
        return model

    next_sentence = architecture == "BertForPreTraining" or weights.has(
        "cls.seq_relationship.weight"
    )
    model = BertMaskedLM(backbone, next_sentence_prediction=next_sentence)
    _load_masked_lm_head(model, weights)
    if next_sentence:
        _dense(weights, model.next_sentence_dense, "cls.seq_relationship")
    weights.finish()
    return model


def _architecture(config, weights):
    architectures = config.get("architectures") or []
    known = [a for a in architectures if a in ARCHITECTURES]
    if architectures and not known:
        raise ValueError(
            f"{weights.source}: unsupported BERT architectures {architectures}; "
            f"supported: {list(ARCHITECTURES)}"
        )
    if known:
        return known[0]
    return "BertForMaskedLM" if weights.has("cls.predictions.bias") else "BertModel"


# ----------------------------------------------------------------- loading


def _checked(weights, name, expected_shape, transform):
    """`transform`, after checking the HF tensor's own shape (so a bad one is named)."""

    def apply(value):
        if tuple(value.shape) != tuple(expected_shape):
            raise ValueError(
                f"{weights.source}: weight {name!r} has shape {tuple(value.shape)}; "
                f"the config implies {tuple(expected_shape)}"
            )
        return transform(value)

    return apply


def _dense(weights, layer, name):
    """HF Linear `name` (weight (out, in), bias (out,)) -> Keras Dense kernel (in, out), bias."""
    weights.assign(layer.kernel, f"{name}.weight", np.transpose)
    weights.assign(layer.bias, f"{name}.bias")


def _layer_norm(weights, layer, name):
    weights.assign(layer.gamma, f"{name}.weight")
    weights.assign(layer.beta, f"{name}.bias")


def _attention(weights, attention, name, hidden_dim, projections="self"):
    """HF BertAttention -> our MultiHeadAttention (head-split einsum kernels).

    `projections` names the module holding query/key/value under `name`
    ("self" in BERT, "attention" in ViT, whose layout is otherwise BERT's).
    """
    heads, head_dim = attention.num_heads, attention.key_dim
    width = heads * head_dim

    def to_heads(w):  # (out, in) -> (in, out) -> (hidden, heads, head_dim)
        return w.T.reshape(hidden_dim, heads, head_dim)

    def bias_to_heads(b):  # (out,) -> (heads, head_dim)
        return b.reshape(heads, head_dim)

    def from_heads(w):  # (hidden_out, width) -> (width, hidden) -> (heads, head_dim, hidden)
        return w.T.reshape(heads, head_dim, hidden_dim)

    for ours, theirs in (("query_dense", "query"), ("key_dense", "key"), ("value_dense", "value")):
        dense, tensor = getattr(attention, ours), f"{name}.{projections}.{theirs}"
        kernel, bias = f"{tensor}.weight", f"{tensor}.bias"
        weights.assign(dense.kernel, kernel, _checked(weights, kernel, (width, hidden_dim), to_heads))
        weights.assign(dense.bias, bias, _checked(weights, bias, (width,), bias_to_heads))
    kernel = f"{name}.output.dense.weight"
    weights.assign(
        attention.output_dense.kernel,
        kernel,
        _checked(weights, kernel, (hidden_dim, width), from_heads),
    )
    weights.assign(attention.output_dense.bias, f"{name}.output.dense.bias")


def _load_backbone(backbone, weights, prefix, architecture):
    hidden_dim = backbone.model_config.hidden_dim
    embeddings = f"{prefix}embeddings"
    weights.assign(
        backbone.token_embedding.token_embedding.embeddings, f"{embeddings}.word_embeddings.weight"
    )
    weights.assign(
        backbone.token_embedding.position_embedding.embeddings,
        f"{embeddings}.position_embeddings.weight",
    )
    weights.assign(
        backbone.segment_embedding.embeddings, f"{embeddings}.token_type_embeddings.weight"
    )
    _layer_norm(weights, backbone.embeddings_layer_norm, f"{embeddings}.LayerNorm")
    for i, block in enumerate(backbone.encoder_blocks):
        layer = f"{prefix}encoder.layer.{i}"
        _attention(weights, block.self_attention, f"{layer}.attention", hidden_dim)
        _layer_norm(weights, block.self_attention_norm, f"{layer}.attention.output.LayerNorm")
        _dense(weights, block.feed_forward.intermediate_dense, f"{layer}.intermediate.dense")
        _dense(weights, block.feed_forward.output_dense, f"{layer}.output.dense")
        _layer_norm(weights, block.feed_forward_norm, f"{layer}.output.LayerNorm")
    pooler = f"{prefix}pooler.dense"
    if architecture in NO_POOLER and not weights.has(f"{pooler}.weight"):
        logger.info(
            "%s: %s has no pooler; pooled_output keeps its random initialisation",
            weights.source, architecture,
        )
        return
    _dense(weights, backbone.pooled_dense, pooler)


def _load_masked_lm_head(model, weights):
    _dense(weights, model.mlm_dense, "cls.predictions.transform.dense")
    _layer_norm(weights, model.mlm_layer_norm, "cls.predictions.transform.LayerNorm")
    weights.assign(model.mlm_output_bias.bias, "cls.predictions.bias")
    # Tied duplicates, when saved: they must equal what the model already uses.
    embeddings = model.backbone.token_embedding.token_embedding.embeddings
    for name, used in (
        ("cls.predictions.decoder.weight", embeddings),
        ("cls.predictions.decoder.bias", model.mlm_output_bias.bias),
    ):
        if weights.has(name):
            value, expected = weights.take(name), keras.ops.convert_to_numpy(used.value)
            if value.shape != expected.shape or not np.array_equal(value, expected):
                raise ValueError(
                    f"{weights.source}: weight {name!r} differs from the tied tensor it should "
                    "copy; untied BERT output projections are not supported"
                )
