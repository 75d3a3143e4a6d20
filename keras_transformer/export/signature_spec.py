"""What an exported signature is made of, and the checks every served function starts with."""

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Signature:
    """One SavedModel signature (a TF Serving `signature_name`).

    Attributes:
        name: the signature key.
        inputs: input name -> `tf.TensorSpec` (named; batch axis first and dynamic).
        function: `inputs dict -> outputs dict` of tensors; traced once, with
            autograph off (loops are `tf.while_loop`s).
        description: what it computes, its input rules and truncation policy
            (goes into the README beside the SavedModel).
        sample: a small valid request (NumPy arrays / bytes), used for the
            warm-up file, the verifier and the README examples (those small
            enough to read: not `generate_next`'s decoding state).
        reference: `sample -> dict of NumPy arrays` computed with the Keras
            model (not the exported graph); the verifier compares the reloaded
            SavedModel against it. None when there is nothing to compare.
        atol: tolerance on float outputs (ints and strings must match exactly).
        uses_tokenizer: whether the graph holds the tokenizer.
    """

    name: str
    inputs: dict
    function: Callable
    description: str
    sample: dict
    reference: Callable = None
    atol: float = 1e-4
    uses_tokenizer: bool = False

    def input_signature(self):
        return [dict(self.inputs)]


def checked(inputs, checks):
    """`inputs` passed through identity ops that run after every check (`tf.debugging` asserts).

    A failed check is an InvalidArgumentError carrying its message, which
    TensorFlow Serving returns as INVALID_ARGUMENT (HTTP 400).
    """
    with tf.control_dependencies([c for c in checks if c is not None]):
        return {name: tf.identity(value) for name, value in inputs.items()}


def row_settings(values, batch, name, dtype):
    """A per-row setting of shape (batch,) from (batch,) or (1,) (broadcast); else an error."""
    values = tf.cast(values, dtype)
    count = tf.shape(values)[0]
    check = tf.debugging.Assert(
        (count == batch) | (count == 1),
        [f"`{name}` needs one value per input row or a single value; rows, values:", batch, count],
    )
    with tf.control_dependencies([check]):
        return tf.broadcast_to(values, [batch])


def assert_all(condition, message, *data):
    """tf.debugging.Assert with a readable message (summarized data follows it)."""
    return tf.debugging.Assert(tf.reduce_all(condition), [message, *data], summarize=16)


def class_names(labels, num_classes):
    """The names a classifier's `label` output gives: `labels` as strings, else "0", "1", ..."""
    names = [str(i) for i in range(num_classes)] if labels is None else [str(label) for label in labels]
    if len(names) != num_classes:
        raise ValueError(f"labels has {len(names)} names but the classifier has num_classes={num_classes}")
    return names


def class_outputs(logits, names):
    """The outputs of every classifying signature: `probabilities` (batch, classes) float32 (softmax),
    `label_id` (batch,) int32 (argmax) and `label` (batch,) string (its name in `names`)."""
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return {"probabilities": probabilities, "label_id": label_id, "label": tf.gather(tf.constant(names), label_id)}


def as_numpy(outputs):
    return {name: np.asarray(value.numpy() if hasattr(value, "numpy") else value) for name, value in outputs.items()}
