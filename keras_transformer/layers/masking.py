"""The one place that builds, checks and merges attention masks.

Convention everywhere: a boolean mask is True where attention is allowed.

* `padding_mask`: (batch, key_length), 1/True for real tokens, 0/False for padding.
* `attention_mask`: (batch, query_length, key_length), 1/True where query i may
  attend to key j (any integer or boolean dtype, as in `keras.layers.MultiHeadAttention`).
* causal mask: query at absolute position `query_start + i` sees keys `j <= query_start + i`.
* Keras implicit masks (`_keras_mask` on a tensor, e.g. from `mask_zero=True`)
  are read with `get_keras_mask` and act as padding masks.

`merge_masks` combines whichever of these are given into one boolean
(batch, query_length, key_length) tensor, or returns None when nothing masks,
so the fused attention kernel can run unmasked.

Example: key padding `[1, 1, 0]` with a causal mask over 3 positions gives
    [[1, 0, 0],
     [1, 1, 0],
     [1, 1, 0]]
"""

from keras import ops

try:  # Keras keeps masks off-tensor for some backends; this reads either place.
    from keras.src.backend import get_keras_mask as _get_keras_mask
except ImportError:  # pragma: no cover - older Keras layouts

    def _get_keras_mask(x):
        return getattr(x, "_keras_mask", None)


def get_keras_mask(x):
    """The Keras implicit mask attached to `x`, or None."""
    if x is None:
        return None
    return _get_keras_mask(x)


def check_mask_rank(mask, rank, name, layout):
    """Raises a ValueError naming `name` unless `mask` is None or of rank `rank`."""
    if mask is None:
        return
    if len(mask.shape) != rank:
        raise ValueError(
            f"`{name}` must have rank {rank} with shape {layout}; "
            f"received shape {tuple(mask.shape)}"
        )


def causal_mask(query_length, key_length, query_start=0):
    """(query_length, key_length) bool: key j visible from query i iff j <= query_start + i.

    `query_start` may be a traced scalar (the write index of a decoding cache).
    """
    query_positions = ops.arange(query_length, dtype="int32") + ops.cast(query_start, "int32")
    key_positions = ops.arange(key_length, dtype="int32")
    return ops.expand_dims(query_positions, 1) >= ops.expand_dims(key_positions, 0)


def merge_masks(
    query_length,
    key_length,
    padding_mask=None,
    query_mask=None,
    attention_mask=None,
    use_causal_mask=False,
    query_start=0,
):
    """Combines every mask source into one bool (batch|1, query, key) tensor, or None.

    Args:
        query_length, key_length: ints or scalar tensors.
        padding_mask: (batch, key_length) per-key mask.
        query_mask: (batch, query_length) per-query mask (Keras implicit query
            mask; masked query rows attend nowhere, as in Keras' own layer).
        attention_mask: (batch, query_length, key_length).
        use_causal_mask: add the causal mask, offset by `query_start`.
    """
    check_mask_rank(padding_mask, 2, "padding_mask", "(batch, key_length)")
    check_mask_rank(query_mask, 2, "query_mask", "(batch, query_length)")
    check_mask_rank(attention_mask, 3, "attention_mask", "(batch, query_length, key_length)")
    mask = None

    def combine(current, new):
        new = ops.cast(new, "bool")
        return new if current is None else ops.logical_and(current, new)

    if padding_mask is not None:
        mask = combine(mask, ops.expand_dims(padding_mask, 1))  # (batch, 1, key)
    if query_mask is not None:
        mask = combine(mask, ops.expand_dims(query_mask, 2))  # (batch, query, 1)
    if attention_mask is not None:
        mask = combine(mask, attention_mask)  # (batch, query, key)
    if use_causal_mask:
        causal = causal_mask(query_length, key_length, query_start)
        mask = combine(mask, ops.expand_dims(causal, 0))  # (1, query, key)
    if mask is not None:
        # Materialise both axes so every consumer sees (batch|1, query, key).
        mask = ops.broadcast_to(mask, (ops.shape(mask)[0], query_length, key_length))
    return mask


def resolve_padding_mask(padding_mask, inputs):
    """The explicit `padding_mask` if given, else the Keras implicit mask of `inputs`."""
    return padding_mask if padding_mask is not None else get_keras_mask(inputs)
