"""T5's bucketed relative position bias."""

import math

import keras
from keras import ops

from keras_transformer.layers._checks import check_bool, check_positive_int, check_start_index
from keras_transformer.registration import register


def relative_position_bucket(
    relative_position, bidirectional=True, num_buckets=32, max_distance=128
):
    """Maps `key_position - query_position` to T5's buckets (int32, same shape).

    Follows Hugging Face's `T5Attention._relative_position_bucket` exactly.
    Bidirectional: half of the buckets hold positive offsets (keys after the
    query), half the rest. Unidirectional: only non-positive offsets count,
    as `-min(relative_position, 0)`; keys after the query share bucket 0.
    Within a half (of `n` buckets: `num_buckets // 2` when bidirectional,
    else `num_buckets`), offsets below `max_exact = n // 2` get a bucket
    each; larger ones are log-spaced up to `max_distance`, and everything
    beyond lands in the last bucket.

    Args:
        relative_position: integer tensor, `key_position - query_position`.
        bidirectional: whether keys after the query get their own buckets.
        num_buckets: total number of buckets.
        max_distance: offsets at or beyond it share the last bucket.
    """
    relative_position = ops.cast(relative_position, "int32")
    buckets = ops.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + ops.cast(relative_position > 0, "int32") * num_buckets
        relative_position = ops.abs(relative_position)
    else:
        relative_position = -ops.minimum(relative_position, 0)
    # relative_position is now in [0, inf).
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    # float32 like Hugging Face (the int cast truncates, as `.to(long)` does);
    # the maximum keeps log() finite where the small branch is taken anyway.
    ratio = ops.cast(ops.maximum(relative_position, max_exact), "float32") / float(max_exact)
    if_large = max_exact + ops.cast(
        ops.log(ratio) / math.log(max_distance / max_exact) * (num_buckets - max_exact), "int32"
    )
    if_large = ops.minimum(if_large, num_buckets - 1)
    return buckets + ops.where(is_small, relative_position, if_large)


@register
class RelativePositionBias(keras.layers.Layer):
    """T5's relative position bias, added to attention logits.

    Each (query, key) pair gets a learned per-head scalar looked up by the
    bucket of `key_position - query_position` (see `relative_position_bucket`).
    The one weight, `embeddings`, has shape `(num_buckets, num_heads)`.
    Query positions are `start_index + arange(query_length)` (so a cached
    decoding step at position `t` passes `start_index=t`), key positions are
    `arange(key_length)`.

    Args:
        num_heads: positive int, the number of attention heads.
        num_buckets: number of buckets; at least 4 when bidirectional (half
            for each direction), at least 2 otherwise.
        max_distance: offsets at or beyond it share the last bucket; must
            exceed the number of exact buckets (`num_buckets // 2`, halved
            again when bidirectional).
        bidirectional: True for encoders (keys on both sides), False for
            causal decoders.
        embeddings_initializer: initializer of the table. The default,
            normal with stddev 0.05, is close to T5's `d_model ** -0.5`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `(batch, query_length, dim)`; only its length is used.
        key: `(batch, key_length, dim)`; only its length is used. Defaults
            to `query`.
        start_index: Python int or scalar integer tensor (it may be traced):
            the position of the first query. Defaults to 0.

    Output shape:
        `(1, num_heads, query_length, key_length)`, in the compute dtype, to
        broadcast over the batch of `(batch, heads, query, key)` logits.

    Example:

    >>> bias = RelativePositionBias(num_heads=2, num_buckets=8, max_distance=16)
    >>> tuple(bias(keras.ops.zeros((3, 5, 4))).shape)
    (1, 2, 5, 5)
    >>> # One decoding step at position 4 against 5 cached keys:
    >>> step = bias(keras.ops.zeros((3, 1, 4)), keras.ops.zeros((3, 5, 4)), start_index=4)
    >>> tuple(step.shape)
    (1, 2, 1, 5)
    """

    def __init__(
        self,
        num_heads,
        num_buckets=32,
        max_distance=128,
        bidirectional=True,
        embeddings_initializer="random_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("num_heads", num_heads),
            ("num_buckets", num_buckets),
            ("max_distance", max_distance),
        ):
            check_positive_int(value, name)
        check_bool(bidirectional, "bidirectional")
        min_buckets = 4 if bidirectional else 2
        if num_buckets < min_buckets:
            raise ValueError(
                f"num_buckets must be at least {min_buckets} when bidirectional={bidirectional}; "
                f"received num_buckets={num_buckets}"
            )
        max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
        if max_distance <= max_exact:
            raise ValueError(
                f"max_distance must exceed the {max_exact} exact buckets; received "
                f"max_distance={max_distance}, num_buckets={num_buckets}, "
                f"bidirectional={bidirectional}"
            )
        self.num_heads = int(num_heads)
        self.num_buckets = int(num_buckets)
        self.max_distance = int(max_distance)
        self.bidirectional = bidirectional
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, query_shape, key_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_buckets, self.num_heads),
            initializer=self.embeddings_initializer,
            trainable=True,
        )
        self.built = True

    def call(self, query, key=None, start_index=0):
        check_start_index(start_index)
        key = query if key is None else key
        query_length, key_length = ops.shape(query)[1], ops.shape(key)[1]
        query_positions = ops.arange(query_length, dtype="int32") + ops.cast(start_index, "int32")
        key_positions = ops.arange(key_length, dtype="int32")
        relative = key_positions[None, :] - query_positions[:, None]  # (query, key)
        buckets = relative_position_bucket(
            relative, self.bidirectional, self.num_buckets, self.max_distance
        )
        values = ops.take(self.embeddings, buckets, axis=0)  # (query, key, heads)
        values = ops.transpose(values, (2, 0, 1))[None]  # (1, heads, query, key)
        return ops.cast(values, self.compute_dtype)

    def compute_output_shape(self, query_shape, key_shape=None):
        key_shape = query_shape if key_shape is None else key_shape
        return (1, self.num_heads, query_shape[1], key_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "num_buckets": self.num_buckets,
                "max_distance": self.max_distance,
                "bidirectional": self.bidirectional,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
