"""Position-wise feed-forward block, plain or gated (GEGLU / SwiGLU)."""

import keras
from keras import ops

from keras_transformer.layers._checks import check_bool, check_positive_int, check_rate
from keras_transformer.registration import register

# Names whose meaning differs from, or is missing in, `keras.activations.get`.
_NAMED_ACTIVATIONS = {
    # Exact erf form (BERT, T5 v1.1 "gated-gelu" uses the tanh form below).
    "gelu": lambda x: keras.activations.gelu(x, approximate=False),
    # tanh approximation: GPT-2's "gelu_new", Hugging Face "gelu_pytorch_tanh".
    "gelu_approximate": lambda x: keras.activations.gelu(x, approximate=True),
}


def _resolve_activation(activation):
    """Returns the activation function for a name, a serialized config or a callable."""
    if isinstance(activation, str) and activation in _NAMED_ACTIVATIONS:
        return _NAMED_ACTIVATIONS[activation]
    if isinstance(activation, (str, dict)) or callable(activation):
        try:
            return keras.activations.get(activation)
        except (ValueError, TypeError):
            pass
    raise ValueError(
        "activation must be a Keras activation name (e.g. 'relu', 'gelu', "
        "'gelu_approximate', 'silu') or a callable; "
        f"received activation={activation!r}"
    )


@register
class FeedForward(keras.layers.Layer):
    """The transformer feed-forward block, applied at every position.

    Plain (BERT, GPT-2, original T5):

        out = W_o · dropout(act(W_i · x + b_i)) + b_o

    Gated (GEGLU, SwiGLU, T5 v1.1 "gated-gelu", LLaMA):

        out = W_o · dropout(act(W_g · x) * (W_u · x))

    Sublayers are `keras.layers.Dense`, named so model code and checkpoint
    converters can reach them: `intermediate_dense` (W_i, or the linear "up"
    projection W_u when gated; T5's `wi_1`, LLaMA's `up_proj`), `gate_dense`
    (W_g, the activated branch, only when gated; T5's `wi_0`, LLaMA's
    `gate_proj`) and `output_dense` (W_o). `use_bias` applies to all of them.

    Args:
        intermediate_dim: int > 0, width of the hidden layer.
        activation: a Keras activation name, "gelu" (the EXACT erf form),
            "gelu_approximate" (the tanh form, GPT-2's "gelu_new"), or a
            callable (a registered one survives saving).
        gated: bool, use the gated form.
        use_bias: bool, biases on the dense sublayers.
        dropout: float in [0, 1), dropout on the hidden activations.
        output_dim: int > 0 or None (the input width).
        kernel_initializer, bias_initializer: initializers of the sublayers.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: (batch, length, dim) (any rank >= 2; the last axis is mapped).
        training: bool, enables dropout.

    Shapes: (..., dim) -> (..., output_dim or dim), in the compute dtype.

    Masking: the block is position-wise, so a Keras mask on the input
    (e.g. `[[True, True, False]]` for a padded sequence) is passed on to the
    output unchanged; padded positions are computed but stay masked.

    Example:
    >>> ffn = FeedForward(intermediate_dim=16, activation="silu", gated=True)
    >>> ffn(np.zeros((2, 3, 8), "float32")).shape    # (2, 3, 8)
    """

    def __init__(
        self,
        intermediate_dim,
        activation="relu",
        gated=False,
        use_bias=True,
        dropout=0.0,
        output_dim=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int(intermediate_dim, "intermediate_dim")
        check_positive_int(output_dim, "output_dim", allow_none=True)
        check_rate(dropout, "dropout")
        check_bool(gated, "gated")
        check_bool(use_bias, "use_bias")
        self._activation_fn = _resolve_activation(activation)
        if isinstance(activation, dict):  # a serialized callable, from `from_config`
            activation = self._activation_fn
        self.intermediate_dim = int(intermediate_dim)
        self.activation = activation
        self.gated = gated
        self.use_bias = use_bias
        self.dropout = float(dropout)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

        self.intermediate_dense = self._dense(self.intermediate_dim, "intermediate_dense")
        self.gate_dense = self._dense(self.intermediate_dim, "gate_dense") if gated else None
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )
        # Created in build(): its width defaults to the input width, unknown here.
        self.output_dense = None

    def _dense(self, units, name):
        clone = keras.initializers.deserialize  # fresh instances, seeds not shared
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=clone(keras.initializers.serialize(self.kernel_initializer)),
            bias_initializer=clone(keras.initializers.serialize(self.bias_initializer)),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if input_shape[-1] is None:
            raise ValueError(
                f"FeedForward needs a known last axis; received input_shape={input_shape}"
            )
        self.intermediate_dense.build(input_shape)
        if self.gate_dense is not None:
            self.gate_dense.build(input_shape)
        hidden_shape = input_shape[:-1] + (self.intermediate_dim,)
        self.dropout_layer.build(hidden_shape)
        self.output_dense = self._dense(self.output_dim or input_shape[-1], "output_dense")
        self.output_dense.build(hidden_shape)
        self.built = True

    def call(self, inputs, training=None):
        if self.gated:
            # (..., intermediate_dim): activated gate times the linear branch.
            gate = self._activation_fn(self.gate_dense(inputs))
            hidden = ops.multiply(gate, self.intermediate_dense(inputs))
        else:
            hidden = self._activation_fn(self.intermediate_dense(inputs))
        hidden = self.dropout_layer(hidden, training=training)
        return self.output_dense(hidden)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return input_shape[:-1] + (self.output_dim or input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        activation = self.activation
        if not isinstance(activation, str):
            activation = keras.activations.serialize(activation)
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": activation,
                "gated": self.gated,
                "use_bias": self.use_bias,
                "dropout": self.dropout,
                "output_dim": self.output_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
