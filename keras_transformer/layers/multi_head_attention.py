"""Keras' MultiHeadAttention plus grouped-query heads, rotary, an additive bias and a decoding cache."""

import re

import keras
from keras import ops
from keras.src.layers.attention.multi_head_attention import _build_proj_equation, _get_output_shape

from keras_transformer.layers import masking
from keras_transformer.layers._checks import (
    check_bool,
    check_positive_int,
    check_positive_number,
    check_rate,
)
from keras_transformer.layers.rotary_embedding import RotaryEmbedding
from keras_transformer.registration import register


@register
class MultiHeadAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with grouped-query heads, rotary, bias and a cache.

    A subclass of Keras' layer: every argument, property, error and behaviour
    of it (attention over several axes, `use_gate`, `sliding_window`,
    regularizers and constraints, `output_shape` as an int or a tuple, masks of
    any broadcastable rank, flash-attention switching, LoRA and int8
    quantization of the projections, dtype-policy maps) comes from Keras, and
    the weight layout is Keras' (with `num_key_value_heads == num_heads`), so
    weights copy both ways with `set_weights`. On top:

    * grouped-query / multi-query heads (`num_key_value_heads`);
    * rotary position embedding of queries and keys (`use_rotary_embedding`);
    * an additive `attention_bias` (T5's relative position bias);
    * `use_scale=False` (no 1/sqrt(key_dim) on the logits, as in T5);
    * a key `padding_mask` call argument;
    * a decoding cache: `initial_cache`, `compute_cross_attention_cache`,
      `call_with_cache`.

    Masking: all sources are combined (logical and) in `masking.py`:
    `padding_mask` (batch, key) marks real keys; Keras implicit masks and the
    `query_mask`/`value_mask`/`key_mask` arguments act as in Keras (a masked
    query row attends nowhere; in self-attention, `layer(x)`, the implicit
    mask of `x` masks keys too); `attention_mask` broadcastable to (batch,
    heads, query, key) — (query, key), (batch, query, key) or (batch, heads,
    query, key) — is boolean or 0/1, True = attend; `use_causal_mask=True` lets
    query i see keys j <= i; `sliding_window=w` keeps keys with |i - j| < w.
    Example: a key padding `[1, 1, 0]` with `use_causal_mask=True` lets the
    three queries see keys `[[1,0,0],[1,1,0],[1,1,0]]`.

    Args (beyond Keras'):
        num_key_value_heads: key/value heads (default: num_heads); must divide
            num_heads. 1 gives multi-query attention.
        use_scale: scale logits by 1/sqrt(key_dim) (T5 does not).
        use_rotary_embedding: rotate queries and keys by position (RoPE);
            needs (batch, length, features) inputs.
        rotary_max_wavelength: RoPE base wavelength.

    Call arguments (beyond Keras'):
        value: defaults to `query` (self-attention).
        padding_mask: (batch, key_length), 1/True for real keys.
        attention_bias: added to the logits, of shape (batch|1, heads|1, query,
            key), (batch, query, key) or (query, key); rank-3 inputs only.

    Example:
    >>> layer = MultiHeadAttention(num_heads=4, key_dim=4, num_key_value_heads=2)
    >>> x = keras.ops.ones((1, 3, 8))
    >>> layer(x, padding_mask=[[1, 1, 0]], use_causal_mask=True).shape
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
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        num_key_value_heads=None,
        use_scale=True,
        use_rotary_embedding=False,
        rotary_max_wavelength=10000,
        **kwargs,
    ):
        super().__init__(
            num_heads=num_heads,
            key_dim=key_dim,
            value_dim=value_dim,
            dropout=dropout,
            use_bias=use_bias,
            output_shape=output_shape,
            attention_axes=attention_axes,
            sliding_window=sliding_window,
            flash_attention=flash_attention,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            use_gate=use_gate,
            seed=seed,
            **kwargs,
        )
        check_rate(dropout, "dropout")
        check_positive_int(num_key_value_heads, "num_key_value_heads", allow_none=True)
        if num_key_value_heads is not None and num_heads % num_key_value_heads:
            raise ValueError(
                "num_key_value_heads must divide num_heads; received "
                f"num_heads={num_heads}, num_key_value_heads={num_key_value_heads}"
            )
        check_bool(use_scale, "use_scale")
        check_bool(use_rotary_embedding, "use_rotary_embedding")
        check_positive_number(rotary_max_wavelength, "rotary_max_wavelength")
        self._flash_attention_argument = flash_attention  # Keras keeps only the resolved value
        self.num_key_value_heads = num_key_value_heads or num_heads
        self.use_scale = use_scale
        self.use_rotary_embedding = use_rotary_embedding
        self.rotary_max_wavelength = rotary_max_wavelength
        if not use_scale:
            self._inverse_sqrt_key_dim = 1.0  # the scale both Keras attention paths apply
        self.rotary_embedding = None
        if use_rotary_embedding:
            self.rotary_embedding = RotaryEmbedding(
                max_wavelength=rotary_max_wavelength, dtype=self.dtype_policy, name="rotary"
            )

    @property
    def dropout_layer(self):
        # The weight path of the attention dropout's seed in files saved before
        # this layer subclassed Keras' (public attributes are saved first).
        return self._dropout_layer

    # ---------------------------------------------------------------- build

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        self.compute_output_shape(query_shape, value_shape, key_shape)  # Keras' shape checks
        if self.use_rotary_embedding and len(query_shape) != 3:
            raise ValueError(
                "use_rotary_embedding needs inputs of shape (batch, length, features); "
                f"received query shape {tuple(query_shape)}"
            )
        # Keras' sublayers in Keras' order (weights copy across); keys and
        # values get num_key_value_heads heads.
        heads, kv_heads = self.num_heads, self.num_key_value_heads
        self._query_dense = self._head_projection(query_shape, heads, self.key_dim, "query")
        self._key_dense = self._head_projection(key_shape, kv_heads, self.key_dim, "key")
        if self._use_gate:
            self._gate_dense = self._head_projection(
                query_shape, heads, self.value_dim, "gate", activation="sigmoid"
            )
        self._value_dense = self._head_projection(value_shape, kv_heads, self.value_dim, "value")
        self._build_attention(len(value_shape) + 1)
        self._output_dense = self._make_output_dense(
            query_shape, self._get_common_kwargs_for_sublayer(), "attention_output"
        )
        heads_shape = list(self._query_dense.compute_output_shape(query_shape))
        heads_shape[-1] = self.value_dim
        self._output_dense.build(tuple(heads_shape))

    def _head_projection(self, input_shape, heads, size, name, activation=None):
        """EinsumDense (batch, ..., features) -> (batch, ..., heads, size), Keras' equation."""
        equation, bias_axes, output_rank = _build_proj_equation(
            len(input_shape) - 1, bound_dims=1, output_dims=2
        )
        dense = keras.layers.EinsumDense(
            equation,
            output_shape=_get_output_shape(output_rank - 1, [heads, size]),
            bias_axes=bias_axes if self._use_bias else None,
            activation=activation,
            name=name,
            **self._get_common_kwargs_for_sublayer(),
        )
        dense.supports_masking = True  # masks were read off the inputs already
        dense.build(input_shape)
        return dense

    # ---------------------------------------------------------------- calls

    def call(
        self,
        query,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        padding_mask=None,
        attention_bias=None,
    ):
        if value is None:  # self-attention: the query's implicit mask masks keys too
            value = query
            value_mask = masking.resolve_padding_mask(value_mask, query)
        key = value if key is None else key
        query_mask = masking.resolve_padding_mask(query_mask, query)
        if attention_bias is not None and len(query.shape) != 3:
            raise ValueError(
                "attention_bias needs inputs of shape (batch, length, features); "
                f"received query shape {tuple(query.shape)}"
            )
        masks = (query_mask, value_mask, key_mask, attention_mask, padding_mask, attention_bias)
        # Causal masking alone runs the backend's causal kernel, as in Keras
        # (unless a subclass replaces the attention computation).
        causal_only = (
            use_causal_mask
            and all(m is None for m in masks)
            and self._sliding_window is None
            and type(self)._compute_attention is MultiHeadAttention._compute_attention
        )
        mask = None
        if not causal_only:
            mask = self._compute_attention_mask(
                query,
                value,
                query_mask=query_mask,
                value_mask=value_mask,
                key_mask=key_mask,
                attention_mask=attention_mask,
                use_causal_mask=use_causal_mask,
                padding_mask=padding_mask,
            )
        gate = self._gate_dense(query) if self._use_gate else None
        q = self._query_dense(query)  # (batch, query, heads, key_dim)
        k = self._key_dense(key)  # (batch, key, kv_heads, key_dim)
        v = self._value_dense(value)  # (batch, key, kv_heads, value_dim)
        if self.rotary_embedding is not None:
            q, k = self.rotary_embedding(q), self.rotary_embedding(k)
        extra = {}  # only what is set, so overrides with Keras' signature keep working
        if causal_only:
            extra["use_causal_mask"] = True
        if attention_bias is not None:
            extra["attention_bias"] = attention_bias
        output, scores = self._compute_attention(
            q, k, v, mask, training, return_attention_scores, **extra
        )
        output = self._project_output(output, gate)
        if query_mask is not None:
            masking.set_keras_mask(output, query_mask)
        return (output, scores) if return_attention_scores else output

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
        self._check_cache(cache, query)
        gate = self._gate_dense(query) if self._use_gate else None
        q = self._query_dense(query)
        if cache_update_index is None:
            k, v = cache[:, 0], cache[:, 1]
            causal, start = False, 0
        else:
            new_k = self._key_dense(query)
            new_v = self._value_dense(query)
            if self.rotary_embedding is not None:
                q = self.rotary_embedding(q, start_index=cache_update_index)
                new_k = self.rotary_embedding(new_k, start_index=cache_update_index)
            index = [0, cache_update_index, 0, 0]
            k = ops.slice_update(cache[:, 0], index, ops.cast(new_k, cache.dtype))
            v = ops.slice_update(cache[:, 1], index, ops.cast(new_v, cache.dtype))
            cache = ops.stack([k, v], axis=1)
            causal, start = True, cache_update_index
        mask = masking.merge_masks(
            ops.shape(q)[1],
            ops.shape(k)[1],
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            use_causal_mask=causal,
            query_start=start,
            sliding_window=self._sliding_window,
        )
        extra = {} if attention_bias is None else {"attention_bias": attention_bias}
        output, _ = self._compute_attention(q, k, v, mask, training, False, **extra)
        return self._project_output(output, gate), cache

    def initial_cache(self, batch_size, max_length):
        """An empty self-attention cache of shape (batch, 2, max_length, kv_heads, key_dim)."""
        self._check_cacheable()
        shape = (batch_size, 2, max_length, self.num_key_value_heads, self.key_dim)
        return ops.zeros(shape, dtype=self.compute_dtype)

    def compute_cross_attention_cache(self, value, key=None):
        """Projects encoder outputs once into a cross-attention cache."""
        self._check_cacheable()
        key = value if key is None else key
        return ops.stack([self._key_dense(key), self._value_dense(value)], axis=1)

    # ------------------------------------------------- attention and masks

    def _compute_attention_mask(
        self,
        query,
        value,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        padding_mask=None,
    ):
        """Keras' override point, answered by `masking.merge_masks` (the one place masks merge)."""
        return masking.merge_masks(
            ops.shape(query)[1],
            ops.shape(value)[1],
            padding_mask=padding_mask,
            query_mask=query_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            key_masks=(value_mask, key_mask),
            sliding_window=self._sliding_window,
            check_ranks=len(query.shape) == 3,
        )

    def _compute_attention(
        self,
        query,
        key,
        value,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        use_causal_mask=False,
        attention_bias=None,
    ):
        """Keras' attention over projected heads, plus grouped heads and an additive bias."""
        groups = self.num_heads // self.num_key_value_heads
        if groups > 1:  # (batch, key, kv_heads, dim) -> (batch, key, heads, dim)
            key = ops.repeat(key, groups, axis=-2)
            value = ops.repeat(value, groups, axis=-2)
        inference = training is None or training is False
        # Keras skips its fused kernel whenever dropout > 0; at inference it may run.
        fused_at_inference = (
            self._dropout > 0 and inference and not return_attention_scores
            and len(query.shape) == 4 and self._fusable()
        )
        # Keras' fused call fails on JAX for unequal key/value head sizes: those run below.
        keras_path = self._fusable() or len(query.shape) != 4
        if attention_bias is None and not fused_at_inference and keras_path:
            causal = {"use_causal_mask": True} if use_causal_mask else {}
            return super()._compute_attention(
                query, key, value, attention_mask, training, return_attention_scores, **causal
            )
        if use_causal_mask:
            attention_mask = masking.merge_masks(
                ops.shape(query)[1], ops.shape(key)[1], attention_mask=attention_mask,
                use_causal_mask=True, check_ranks=False,
            )
        return self._biased_attention(
            query, key, value, attention_mask, attention_bias, training, return_attention_scores
        )

    def _biased_attention(self, query, key, value, mask, bias, training, return_scores):
        """(batch, length, heads, dim) attention with an optional additive bias."""
        query_length, key_length = ops.shape(query)[1], ops.shape(key)[1]
        if bias is not None:
            masking.check_mask_rank(bias, (2, 3, 4), "attention_bias", "(batch, heads, query, key)")
            if len(bias.shape) == 3:  # (batch, query, key) -> (batch, 1, query, key)
                bias = ops.expand_dims(bias, 1)
            masking.check_broadcastable(
                bias, (None, self.num_heads, query_length, key_length),
                "attention_bias", "(batch, heads, query_length, key_length)",
            )
        if mask is not None:
            mask = ops.cast(mask, "bool")
            while len(mask.shape) < 4:  # -> (batch|1, heads|1, query, key)
                mask = ops.expand_dims(mask, -3)
        dropping = self._dropout > 0 and not (training is None or training is False)
        if not return_scores and not dropping and self._fusable():
            if bias is not None and mask is not None:
                # PyTorch's fused kernel takes a bias or a mask, not both: fold the mask in.
                big = 3e4 if keras.backend.standardize_dtype(query.dtype) == "float16" else 1e9
                bias = ops.where(mask, ops.cast(bias, query.dtype), ops.cast(-big, query.dtype))
                mask = None
            output = ops.dot_product_attention(
                query, key, value, bias=bias, mask=mask, scale=self._inverse_sqrt_key_dim,
                flash_attention=self._flash_attention,
            )
            return output, None
        # Logits and softmax in float32 (mixed precision), probabilities back in the compute dtype.
        logits = ops.einsum(self._dot_product_equation, key, query)  # (batch, heads, query, key)
        logits = ops.cast(logits, "float32") * self._inverse_sqrt_key_dim
        if bias is not None:
            logits = logits + ops.cast(bias, "float32")
        if mask is not None:
            logits = ops.where(mask, logits, -1e9)
        probs = ops.softmax(logits, axis=-1)
        if mask is not None:  # as Keras' softmax: a fully masked row attends nowhere
            probs = ops.where(mask, probs, 0.0)
        probs = ops.cast(probs, self.compute_dtype)
        dropped = self._dropout_layer(probs, training=training) if self._dropout > 0 else probs
        return ops.einsum(self._combine_equation, dropped, value), probs

    def _fusable(self):
        # JAX's fused kernel needs equal key and value head sizes.
        return self.key_dim == self.value_dim

    def _project_output(self, output, gate):
        return self._output_dense(output if gate is None else ops.multiply(output, gate))

    # ------------------------------------------------------------- checks

    def _check_cacheable(self):
        if self.value_dim != self.key_dim:
            raise ValueError(
                "A decoding cache stacks keys and values, so it needs value_dim == key_dim; "
                f"received key_dim={self.key_dim}, value_dim={self.value_dim}"
            )

    def _check_cache(self, cache, query):
        self._check_cacheable()
        if len(query.shape) != 3:
            raise ValueError(
                "call_with_cache needs a query of shape (batch, length, features); "
                f"received shape {tuple(query.shape)}"
            )
        expected = (2, self.num_key_value_heads, self.key_dim)
        shape = tuple(cache.shape)
        if len(shape) != 5 or (shape[1], shape[3], shape[4]) != expected:
            raise ValueError(
                "`cache` must have shape (batch, 2, max_length, num_key_value_heads, "
                f"key_dim) = (batch, 2, max_length, {self.num_key_value_heads}, "
                f"{self.key_dim}); received shape {shape}"
            )

    # ------------------------------------------------------------- shapes

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        return super().compute_output_shape(query_shape, value_shape, key_shape)

    def compute_output_spec(
        self, query, value=None, key=None, return_attention_scores=False, **kwargs
    ):
        value = query if value is None else value
        if len(query.shape) != 3:  # several attention axes: Keras' answer
            return super().compute_output_spec(
                query, value, key, return_attention_scores=return_attention_scores
            )
        key_shape = None if key is None else key.shape
        shape = self.compute_output_shape(query.shape, value.shape, key_shape)
        output = keras.KerasTensor(shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        scores_shape = (query.shape[0], self.num_heads, query.shape[1], value.shape[1])
        return output, keras.KerasTensor(scores_shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        policy_map = self._quantized_policy_map()
        if policy_map is not None:
            config["dtype"] = keras.dtype_policies.serialize(policy_map)
        config.update(
            {
                "flash_attention": self._flash_attention_argument,
                "num_key_value_heads": self.num_key_value_heads,
                "use_scale": self.use_scale,
                "use_rotary_embedding": self.use_rotary_embedding,
                "rotary_max_wavelength": self.rotary_max_wavelength,
            }
        )
        return config

    def _quantized_policy_map(self):
        """A DTypePolicyMap naming the quantized projections, or None if there are none.

        `quantize` changes the projections' policies only; they are rebuilt in
        `build` from this layer's dtype, so the config carries their policies
        (keyed by sublayer name under any path) for a `.keras` file to reload.
        """
        quantized = [
            layer for layer in self._flatten_layers(include_self=False, recursive=False)
            if layer.quantization_mode is not None
        ]
        if not quantized:
            return None
        policy = self.dtype_policy
        if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
            policy_map = keras.dtype_policies.DTypePolicyMap(policy.default_policy, dict(policy.items()))
        else:
            policy_map = keras.dtype_policies.DTypePolicyMap(default_policy=policy)
        for layer in quantized:
            policy_map[f"(.*/)?{re.escape(layer.name)}"] = layer.dtype_policy
        return policy_map
