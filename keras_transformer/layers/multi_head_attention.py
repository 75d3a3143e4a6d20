"""Multi-head (and grouped-query) attention with masks, position bias, rotary and a cache."""

import math

import keras
from keras import ops

from keras_transformer.layers import masking
from keras_transformer.registration import register


def _positive_int(value, name):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}")


@register
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention, a drop-in for `keras.layers.MultiHeadAttention`.

    The core constructor and call arguments are those of Keras' layer (with the
    same weight layout, so weights copy across); the extras are grouped-query
    heads, rotary embedding of queries and keys, an additive `attention_bias`
    (T5's relative position bias), an optional 1/sqrt(d) scale, a key
    `padding_mask`, and a decoding cache (`call_with_cache`).

    When no attention weights are requested (and dropout is off or not
    training) attention runs through `keras.ops.dot_product_attention`, the
    backend's fused kernel (flash attention where the backend has one).
    Logits and softmax are computed in float32 under mixed precision.

    Masking: every source below is combined (logical and) in `masking.py`:
    `padding_mask` (batch, key) marks real keys; Keras implicit masks on
    query/value/key act the same way (a masked query row attends nowhere);
    `attention_mask` (batch, query, key) is boolean or 0/1, True = attend;
    `use_causal_mask=True` lets query i see keys j <= i. Additive biases go in
    `attention_bias`, broadcastable to (batch, heads, query, key). Example: a
    key padding `[1, 1, 0]` with `use_causal_mask=True` lets the three queries
    see keys `[[1,0,0],[1,1,0],[1,1,0]]`.

    Args:
        num_heads: number of query heads.
        key_dim: size of each query/key head.
        value_dim: size of each value head (default: key_dim).
        dropout: dropout rate on the attention probabilities.
        use_bias: whether the projections have biases.
        output_shape: width of the output (default: the query's width).
        num_key_value_heads: key/value heads (default: num_heads); must divide
            num_heads. 1 gives multi-query attention.
        use_scale: scale logits by 1/sqrt(key_dim) (T5 does not).
        use_rotary_embedding: rotate queries and keys by position (RoPE).
        rotary_max_wavelength: RoPE base wavelength.
        flash_attention: passed to `keras.ops.dot_product_attention`.
        kernel_initializer, bias_initializer: for the projections.
        seed: dropout seed.

    Call arguments:
        query: (batch, query_length, query_dim).
        value: (batch, key_length, value_dim_in); defaults to `query`.
        key: (batch, key_length, key_dim_in); defaults to `value`.
        padding_mask, attention_mask, use_causal_mask, attention_bias: see above.
        return_attention_scores: also return the (batch, heads, query, key)
            softmax probabilities.
        training: enables attention dropout.

    Returns `(batch, query_length, output_dim)`, plus the scores when asked.

    Example:
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = keras.ops.ones((1, 3, 8))
    >>> layer(x, x, use_causal_mask=True).shape
    (1, 3, 8)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        num_key_value_heads=None,
        use_scale=True,
        use_rotary_embedding=False,
        rotary_max_wavelength=10000,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _positive_int(num_heads, "num_heads")
        _positive_int(key_dim, "key_dim")
        if value_dim is not None:
            _positive_int(value_dim, "value_dim")
        if num_key_value_heads is not None:
            _positive_int(num_key_value_heads, "num_key_value_heads")
            if num_heads % num_key_value_heads:
                raise ValueError(
                    "`num_key_value_heads` must divide `num_heads`; received "
                    f"num_heads={num_heads}, num_key_value_heads={num_key_value_heads}"
                )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received dropout={dropout}")
        if isinstance(output_shape, (tuple, list)):
            if len(output_shape) != 1:
                raise ValueError(
                    f"`output_shape` must be an int or a 1-tuple; received output_shape={output_shape}"
                )
            output_shape = output_shape[0]
        if output_shape is not None:
            _positive_int(output_shape, "output_shape")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self._output_width = output_shape
        self.num_key_value_heads = num_key_value_heads or num_heads
        self.use_scale = use_scale
        self.use_rotary_embedding = use_rotary_embedding
        self.rotary_max_wavelength = rotary_max_wavelength
        self.flash_attention = flash_attention
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.supports_masking = True

        kv = self.num_key_value_heads
        self.query_dense = self._projection("query", "abc,cde->abde", (None, num_heads, key_dim), "de")
        self.key_dense = self._projection("key", "abc,cde->abde", (None, kv, key_dim), "de")
        self.value_dense = self._projection("value", "abc,cde->abde", (None, kv, self.value_dim), "de")
        self.output_dense = None  # its width is the query's, known at build
        self.dropout_layer = keras.layers.Dropout(dropout, seed=seed, dtype=self.dtype_policy)
        self.rotary_embedding = None
        if use_rotary_embedding:
            from keras_transformer.layers.rotary_embedding import RotaryEmbedding

            self.rotary_embedding = RotaryEmbedding(
                max_wavelength=rotary_max_wavelength, dtype=self.dtype_policy, name="rotary"
            )

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = value_shape or query_shape
        key_shape = key_shape or value_shape
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(
                    f"`{name}` must have shape (batch, length, features) with known "
                    f"features; received shape {tuple(shape)}"
                )
        output_width = self._output_width or query_shape[-1]
        self.output_dense = self._projection(
            "attention_output", "abcd,cde->abe", (None, output_width), "e"
        )
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense.build((query_shape[0], query_shape[1], self.num_heads, self.value_dim))
        self.built = True

    # ---------------------------------------------------------------- calls

    def call(
        self,
        query,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        padding_mask=None,
        attention_mask=None,
        attention_bias=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        value = query if value is None else value
        key = value if key is None else key
        # Keras fills *_mask from implicit masks when several tensors are passed;
        # read them off the tensors too for the single-tensor call.
        query_mask = masking.resolve_padding_mask(query_mask, query)
        # Per-key mask, as Keras picks it: key_mask, else value_mask, else implicit ones.
        key_mask = next(
            (m for m in (key_mask, value_mask, masking.get_keras_mask(key), masking.get_keras_mask(value))
             if m is not None),
            None,
        )
        padding_mask = self._and_masks(padding_mask, key_mask)
        mask = masking.merge_masks(
            ops.shape(query)[1],
            ops.shape(key)[1],
            padding_mask=padding_mask,
            query_mask=query_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )
        q = self.query_dense(query)  # (batch, query, heads, key_dim)
        k = self.key_dense(key)  # (batch, key, kv_heads, key_dim)
        v = self.value_dense(value)  # (batch, key, kv_heads, value_dim)
        if self.rotary_embedding is not None:
            q = self.rotary_embedding(q)
            k = self.rotary_embedding(k)
        output, scores = self._attend(q, k, v, mask, attention_bias, training, return_attention_scores)
        output = self.output_dense(output)
        if return_attention_scores:
            return output, scores
        return output

    def call_with_cache(
        self,
        query,
        cache,
        cache_update_index=None,
        padding_mask=None,
        attention_mask=None,
        attention_bias=None,
        training=None,
    ):
        """Attention against a key/value cache; returns `(output, cache)`.

        `cache` is (batch, 2, max_length, num_key_value_heads, key_dim): keys
        then values, in the compute dtype (see `initial_cache`).

        * `cache_update_index` given (causal self-attention while decoding): the
          keys/values of `query` (its positions starting at that index) are
          written into the cache at that index, and the query attends causally
          over the cache, so one new token costs O(max_length).
        * `cache_update_index=None` (cross-attention): the cache holds the
          projected encoder keys/values (`compute_cross_attention_cache`) and
          is returned unchanged.

        `padding_mask` is (batch, max_length) over the cached keys.
        """
        self._check_cache(cache)
        q = self.query_dense(query)
        if cache_update_index is None:
            k, v = cache[:, 0], cache[:, 1]
            causal, start = False, 0
        else:
            new_k = self.key_dense(query)
            new_v = self.value_dense(query)
            if self.rotary_embedding is not None:
                q = self.rotary_embedding(q, start_index=cache_update_index)
                new_k = self.rotary_embedding(new_k, start_index=cache_update_index)
            start = [0, cache_update_index, 0, 0]
            k = ops.slice_update(cache[:, 0], start, ops.cast(new_k, cache.dtype))
            v = ops.slice_update(cache[:, 1], start, ops.cast(new_v, cache.dtype))
            cache = ops.stack([k, v], axis=1)
            causal, start = True, cache_update_index
        mask = masking.merge_masks(
            ops.shape(q)[1],
            ops.shape(k)[1],
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            use_causal_mask=causal,
            query_start=start,
        )
        output, _ = self._attend(q, k, v, mask, attention_bias, training, False)
        return self.output_dense(output), cache

    def initial_cache(self, batch_size, max_length):
        """An empty self-attention cache of shape (batch, 2, max_length, kv_heads, key_dim)."""
        self._check_cacheable()
        shape = (batch_size, 2, max_length, self.num_key_value_heads, self.key_dim)
        return ops.zeros(shape, dtype=self.compute_dtype)

    def compute_cross_attention_cache(self, value, key=None):
        """Projects encoder outputs once into a cross-attention cache."""
        self._check_cacheable()
        key = value if key is None else key
        return ops.stack([self.key_dense(key), self.value_dense(value)], axis=1)

    # ------------------------------------------------------------- helpers

    def _projection(self, name, equation, shape, bias_axes):
        # Fresh initializer objects per sublayer (a shared seeded one repeats values).
        clone = lambda init: keras.initializers.get(keras.initializers.serialize(init))  # noqa: E731
        dense = keras.layers.EinsumDense(
            equation,
            output_shape=shape,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=clone(self.kernel_initializer),
            bias_initializer=clone(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )
        # Masks were already read off the inputs; let them pass instead of warning.
        dense.supports_masking = True
        return dense

    def _attend(self, q, k, v, mask, bias, training, return_scores):
        """(batch, q, heads, d) attention; returns (output, scores or None)."""
        groups = self.num_heads // self.num_key_value_heads
        if groups > 1:
            k = ops.repeat(k, groups, axis=2)
            v = ops.repeat(v, groups, axis=2)
        scale = 1.0 / math.sqrt(self.key_dim) if self.use_scale else 1.0
        if bias is not None:
            if len(bias.shape) == 3:  # (batch, query, key) -> (batch, 1, query, key)
                bias = ops.expand_dims(bias, 1)
            masking.check_mask_rank(bias, 4, "attention_bias", "(batch|1, heads|1, query, key)")
        mask4 = None if mask is None else ops.expand_dims(mask, 1)  # (batch, 1, query, key)
        dropping = self.dropout > 0 and training
        # Fused kernels (JAX's among them) need equal key and value head sizes.
        if not return_scores and not dropping and self.value_dim == self.key_dim:
            output = ops.dot_product_attention(
                q, k, v, bias=bias, mask=mask4, scale=scale, flash_attention=self.flash_attention
            )
            return output, None
        logits = ops.einsum("btnh,bsnh->bnts", q, k)  # (batch, heads, query, key)
        logits = ops.cast(logits, "float32") * scale
        if bias is not None:
            logits = logits + ops.cast(bias, "float32")
        if mask4 is not None:
            logits = ops.where(mask4, logits, -1e9)
        probs = ops.cast(ops.softmax(logits, axis=-1), self.compute_dtype)
        output = ops.einsum("bnts,bsnh->btnh", self.dropout_layer(probs, training=training), v)
        return output, probs

    @staticmethod
    def _and_masks(a, b):
        if a is None or b is None:
            return a if b is None else b
        return ops.logical_and(ops.cast(a, "bool"), ops.cast(b, "bool"))

    def _check_cacheable(self):
        if self.value_dim != self.key_dim:
            raise ValueError(
                "A decoding cache stacks keys and values, so it needs value_dim == key_dim; "
                f"received key_dim={self.key_dim}, value_dim={self.value_dim}"
            )

    def _check_cache(self, cache):
        self._check_cacheable()
        expected = (2, self.num_key_value_heads, self.key_dim)
        shape = tuple(cache.shape)
        if len(shape) != 5 or (shape[1], shape[3], shape[4]) != expected:
            raise ValueError(
                "`cache` must have shape (batch, 2, max_length, num_key_value_heads, "
                f"key_dim) = (batch, 2, max_length, {self.num_key_value_heads}, "
                f"{self.key_dim}); received shape {shape}"
            )

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return tuple(query_shape[:-1]) + (self._output_width or query_shape[-1],)

    def compute_output_spec(self, query, value=None, key=None, return_attention_scores=False, **kwargs):
        value = query if value is None else value
        key = value if key is None else key
        out = keras.KerasTensor(self.compute_output_shape(query.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return out
        scores_shape = (query.shape[0], self.num_heads, query.shape[1], key.shape[1])
        return out, keras.KerasTensor(scores_shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "output_shape": self._output_width,
                "num_key_value_heads": self.num_key_value_heads,
                "use_scale": self.use_scale,
                "use_rotary_embedding": self.use_rotary_embedding,
                "rotary_max_wavelength": self.rotary_max_wavelength,
                "flash_attention": self.flash_attention,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config
