"""What the encoder and decoder blocks share: arguments, sublayers, residual wiring."""

import keras

from keras_transformer.layers._checks import check_one_of, check_positive_int, check_rate
from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.multi_head_attention import MultiHeadAttention
from keras_transformer.layers.rms_norm import RMSNorm

NORMALIZATIONS = ("layer_norm", "rms_norm")


class TransformerBlockBase(keras.layers.Layer):
    """Base of `TransformerEncoderBlock` and `TransformerDecoderBlock` (not public).

    Holds the constructor arguments both share, creates the normalisation,
    feed-forward and attention sublayers, and wires each sublayer as a residual
    branch, pre-norm (`x + f(norm(x))`, GPT-2/T5) or post-norm
    (`norm(x + f(x))`, BERT).
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        key_dim=None,
        num_key_value_heads=None,
        dropout=0.0,
        attention_dropout=None,
        activation="relu",
        gated_feed_forward=False,
        normalization="layer_norm",
        normalize_first=False,
        layer_norm_epsilon=1e-5,
        use_bias=True,
        use_attention_scale=True,
        use_rotary_embedding=False,
        rotary_max_wavelength=10000,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int(num_heads, "num_heads")
        check_one_of(normalization, "normalization", NORMALIZATIONS)
        check_rate(dropout, "dropout")
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.key_dim = key_dim
        self.num_key_value_heads = num_key_value_heads
        self.dropout = dropout
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.activation = activation
        self.gated_feed_forward = gated_feed_forward
        self.normalization = normalization
        self.normalize_first = normalize_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_bias = use_bias
        self.use_attention_scale = use_attention_scale
        self.use_rotary_embedding = use_rotary_embedding
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True
        # Shape-free sublayers now (this validates `activation` and the rest at once).
        self.feed_forward = FeedForward(
            intermediate_dim,
            activation=activation,
            gated=gated_feed_forward,
            use_bias=use_bias,
            kernel_initializer=self._initializer(self.kernel_initializer),
            bias_initializer=self._initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        self.feed_forward_norm = self._norm("feed_forward_norm")
        self.feed_forward_dropout = self._dropout("feed_forward_dropout")

    # --------------------------------------------------------- sublayers

    @staticmethod
    def _initializer(initializer):
        # A fresh object per sublayer: one shared seeded initializer repeats values.
        return keras.initializers.get(keras.initializers.serialize(initializer))

    def _norm(self, name):
        if self.normalization == "rms_norm":
            return RMSNorm(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name)
        return keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )

    def _dropout(self, name):
        return keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=name)

    def _attention(self, hidden_dim, name, rotary):
        key_dim = self.key_dim
        if key_dim is None:
            if hidden_dim % self.num_heads:
                raise ValueError(
                    "`num_heads` must divide hidden_dim (or pass `key_dim`); received "
                    f"hidden_dim={hidden_dim}, num_heads={self.num_heads}"
                )
            key_dim = hidden_dim // self.num_heads
        return MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=key_dim,
            num_key_value_heads=self.num_key_value_heads,
            dropout=self.attention_dropout,
            use_bias=self.use_bias,
            use_scale=self.use_attention_scale,
            use_rotary_embedding=rotary,
            rotary_max_wavelength=self.rotary_max_wavelength,
            kernel_initializer=self._initializer(self.kernel_initializer),
            bias_initializer=self._initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def _build_feed_forward(self, shape):
        self.feed_forward_norm.build(shape)
        self.feed_forward.build(shape)

    @staticmethod
    def _check_input(shape, name):
        if len(shape) != 3 or shape[-1] is None:
            raise ValueError(
                f"`{name}` must have shape (batch, length, hidden_dim) with a known "
                f"hidden_dim; received shape {tuple(shape)}"
            )

    # ----------------------------------------------------------- wiring

    def _residual(self, x, norm, branch, dropout, training):
        """x + dropout(branch(norm(x))) when pre-norm, norm(x + dropout(branch(x))) when post-norm."""
        y = norm(x) if self.normalize_first else x
        y = dropout(branch(y), training=training)
        out = x + y
        return out if self.normalize_first else norm(out)

    def _feed_forward_residual(self, x, training):
        return self._residual(
            x,
            self.feed_forward_norm,
            lambda y: self.feed_forward(y, training=training),
            self.feed_forward_dropout,
            training,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "key_dim": self.key_dim,
                "num_key_value_heads": self.num_key_value_heads,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "activation": self.feed_forward.get_config()["activation"],
                "gated_feed_forward": self.gated_feed_forward,
                "normalization": self.normalization,
                "normalize_first": self.normalize_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "use_bias": self.use_bias,
                "use_attention_scale": self.use_attention_scale,
                "use_rotary_embedding": self.use_rotary_embedding,
                "rotary_max_wavelength": self.rotary_max_wavelength,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
