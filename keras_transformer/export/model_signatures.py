"""`serving_default` (the model's forward pass on ids) and its int64 twin.

Inputs and outputs carry the Keras model's own names: BERT `token_ids`,
`segment_ids`, `padding_mask` (+ `mask_positions` for BertMaskedLM); GPT
`token_ids`, `padding_mask`; T5 `encoder_token_ids`, `encoder_padding_mask`,
`decoder_token_ids`, `decoder_padding_mask`; ViT `images`; outputs `logits`,
`sequence_output`, `pooled_output`, `embeddings`, ... Every token input is
(batch, length) with both axes dynamic. ViT `images` are (batch, height,
width, channels) float32 pixels already normalised as
`keras_transformer.models.vit.preprocess_images` makes them, any height and
width of at least `patch_size` (the position table is resampled); the
`classify_image` signature takes encoded files instead.

Requests are rejected (INVALID_ARGUMENT, nothing truncated) when a sequence is
empty or longer than the model's `max_sequence_length`, an id is outside the
vocabulary (or a segment id outside `num_segments`, a mask position outside
the sequence), or inputs that belong together differ in shape.

`serving_default_int64` is the same function on int64 inputs (tf.Example and
most non-Python clients produce int64); values must fit in int32.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.export.signature_spec import Signature, assert_all, checked

INT64_SUFFIX = "_int64"
# Inputs that must have equal shapes, per family.
SHAPE_GROUPS = (
    ("token_ids", "segment_ids", "padding_mask"),
    ("encoder_token_ids", "encoder_padding_mask"),
    ("decoder_token_ids", "decoder_padding_mask"),
)


def model_config(model):
    """The family config dataclass (BERT/GPT/T5) of a model or task, or None for other models."""
    return getattr(getattr(model, "backbone", model), "model_config", None)


def input_names(model):
    inputs = model.input
    if isinstance(inputs, dict):
        return list(inputs)
    return [tensor.name for tensor in keras.tree.flatten(inputs)]


def input_specs(model, integer_dtype=None):
    """Signature input name -> TensorSpec; integer inputs become `integer_dtype` when given."""
    tensors = keras.tree.flatten(model.input) if not isinstance(model.input, dict) else model.input.values()
    specs = {}
    for name, tensor in zip(input_names(model), tensors):
        dtype = tf.as_dtype(tensor.dtype)
        if integer_dtype is not None and dtype.is_integer:
            dtype = integer_dtype
        specs[name] = tf.TensorSpec((None,) + tuple(tensor.shape[1:]), dtype, name=name)
    return specs


def call_model(model, inputs):
    """Runs the Keras model on a dict of named inputs; returns a dict of named outputs."""
    names = input_names(model)
    if isinstance(model.input, dict):
        outputs = model(inputs, training=False)
    else:
        ordered = [inputs[name] for name in names]
        outputs = model(ordered if len(ordered) > 1 else ordered[0], training=False)
    if isinstance(outputs, dict):
        return dict(outputs)
    return dict(zip(model.output_names, keras.tree.flatten(outputs)))


def input_checks(model, inputs):
    """Assert ops for the request rules in the module docstring (family models only)."""
    config = model_config(model)
    if config is None:
        return []
    checks = []
    limit = config.max_sequence_length
    for name, value in inputs.items():
        if name == "images":  # (batch, height, width, channels); any size of at least one patch
            patch = config.patch_size
            checks.append(assert_all(tf.shape(value)[1:3] >= patch,
                                     f"images: height and width must be at least patch_size={patch}; "
                                     f"height, width:", tf.shape(value)[1:3]))
            continue
        if name == "mask_positions":
            length = tf.shape(inputs["token_ids"])[1]
            checks.append(assert_all((value >= 0) & (value < tf.cast(length, value.dtype)),
                                     "mask_positions must index the sequence: 0 <= position < length", length))
            continue
        checks.append(assert_all((tf.shape(value)[1] <= limit) & (tf.shape(value)[1] >= 1),
                                 f"{name}: sequence length must be in [1, max_sequence_length={limit}]; length:",
                                 tf.shape(value)[1]))
        if name.endswith("token_ids"):
            size = config.vocabulary_size
            checks.append(assert_all((value >= 0) & (value < size),
                                     f"{name}: token ids must be in [0, {size}); min, max:",
                                     tf.reduce_min(value), tf.reduce_max(value)))
        if name == "segment_ids":
            size = config.num_segments
            checks.append(assert_all((value >= 0) & (value < size),
                                     f"segment_ids must be in [0, {size}); min, max:",
                                     tf.reduce_min(value), tf.reduce_max(value)))
    for group in SHAPE_GROUPS:
        present = [name for name in group if name in inputs]
        for name in present[1:]:
            checks.append(assert_all(tf.equal(tf.shape(inputs[name]), tf.shape(inputs[present[0]])),
                                     f"{name} and {present[0]} must have the same shape; shapes:",
                                     tf.shape(inputs[name]), tf.shape(inputs[present[0]])))
    return checks


def sample_inputs(model, batch_size=2, length=8, seed=0):
    """A valid (batch, length) request with padding in the last row (decoder: length - 3)."""
    config = model_config(model)
    rng = np.random.default_rng(seed)
    specs = input_specs(model)
    if config is not None:
        length = min(length, config.max_sequence_length)
    vocabulary = min(getattr(config, "vocabulary_size", 2), 100)
    sample = {}
    for name, spec in specs.items():
        size = max(length - 3, 2) if name.startswith("decoder") else length
        shape = (batch_size, size) + tuple(spec.shape[2:])
        if name.endswith("padding_mask"):
            value = np.ones(shape, "int32")
            value[-1, size // 2 :] = 0
        elif name == "segment_ids":
            value = np.zeros(shape, "int32")
            value[:, size // 2 :] = min(1, config.num_segments - 1)
        elif name == "mask_positions":
            value = np.array([[1, 2]] * batch_size, "int32")
        elif name == "images":  # normalised pixels of the model's image size
            size = config.image_size
            value = rng.uniform(-1.0, 1.0, (batch_size, size, size, config.num_channels)).astype("float32")
        elif spec.dtype.is_integer:
            value = rng.integers(1, max(vocabulary, 2), shape).astype(spec.dtype.as_numpy_dtype)
        else:
            value = rng.standard_normal(shape).astype(spec.dtype.as_numpy_dtype)
        sample[name] = value
    return sample


def serving_signatures(model):
    """[serving_default, serving_default_int64] for `model` (the int64 twin only when inputs are integers)."""
    specs = input_specs(model)
    dtypes = {name: spec.dtype for name, spec in specs.items()}

    def forward(inputs):
        inputs = checked(inputs, input_checks(model, inputs))
        return call_model(model, {name: tf.cast(value, dtypes[name]) for name, value in inputs.items()})

    def reference(sample):
        outputs = call_model(model, {name: tf.constant(value, dtypes[name]) for name, value in sample.items()})
        return {name: keras.ops.convert_to_numpy(value) for name, value in outputs.items()}

    sample = sample_inputs(model)
    signatures = [Signature(
        "serving_default", specs, forward,
        "The model's forward pass: " + ", ".join(specs) + " -> its named outputs. Over-long "
        "sequences and out-of-range ids are rejected (INVALID_ARGUMENT), never truncated.",
        sample, reference,
    )]
    if any(spec.dtype.is_integer for spec in specs.values()):
        wide = input_specs(model, integer_dtype=tf.int64)
        signatures.append(Signature(
            "serving_default" + INT64_SUFFIX, wide, forward,
            "serving_default with int64 integer inputs (for tf.Example-style clients); values must fit int32.",
            {name: value.astype(wide[name].dtype.as_numpy_dtype) for name, value in sample.items()}, reference,
        ))
    return signatures
