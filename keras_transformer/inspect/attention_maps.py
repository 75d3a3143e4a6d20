"""Attention maps of BERT, GPT, T5 and ViT models: every layer's attention probabilities.

    maps = attention_maps(model, inputs)
    maps["encoder"][0]          # (batch, heads, query, key) of the first encoder block
    maps["decoder"], maps["cross"]   # decoder self-attention and cross-attention (T5)

`attention_heads(model)` gives each group's (blocks, heads) without running
the model. Whichever groups the model has are returned: BERT and ViT "encoder", GPT
"decoder", T5 all three. Each entry is a NumPy array per block, in block
order, equal to Hugging Face `output_attentions` on imported checkpoints
(probabilities after the mask and any position bias; masked keys get 0).

Only this call computes the probabilities: while it runs, each attention
layer of the model takes its explicit (non-fused) path and hands its
probabilities over; every other call keeps the backend's fused kernel.
The model runs eagerly, at inference (no dropout).
"""

import contextlib

from keras import ops

GROUPS = (("encoder", "encoder_blocks", "self_attention"), ("decoder", "decoder_blocks", "self_attention"),
          ("cross", "decoder_blocks", "cross_attention"))


def _attention_layers(model):
    """{group: [attention layer per block]} of a model or its backbone."""
    backbone = getattr(model, "backbone", model)
    found = {}
    for group, blocks_name, attention_name in GROUPS:
        layers = [getattr(block, attention_name, None) for block in getattr(backbone, blocks_name, None) or []]
        layers = [layer for layer in layers if layer is not None]
        if layers:
            found[group] = layers
    if not found:
        raise ValueError(f"{type(model).__name__} has no encoder_blocks or decoder_blocks with attention layers; "
                         "attention_maps takes BERT, GPT, T5 and ViT models (or their backbones)")
    return found


@contextlib.contextmanager
def _recording(layers):
    """While active, each layer's attention keeps its probabilities in the returned dict (by layer id)."""
    records = {}

    def recorder(layer, compute):
        def compute_attention(query, key, value, attention_mask=None, training=None,
                              return_attention_scores=False, **kwargs):
            output, probabilities = compute(query, key, value, attention_mask, training, True, **kwargs)
            records[id(layer)] = ops.convert_to_numpy(ops.cast(probabilities, "float32"))
            return output, probabilities if return_attention_scores else None

        return compute_attention

    for layer in layers:
        object.__setattr__(layer, "_compute_attention", recorder(layer, layer._compute_attention))
    try:
        yield records
    finally:
        for layer in layers:
            object.__delattr__(layer, "_compute_attention")


def attention_heads(model):
    """{group: (number of blocks, heads per block)} of a model, without running it."""
    return {group: (len(layers), layers[0].num_heads) for group, layers in _attention_layers(model).items()}


def attention_maps(model, inputs):
    """{"encoder" | "decoder" | "cross": [ (batch, heads, query, key) float32 NumPy array per block ]}.

    Args:
        model: a BERT, GPT, T5 or ViT backbone or task model.
        inputs: what the model takes (its input dict, or images for ViT).
    """
    groups = _attention_layers(model)
    layers = [layer for group in groups.values() for layer in group]
    with _recording(layers) as records:
        model(inputs, training=False)
    missing = [layer.name for layer in layers if id(layer) not in records]
    if missing:
        raise ValueError(f"attention layers {missing} did not run on these inputs")
    return {group: [records[id(layer)] for layer in group_layers] for group, group_layers in groups.items()}
