"""A token embedding that doubles as the (tied) output projection."""

import keras
from keras import ops

from keras_transformer.layers._checks import check_bool, check_positive_int, check_token_ids
from keras_transformer.registration import register


@register
class ReversibleEmbedding(keras.layers.Layer):
    """Token embedding that can also map hidden states back to vocabulary logits.

    `call(ids)` looks token ids up in the `embeddings` matrix (input_dim,
    output_dim). `call(hidden, reverse=True)` projects hidden states onto the
    vocabulary: with `tie_weights=True` through the transposed embedding matrix
    (Press & Wolf, 2016), otherwise through a separate `reverse_embeddings`
    kernel of shape (output_dim, input_dim).

    In an eager call the ids are checked: an id < 0 or >= `input_dim` raises a
    ValueError naming the id (JAX would silently clamp it, TensorFlow would
    fail deep inside the gather). Inside `tf.function`/`jit` no check runs.

    Args:
        input_dim: int > 0, vocabulary size.
        output_dim: int > 0, embedding width.
        tie_weights: bool, reuse the embedding matrix for `reverse=True`.
        embeddings_initializer: initializer for `embeddings` (and for
            `reverse_embeddings` when untied).
        mask_zero: bool, id 0 is padding: the output of a forward call carries
            the Keras mask `ids != 0`.
        reverse_dtype: "compute" (default) computes the logits in the layer's
            compute dtype; a float dtype name (e.g. "float32") casts hidden
            states and kernel to it and returns logits in that dtype, which
            keeps a large-vocabulary softmax/loss accurate under mixed
            precision.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: int ids (batch, length), or hidden states
            (batch, length, output_dim) when `reverse=True`.
        reverse: bool, project to logits instead of embedding.

    Shapes:
        forward: (batch, length) -> (batch, length, output_dim), compute dtype.
        reverse: (batch, length, output_dim) -> (batch, length, input_dim).

    Masking: with `mask_zero=True` a forward call attaches `ids != 0` to its
    output; a reverse call passes the mask of its hidden states through (the
    logits keep the (batch, length) mask). For ids `[[5, 2, 0]]` the mask is
    `[[True, True, False]]`.

    Example:
    >>> embedding = ReversibleEmbedding(input_dim=10, output_dim=4)
    >>> hidden = embedding(np.array([[1, 2, 3]]))       # (1, 3, 4)
    >>> logits = embedding(hidden, reverse=True)       # (1, 3, 10)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        tie_weights=True,
        embeddings_initializer="uniform",
        mask_zero=False,
        reverse_dtype="compute",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int(input_dim, "input_dim")
        check_positive_int(output_dim, "output_dim")
        check_bool(tie_weights, "tie_weights")
        check_bool(mask_zero, "mask_zero")
        if reverse_dtype != "compute":
            try:
                standardized = keras.backend.standardize_dtype(reverse_dtype)
            except (ValueError, TypeError):
                standardized = None
            if standardized is None or not keras.backend.is_float_dtype(standardized):
                raise ValueError(
                    'reverse_dtype must be "compute" or a float dtype name such as '
                    f'"float32"; received reverse_dtype={reverse_dtype!r}'
                )
            reverse_dtype = standardized
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.tie_weights = tie_weights
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.mask_zero = mask_zero
        self.reverse_dtype = reverse_dtype
        # Inputs and variables keep their dtypes (`autocast=False` here and on
        # each weight); `call` casts explicitly, since the reverse projection
        # may run in float32 even under a float16 policy.
        self.autocast = False

    def build(self, input_shape=None):
        # Weight shapes do not depend on the input (ids or hidden states).
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            autocast=False,
        )
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                name="reverse_embeddings",
                shape=(self.output_dim, self.input_dim),
                initializer=self.embeddings_initializer,
                autocast=False,
            )
        self.built = True

    def call(self, inputs, reverse=False):
        if reverse:
            dtype = self._reverse_compute_dtype()
            # (output_dim, input_dim)
            kernel = (
                ops.transpose(self.embeddings) if self.tie_weights else self.reverse_embeddings
            )
            return ops.matmul(ops.cast(inputs, dtype), ops.cast(kernel, dtype))
        check_token_ids(inputs, self.input_dim, self.name)
        if not keras.backend.standardize_dtype(inputs.dtype).startswith(("int", "uint")):
            inputs = ops.cast(inputs, "int32")
        outputs = ops.take(self.embeddings, inputs, axis=0)
        return ops.cast(outputs, self.compute_dtype)

    def compute_mask(self, inputs, previous_mask=None):
        # Integer inputs are ids (forward call); float inputs are hidden states
        # of a reverse call, whose (batch, length) mask passes through.
        if keras.backend.is_float_dtype(inputs.dtype):
            return previous_mask
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def _reverse_compute_dtype(self):
        return self.compute_dtype if self.reverse_dtype == "compute" else self.reverse_dtype

    def compute_output_shape(self, input_shape, reverse=False):
        input_shape = tuple(input_shape)
        if reverse:
            return input_shape[:-1] + (self.input_dim,)
        return input_shape + (self.output_dim,)

    def compute_output_spec(self, inputs, reverse=False):
        dtype = self._reverse_compute_dtype() if reverse else self.compute_dtype
        shape = self.compute_output_shape(inputs.shape, reverse=reverse)
        return keras.KerasTensor(shape, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "tie_weights": self.tie_weights,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "mask_zero": self.mask_zero,
                "reverse_dtype": self.reverse_dtype,
            }
        )
        return config
