"""Checks a request's tensors against the signature before the model sees them.

Names (TensorFlow Serving's "input size does not match signature" message),
dtypes (no silent casts: a client that works here must work against
`tensorflow_model_server`, which does not cast either), shapes (rank and every
fixed dimension of the signature's TensorInfo) and, when the SavedModel
declares a vocabulary (`servable.VOCABULARY_FILE`), token ids in range.
Every failure is INVALID_ARGUMENT naming the signature, the input and the problem.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from serving.errors import invalid_argument


def dtype_name(dtype_enum):
    """TensorFlow's `DataType` enum name, e.g. DT_INT32."""
    return types_pb2.DataType.Name(dtype_enum)


def _numpy_dtype_name(dtype):
    try:
        return dtype_name(tf.as_dtype(dtype).as_datatype_enum)
    except TypeError:
        return str(dtype)


def shape_string(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def signature_shape(info):
    """The signature's shape as a list with -1 for unknown dims, or None for unknown rank."""
    if info.tensor_shape.unknown_rank:
        return None
    return [dim.size for dim in info.tensor_shape.dim]


def check_input_names(signature_def, names):
    """predict_util.cc `VerifyRequestInputsSize`, same message."""
    expected = set(signature_def.inputs)
    sent = set(names)
    if sent == expected:
        return
    extra, missing = sorted(sent - expected), sorted(expected - sent)
    if len(sent) != len(expected):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
    # Same count, different names: saved_model util GetInputValues' message.
    raise invalid_argument(
        f"input tensor alias not found in signature: {extra[0]}. "
        f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}.")


def check_tensor(signature_name, alias, info, array):
    """dtype and shape of one input against its TensorInfo."""
    expected = tf.as_dtype(info.dtype)
    if expected == tf.string:
        ok = array.dtype == object or array.dtype.kind == "S"
    else:
        ok = array.dtype == np.dtype(expected.as_numpy_dtype)
    if not ok:
        got = "DT_STRING" if array.dtype == object else _numpy_dtype_name(array.dtype)
        raise invalid_argument(
            f"input '{alias}' of signature '{signature_name}' has dtype {got}, "
            f"expected {dtype_name(info.dtype)}")
    shape = signature_shape(info)
    if shape is None:
        return
    if len(shape) != array.ndim or any(d >= 0 and d != a for d, a in zip(shape, array.shape)):
        raise invalid_argument(
            f"input '{alias}' of signature '{signature_name}' has shape {shape_string(array.shape)}, "
            f"expected {shape_string(shape)} (-1 = any size)")


def check_token_ids(signature_name, alias, array, vocabulary_size):
    """All ids in [0, vocabulary_size), else the first offender and its position."""
    if array.size == 0:
        return
    bad = (array < 0) | (array >= vocabulary_size)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise invalid_argument(
            f"input '{alias}' of signature '{signature_name}' has token id {int(array[index])} at index "
            f"{list(index)}, outside the vocabulary [0, {vocabulary_size}); "
            f"{int(bad.sum())} of {array.size} ids are out of range")


def validate_inputs(servable, signature_name, inputs):
    """Runs every check; `inputs` is {alias: numpy array}."""
    signature_def = servable.signature_defs[signature_name]
    check_input_names(signature_def, inputs)
    for alias, array in inputs.items():
        check_tensor(signature_name, alias, signature_def.inputs[alias], array)
        size = servable.vocabulary.get((signature_name, alias))
        if size is not None:
            check_token_ids(signature_name, alias, array, size)
