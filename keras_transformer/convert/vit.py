"""Hugging Face ViT checkpoints -> `ViTBackbone` or `ViTImageClassifier`, every weight checked.

Called by `from_huggingface(path)` with the parsed config.json and a
`WeightReader`:

* `ViTModel` -> the `ViTBackbone` itself (`sequence_output` = HF
  `last_hidden_state`, `pooled_output` = HF `pooler_output`; a checkpoint
  saved without pooler gives `use_pooler=False`).
* `ViTForImageClassification` -> `ViTImageClassifier(pooling="token")`, the
  backbone without pooler, as transformers builds it.

Our backbone takes channels-last images; transformers' `pixel_values` are
channels first: feed `pixel_values.transpose(0, 2, 3, 1)`. Images of another
size are resampled as `interpolate_pos_encoding=True` does. A
`preprocessor_config.json` beside config.json supplies `image_mean` /
`image_std`. Unsupported options (no qkv bias, a mask token, a non-square
image or patch size, another activation) raise a ValueError, as does a
missing, unexpected or mis-shaped tensor.

Layouts: the patch convolution (out, in, kh, kw) becomes a Keras kernel
(kh, kw, in, out); the blocks follow BERT's layout (see `convert.bert`) with
`layernorm_before` / `layernorm_after` as the pre-norms.
"""

import json
import os

import numpy as np

from keras_transformer.convert.bert import ACTIVATIONS, _attention, _dense, _layer_norm
from keras_transformer.models.vit import ViTBackbone, ViTImageClassifier

ARCHITECTURES = ("ViTModel", "ViTForImageClassification")


def _side(config, key):
    value = config.get(key)
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"unsupported ViT {key}={value!r}; only square sizes are supported")
        value = value[0]
    return value


def backbone_kwargs(config, folder=None, use_pooler=True):
    """`ViTBackbone` arguments from a Hugging Face ViT config.json dict."""
    activation = config.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unsupported ViT hidden_act={activation!r}; supported: {sorted(ACTIVATIONS)}")
    if not config.get("qkv_bias", True):
        raise ValueError("unsupported ViT qkv_bias=False; only biased projections are supported")
    if config.get("pooler_act", "tanh") != "tanh":
        raise ValueError(f"unsupported ViT pooler_act={config['pooler_act']!r}; only 'tanh'")
    pooler_size = config.get("pooler_output_size") or config.get("hidden_size")
    if pooler_size != config.get("hidden_size"):
        raise ValueError(
            f"unsupported ViT pooler_output_size={pooler_size}; it must equal hidden_size"
        )
    try:
        kwargs = {
            "image_size": _side(config, "image_size"),
            "patch_size": _side(config, "patch_size"),
            "num_channels": config.get("num_channels", 3),
            "num_layers": config["num_hidden_layers"],
            "num_heads": config["num_attention_heads"],
            "hidden_dim": config["hidden_size"],
            "intermediate_dim": config["intermediate_size"],
            "dropout": config.get("hidden_dropout_prob", 0.0),
            "layer_norm_epsilon": config.get("layer_norm_eps", 1e-12),
            "activation": ACTIVATIONS[activation],
            "use_pooler": use_pooler,
        }
    except KeyError as error:
        raise ValueError(f"ViT config.json lacks the field {error.args[0]!r}") from None
    processor = os.path.join(folder, "preprocessor_config.json") if folder else None
    if processor and os.path.isfile(processor):
        with open(processor, encoding="utf-8") as handle:
            values = json.load(handle)
        for key in ("image_mean", "image_std"):
            if key in values:
                kwargs[key] = tuple(values[key])
    return kwargs


def convert(config, weights):
    """The ViT model for `config` (config.json dict) with every tensor of `weights` loaded."""
    architectures = config.get("architectures") or []
    known = [a for a in architectures if a in ARCHITECTURES]
    if architectures and not known:
        raise ValueError(
            f"{weights.source}: unsupported ViT architectures {architectures}; "
            f"supported: {list(ARCHITECTURES)}"
        )
    architecture = known[0] if known else (
        "ViTForImageClassification" if weights.has("classifier.weight") else "ViTModel"
    )
    prefix = "" if architecture == "ViTModel" else "vit."
    if weights.has(f"{prefix}embeddings.mask_token"):
        raise ValueError(f"{weights.source}: ViT checkpoints with a mask token are not supported")
    use_pooler = weights.has(f"{prefix}pooler.dense.weight")
    backbone = ViTBackbone(**backbone_kwargs(config, weights.source, use_pooler))
    _load_backbone(backbone, weights, prefix)
    if architecture == "ViTModel":
        weights.finish()
        return backbone
    num_classes = weights.take("classifier.bias").shape[0]
    model = ViTImageClassifier(backbone, num_classes=num_classes, pooling="token")
    _dense(weights, model.output_dense, "classifier")
    weights.finish()
    return model


def _load_backbone(backbone, weights, prefix):
    hidden_dim = backbone.model_config.hidden_dim
    embedding = backbone.patch_embedding
    embeddings = f"{prefix}embeddings"
    projection = f"{embeddings}.patch_embeddings.projection"
    weights.assign(
        embedding.projection.kernel, f"{projection}.weight", lambda w: np.transpose(w, (2, 3, 1, 0))
    )
    weights.assign(embedding.projection.bias, f"{projection}.bias")
    weights.assign(embedding.class_token, f"{embeddings}.cls_token")
    weights.assign(embedding.position_embeddings, f"{embeddings}.position_embeddings", lambda w: w[0])
    for i, block in enumerate(backbone.encoder_blocks):
        layer = f"{prefix}encoder.layer.{i}"
        _attention(weights, block.self_attention, f"{layer}.attention", hidden_dim, "attention")
        _layer_norm(weights, block.self_attention_norm, f"{layer}.layernorm_before")
        _dense(weights, block.feed_forward.intermediate_dense, f"{layer}.intermediate.dense")
        _dense(weights, block.feed_forward.output_dense, f"{layer}.output.dense")
        _layer_norm(weights, block.feed_forward_norm, f"{layer}.layernorm_after")
    _layer_norm(weights, backbone.encoder_norm, f"{prefix}layernorm")
    if backbone.pooled_dense is not None:
        _dense(weights, backbone.pooled_dense, f"{prefix}pooler.dense")
