"""Checks a request's tensors against the signature before the model sees them.

What TF Serving checks (`predict_util.cc`) and nothing more: input names
(its "input size does not match signature" message) and dtypes (no silent
casts: TF Serving's Session::Run rejects a wrong dtype too, and a TF1 feed
would otherwise cast). Shapes are not compared with the signature's declared
shape: a tensor of another shape goes to the model, and the model's own error
comes back as INVALID_ARGUMENT, as from TF Serving (half_plus_two, declared
[-1, 1], answers {"instances": [2.0, 3.0, 4.0]}). Token-id ranges are checked
by the exported graphs themselves.
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
    """dtype of one input against its TensorInfo (the shape is the model's business)."""
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


def validate_inputs(servable, signature_name, inputs):
    """Runs every check; `inputs` is {alias: numpy array}."""
    signature_def = servable.signature_defs[signature_name]
    check_input_names(signature_def, inputs)
    for alias, array in inputs.items():
        check_tensor(signature_name, alias, signature_def.inputs[alias], array)
