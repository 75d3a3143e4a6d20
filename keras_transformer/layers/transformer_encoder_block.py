"""A Transformer encoder block: self-attention and feed-forward, each a residual branch."""


from keras_transformer.layers import masking
from keras_transformer.layers._transformer_block import TransformerBlockBase
from keras_transformer.registration import register


@register
class TransformerEncoderBlock(TransformerBlockBase):
    """Self-attention then feed-forward, pre- or post-norm, LayerNorm or RMSNorm.

    Expresses a BERT layer (post-norm, LayerNorm eps 1e-12, exact GELU), a
    GPT-2 layer with `use_causal_mask=True` (pre-norm, tanh GELU) and a T5
    encoder layer (pre-norm, RMSNorm, no biases, no attention scale, relative
    position bias passed as `attention_bias`).

    Masking: `padding_mask` (batch, length), 1 for real tokens, masks keys;
    a Keras implicit mask on `inputs` is used when no `padding_mask` is given
    and is propagated to the output; `attention_mask` (batch, length, length)
    and `use_causal_mask` combine with it (see `masking.py`). Example: with
    `padding_mask=[[1, 1, 0]]` every position attends to the first two only.

    Args:
        num_heads: attention heads; must divide the input width unless
            `key_dim` is given.
        intermediate_dim: feed-forward hidden width.
        key_dim: per-head width (default: hidden_dim // num_heads).
        num_key_value_heads: grouped-query key/value heads.
        dropout: residual dropout; `attention_dropout` (default: `dropout`)
            on the attention probabilities.
        activation, gated_feed_forward: the feed-forward's activation and form.
        normalization: "layer_norm" or "rms_norm"; `layer_norm_epsilon` its epsilon.
        normalize_first: pre-norm (True) or post-norm (False).
        use_bias: biases in attention and feed-forward projections.
        use_attention_scale: scale logits by 1/sqrt(key_dim).
        use_rotary_embedding, rotary_max_wavelength: RoPE in self-attention.
        kernel_initializer, bias_initializer: for every projection.

    Call: `block(inputs, padding_mask=None, attention_mask=None,
    attention_bias=None, use_causal_mask=False, training=None)` with inputs
    (batch, length, hidden_dim); returns the same shape.

    Example:
    >>> block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16)
    >>> block(keras.ops.ones((1, 3, 8)), padding_mask=[[1, 1, 0]]).shape
    (1, 3, 8)
    """

    def build(self, inputs_shape):
        self._check_input(inputs_shape, "inputs")
        self.self_attention = self._attention(
            inputs_shape[-1], "self_attention", self.use_rotary_embedding
        )
        self.self_attention.build(inputs_shape)
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention_norm.build(inputs_shape)
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        self.feed_forward_norm.build(inputs_shape)
        self.feed_forward.build(inputs_shape)
        self.built = True

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        attention_bias=None,
        use_causal_mask=False,
        training=None,
    ):
        padding_mask = masking.resolve_padding_mask(padding_mask, inputs)

        def attend(x):
            return self.self_attention(
                x,
                padding_mask=padding_mask,
                attention_mask=attention_mask,
                attention_bias=attention_bias,
                use_causal_mask=use_causal_mask,
                training=training,
            )

        x = self._residual(
            inputs, self.self_attention_norm, attend, self.self_attention_dropout, training
        )
        return self._feed_forward_residual(x, training)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape
