"""The one place that builds, checks and merges attention masks.

Convention everywhere: a boolean mask is True where attention is allowed.

* `padding_mask`: (batch, key_length), 1/True for real tokens, 0/False for padding.
* `query_mask`: (batch, query_length); a masked query row attends nowhere.
* `key_masks`: per-key masks of shape (batch, key_length) (Keras' `value_mask`
  and `key_mask`); they act like `padding_mask`.
* `attention_mask`: 1/True where query i may attend to key j, of any shape that
  broadcasts to (batch, heads, query, key) from the right, as in
  `keras.layers.MultiHeadAttention`: (query, key), (batch, query, key) or
  (batch, heads, query, key); any integer or boolean dtype.
* causal mask: query at absolute position `query_start + i` sees keys `j <= query_start + i`.
* sliding window `w`: query at absolute position `p` sees keys `j` with `|p - j| < w`
  (with the causal mask: the `w` most recent keys, itself included).
* Keras implicit masks (`_keras_mask` on a tensor, e.g. from `mask_zero=True`)
  are read with `get_keras_mask` and act as padding masks.

`merge_masks` combines whichever of these are given into one boolean tensor
that broadcasts to (batch, heads, query, key) — (batch|1, query|1, key) unless
`attention_mask` brings a heads axis — or returns None when nothing masks, so
the fused attention kernel can run unmasked.

Example: key padding `[1, 1, 0]` with a causal mask over 3 positions gives
    [[1, 0, 0],
     [1, 1, 0],
     [1, 1, 0]]
"""

from keras import ops

try:  # Keras keeps masks off-tensor for some backends; this reads either place.
    from keras.src.backend import get_keras_mask as _get_keras_mask
    from keras.src.backend import set_keras_mask as _set_keras_mask
except ImportError:  # pragma: no cover - older Keras layouts

    def _get_keras_mask(x):
        return getattr(x, "_keras_mask", None)

    def _set_keras_mask(x, mask):
        x._keras_mask = mask


def get_keras_mask(x):
    """The Keras implicit mask attached to `x`, or None."""
    if x is None:
        return None
    return _get_keras_mask(x)


def set_keras_mask(x, mask):
    """Attaches (or with None, removes) the Keras implicit mask of `x`."""
    if x is not None:
        _set_keras_mask(x, mask)


def check_mask_rank(mask, rank, name, layout):
    """Raises a ValueError naming `name` unless `mask` is None or its rank is in `rank`."""
    if mask is None:
        return
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if len(mask.shape) not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"`{name}` must have rank {expected} with shape {layout}; "
            f"received shape {tuple(mask.shape)}"
        )


def check_broadcastable(tensor, target, name, layout):
    """Raises a ValueError naming `name` unless `tensor` broadcasts to `target` from the right.

    `target` holds ints, None or traced sizes; only static sizes are compared.
    """
    if tensor is None:
        return
    shape = tuple(tensor.shape)
    fits = len(shape) <= len(target) and all(
        got in (None, 1) or not isinstance(want, int) or got == want
        for got, want in zip(reversed(shape), reversed(tuple(target)))
    )
    if not fits:
        raise ValueError(
            f"`{name}` must broadcast to {layout} = {tuple(target)}; received shape {shape}"
        )


def causal_mask(query_length, key_length, query_start=0):
    """(query_length, key_length) bool: key j visible from query i iff j <= query_start + i.

    `query_start` may be a traced scalar (the write index of a decoding cache).
    """
    query_positions, key_positions = _positions(query_length, key_length, query_start)
    return query_positions >= key_positions


def sliding_window_mask(query_length, key_length, window, query_start=0):
    """(query_length, key_length) bool: key j visible from query i iff |query_start + i - j| < window."""
    query_positions, key_positions = _positions(query_length, key_length, query_start)
    return ops.abs(query_positions - key_positions) < window


def _positions(query_length, key_length, query_start):
    # (query, 1) absolute query positions and (1, key) key positions.
    query_positions = ops.arange(query_length, dtype="int32") + ops.cast(query_start, "int32")
    key_positions = ops.arange(key_length, dtype="int32")
    return ops.expand_dims(query_positions, 1), ops.expand_dims(key_positions, 0)


def merge_masks(
    query_length,
    key_length,
    padding_mask=None,
    query_mask=None,
    attention_mask=None,
    use_causal_mask=False,
    query_start=0,
    key_masks=(),
    sliding_window=None,
    check_ranks=True,
):
    """Combines every mask source into one bool tensor, or None (see the module docstring).

    Args:
        query_length, key_length: ints or scalar tensors.
        padding_mask: (batch, key_length) per-key mask.
        query_mask: (batch, query_length) per-query mask.
        attention_mask: broadcastable to (batch, heads, query_length, key_length).
        use_causal_mask: add the causal mask, offset by `query_start`.
        query_start: absolute position of the first query (decoding caches).
        key_masks: more per-key (batch, key_length) masks (None entries skipped).
        sliding_window: None or a positive int, the band width (offset by `query_start`).
        check_ranks: check the ranks above; off for inputs with several
            attention axes, whose masks follow Keras' layout for them.
    """
    if check_ranks:
        check_mask_rank(padding_mask, 2, "padding_mask", "(batch, key_length)")
        for m in key_masks:
            check_mask_rank(m, 2, "value_mask/key_mask", "(batch, key_length)")
        check_mask_rank(query_mask, 2, "query_mask", "(batch, query_length)")
        check_mask_rank(attention_mask, (2, 3, 4), "attention_mask", "(batch, heads, query, key)")
        check_broadcastable(
            attention_mask,
            (None, None, query_length, key_length),
            "attention_mask",
            "(batch, heads, query_length, key_length)",
        )
    key_masks = [m for m in (padding_mask, *key_masks) if m is not None]
    mask = None

    def combine(current, new):
        new = ops.cast(new, "bool")
        return new if current is None else ops.logical_and(current, new)

    for m in key_masks:
        mask = combine(mask, ops.expand_dims(m, -2))  # (batch, 1, key)
    if query_mask is not None:
        mask = combine(mask, ops.expand_dims(query_mask, -1))  # (batch, query, 1)
    if use_causal_mask:
        mask = combine(mask, causal_mask(query_length, key_length, query_start)[None])  # (1, query, key)
    if sliding_window is not None:
        band = sliding_window_mask(query_length, key_length, sliding_window, query_start)
        mask = combine(mask, band[None])  # (1, query, key)
    if attention_mask is not None:
        mask = combine(mask, attention_mask)  # broadcasts from the right
    return mask


def resolve_padding_mask(padding_mask, inputs):
    """The explicit `padding_mask` if given, else the Keras implicit mask of `inputs`."""
    return padding_mask if padding_mask is not None else get_keras_mask(inputs)
