"""Hugging Face `T5ForConditionalGeneration` (v1.0 and v1.1) -> `T5Seq2SeqLM`.

Layouts: HF Linear weights are (out, in), ours (in, out). Attention
projections are reshaped to our per-head layouts: q/k/v (hidden, heads,
key_dim), o (heads, key_dim, hidden). The relative attention bias table,
(num_buckets, heads) in both, lives only in block 0 of each HF stack.

Head and rescale are read from the config, never guessed from a version:
transformers 5.x writes `scale_decoder_outputs` and always
`tie_word_embeddings: true`; older configs only carry `tie_word_embeddings`.
Rescale iff `scale_decoder_outputs` is true or, when that key is absent,
`tie_word_embeddings` is not false. The head is `lm_head.weight` when the
checkpoint has it, else the shared embedding.
"""

import numpy as np

from keras_transformer.models.t5 import T5Backbone, T5Seq2SeqLM

# HF activation names (the part after "gated-" in `feed_forward_proj`) -> ours.
_ACTIVATIONS = {
    "relu": "relu",
    "gelu": "gelu",  # exact erf form
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "silu": "silu",
    "swish": "silu",
}

# Old checkpoints (e.g. the original t5-small) carry a never-used bias table on
# the first decoder block's cross-attention; HF ignores it on load too.
_IGNORED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)


def feed_forward_options(config):
    """(activation, gated) from HF `feed_forward_proj` ("relu", "gated-gelu", ...)."""
    projection = config.get("feed_forward_proj", "relu")
    parts = str(projection).split("-")
    gated = len(parts) == 2 and parts[0] == "gated"
    name = parts[-1]
    if projection == "gated-gelu":  # HF maps it to the tanh GELU ("gelu_new")
        name = "gelu_new"
    if len(parts) > 2 or (len(parts) == 2 and not gated) or name not in _ACTIVATIONS:
        raise ValueError(
            f"unsupported T5 feed_forward_proj={projection!r}; supported: "
            f"{sorted(_ACTIVATIONS)}, each optionally prefixed with 'gated-'"
        )
    return _ACTIVATIONS[name], gated


def scales_decoder_outputs(config):
    """The d_model**-0.5 rescale rule (see the module docstring)."""
    if "scale_decoder_outputs" in config:
        return bool(config["scale_decoder_outputs"])
    return config.get("tie_word_embeddings", True) is not False


def backbone_arguments(config, tied_head):
    activation, gated = feed_forward_options(config)
    required = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")
    missing = [key for key in required if key not in config]
    if missing:
        raise ValueError(f"T5 config.json lacks {missing}")
    return dict(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_layers"],
        num_decoder_layers=config.get("num_decoder_layers") or config["num_layers"],
        num_heads=config["num_heads"],
        key_dim=config["d_kv"],
        hidden_dim=config["d_model"],
        intermediate_dim=config["d_ff"],
        dropout=float(config.get("dropout_rate", 0.1)),
        layer_norm_epsilon=float(config.get("layer_norm_epsilon", 1e-6)),
        activation=activation,
        gated_feed_forward=gated,
        tie_word_embeddings=tied_head,
        scale_decoder_outputs=scales_decoder_outputs(config),
        relative_attention_num_buckets=config.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=config.get("relative_attention_max_distance", 128),
        max_sequence_length=config.get("n_positions", 512),
    )


def convert(config, weights):
    """A `T5Seq2SeqLM` with every tensor of the checkpoint loaded (see module docstring)."""
    tied_head = not weights.has("lm_head.weight")
    backbone = T5Backbone(**backbone_arguments(config, tied_head))
    model = T5Seq2SeqLM(backbone)
    weights.ignored_suffixes = weights.ignored_suffixes + _IGNORED
    hidden, heads, key_dim = backbone.model_config.hidden_dim, config["num_heads"], config["d_kv"]

    def projection(name, hf_shape, reshape):
        # (out, in) -> transposed -> our per-head layout. The HF shape is checked
        # first, so a wrong tensor is named rather than failing inside reshape.
        def transform(w):
            if w.shape != hf_shape:
                raise ValueError(
                    f"{weights.source}: weight {name!r} has shape {w.shape}, expected {hf_shape} "
                    "(Hugging Face Linear layout: (out, in))"
                )
            return w.T.reshape(reshape)

        return transform

    qkv_shapes = (heads * key_dim, hidden), (hidden, heads, key_dim)
    output_shapes = (hidden, heads * key_dim), (heads, key_dim, hidden)

    def attention(layer, prefix):
        for letter, dense in zip("qkv", (layer.query_dense, layer.key_dense, layer.value_dense)):
            name = f"{prefix}.{letter}.weight"
            weights.assign(dense.kernel, name, projection(name, *qkv_shapes))
        name = f"{prefix}.o.weight"
        weights.assign(layer.output_dense.kernel, name, projection(name, *output_shapes))

    def feed_forward(block, prefix):
        ffn, prefix = block.feed_forward, f"{prefix}.DenseReluDense"
        if ffn.gated:  # wi_0 is the activated branch (our gate), wi_1 the linear one
            weights.assign(ffn.gate_dense.kernel, f"{prefix}.wi_0.weight", np.transpose)
            weights.assign(ffn.intermediate_dense.kernel, f"{prefix}.wi_1.weight", np.transpose)
        else:
            weights.assign(ffn.intermediate_dense.kernel, f"{prefix}.wi.weight", np.transpose)
        weights.assign(ffn.output_dense.kernel, f"{prefix}.wo.weight", np.transpose)

    weights.assign(backbone.token_embedding.embeddings, "shared.weight")
    shared = weights.take("shared.weight")
    for stack in ("encoder", "decoder"):
        # Copies of the shared table some checkpoints carry; they must be identical.
        name = f"{stack}.embed_tokens.weight"
        if weights.has(name) and not np.array_equal(weights.take(name), shared):
            raise ValueError(
                f"{weights.source}: {name!r} differs from 'shared.weight'; separate input "
                "embeddings per stack are not supported"
            )
        bias = getattr(backbone, f"{stack}_relative_position_bias")
        weights.assign(
            bias.embeddings, f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        )
        norm = getattr(backbone, f"{stack}_norm")
        weights.assign(norm.scale, f"{stack}.final_layer_norm.weight")

    for i, block in enumerate(backbone.encoder_blocks):
        prefix = f"encoder.block.{i}.layer"
        attention(block.self_attention, f"{prefix}.0.SelfAttention")
        weights.assign(block.self_attention_norm.scale, f"{prefix}.0.layer_norm.weight")
        feed_forward(block, f"{prefix}.1")
        weights.assign(block.feed_forward_norm.scale, f"{prefix}.1.layer_norm.weight")
    for i, block in enumerate(backbone.decoder_blocks):
        prefix = f"decoder.block.{i}.layer"
        attention(block.self_attention, f"{prefix}.0.SelfAttention")
        weights.assign(block.self_attention_norm.scale, f"{prefix}.0.layer_norm.weight")
        attention(block.cross_attention, f"{prefix}.1.EncDecAttention")
        weights.assign(block.cross_attention_norm.scale, f"{prefix}.1.layer_norm.weight")
        feed_forward(block, f"{prefix}.2")
        weights.assign(block.feed_forward_norm.scale, f"{prefix}.2.layer_norm.weight")
    if not tied_head:
        weights.assign(model.lm_head.kernel, "lm_head.weight", np.transpose)
    weights.finish()
    return model
