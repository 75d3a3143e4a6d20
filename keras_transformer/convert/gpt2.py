"""GPT-2 checkpoints (`GPT2LMHeadModel`, `GPT2Model`) -> `GPTCausalLM`.

Hugging Face layout (per block `h.{i}`, optionally under `transformer.`):
  wte.weight (vocab, hidden), wpe.weight (positions, hidden);
  ln_1 / ln_2 / ln_f .weight .bias (hidden,);
  attn.c_attn.weight (hidden, 3 * hidden) and .bias (3 * hidden,): [q | k | v];
  attn.c_proj.weight (hidden, hidden); mlp.c_fc.weight (hidden, inner);
  mlp.c_proj.weight (inner, hidden).
GPT-2's `Conv1D` stores kernels as (in, out), Keras' layout, so nothing is
transposed; only heads are split out: (hidden, hidden) -> (hidden, heads, head_dim)
for queries/keys/values and (heads, head_dim, hidden) for the output.
`attn.bias` / `attn.masked_bias` are causal-mask buffers, not weights.
"""

import numpy as np

from keras_transformer.models.gpt import GPTBackbone, GPTCausalLM

# Hugging Face `activation_function` -> our FeedForward activation.
ACTIVATIONS = {
    "gelu_new": "gelu_approximate",  # tanh form, GPT-2's own
    "gelu_pytorch_tanh": "gelu_approximate",  # the same formula
    "gelu_fast": "gelu_approximate",  # the same formula, written differently
    "gelu": "gelu",  # exact erf form
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
# Config flags that change the computation; the value our blocks implement.
FIXED_FLAGS = {
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
}
IGNORED_BUFFERS = (".attn.bias", ".attn.masked_bias")


def backbone_config(config):
    """`GPTBackbone` arguments from a GPT-2 `config.json` dict."""
    activation = config.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unsupported GPT-2 activation_function {activation!r}; "
            f"supported: {sorted(ACTIVATIONS)}"
        )
    for flag, value in FIXED_FLAGS.items():
        if config.get(flag, value) != value:
            raise ValueError(
                f"unsupported GPT-2 config: {flag}={config[flag]!r} (only {value!r} is implemented)"
            )
    hidden = config["n_embd"]
    return dict(
        vocabulary_size=config["vocab_size"],
        num_layers=config["n_layer"],
        num_heads=config["n_head"],
        hidden_dim=hidden,
        intermediate_dim=config.get("n_inner") or 4 * hidden,
        dropout=config.get("resid_pdrop", 0.1),
        max_sequence_length=config["n_positions"],
        layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-5),
        position_encoding="learned",
        activation=ACTIVATIONS[activation],
        tie_word_embeddings=config.get("tie_word_embeddings", True),
    )


def convert(config, weights):
    """A `GPTCausalLM` with every tensor of `weights` (a `WeightReader`) loaded."""
    model = GPTCausalLM(GPTBackbone(**backbone_config(config)))
    backbone = model.backbone
    weights.ignored_suffixes = tuple(weights.ignored_suffixes) + IGNORED_BUFFERS
    prefix = "transformer." if weights.has("transformer.wte.weight") else ""

    weights.assign(backbone.token_embedding.embeddings, prefix + "wte.weight")
    weights.assign(backbone.position_embedding.embeddings, prefix + "wpe.weight")
    for i, block in enumerate(backbone.decoder_blocks):
        _load_block(block, weights, f"{prefix}h.{i}.", backbone.model_config)
    _load_norm(backbone.decoder_norm, weights, prefix + "ln_f")
    _load_head(backbone, weights)
    weights.finish()
    return model


def _load_block(block, weights, prefix, config):
    heads, head_dim, hidden = config.num_heads, config.head_dim, config.hidden_dim
    attention = block.self_attention
    _load_norm(block.self_attention_norm, weights, prefix + "ln_1")

    # c_attn: (hidden, 3 * hidden) = [q | k | v] along the output axis.
    kernel = _take(weights, prefix + "attn.c_attn.weight", (hidden, 3 * hidden))
    bias = _take(weights, prefix + "attn.c_attn.bias", (3 * hidden,))
    for dense, k, b in zip(
        (attention.query_dense, attention.key_dense, attention.value_dense),
        np.split(kernel, 3, axis=1),
        np.split(bias, 3),
    ):
        dense.kernel.assign(k.reshape(hidden, heads, head_dim))
        dense.bias.assign(b.reshape(heads, head_dim))
    weights.assign(
        attention.output_dense.kernel,
        prefix + "attn.c_proj.weight",
        # (hidden, hidden) -> (heads, head_dim, hidden); another shape fails the check.
        lambda w: w.reshape(heads, head_dim, -1) if w.ndim == 2 and w.shape[0] == hidden else w,
    )
    weights.assign(attention.output_dense.bias, prefix + "attn.c_proj.bias")

    _load_norm(block.feed_forward_norm, weights, prefix + "ln_2")
    feed_forward = block.feed_forward
    weights.assign(feed_forward.intermediate_dense.kernel, prefix + "mlp.c_fc.weight")
    weights.assign(feed_forward.intermediate_dense.bias, prefix + "mlp.c_fc.bias")
    weights.assign(feed_forward.output_dense.kernel, prefix + "mlp.c_proj.weight")
    weights.assign(feed_forward.output_dense.bias, prefix + "mlp.c_proj.bias")


def _load_norm(norm, weights, name):
    weights.assign(norm.gamma, name + ".weight")
    weights.assign(norm.beta, name + ".bias")


def _load_head(backbone, weights):
    """`lm_head.weight` (vocab, hidden): the untied head, or a copy of the tied table."""
    embedding = backbone.token_embedding
    if not embedding.tie_weights:
        weights.assign(embedding.reverse_embeddings, "lm_head.weight", np.transpose)
        return
    if weights.has("lm_head.weight"):
        head = weights.take("lm_head.weight")
        table = np.asarray(embedding.embeddings.numpy())
        if head.shape != table.shape or not np.array_equal(head, table):
            raise ValueError(
                f"{weights.source}: config says tie_word_embeddings=true but 'lm_head.weight' "
                "differs from the token embedding table; set tie_word_embeddings=false to "
                "load a separate head"
            )


def _take(weights, name, shape):
    value = weights.take(name)
    if tuple(value.shape) != tuple(shape):
        raise ValueError(
            f"{weights.source}: weight {name!r} has shape {tuple(value.shape)}, expected {tuple(shape)}"
        )
    return value
