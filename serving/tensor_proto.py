"""numpy arrays <-> `TensorProto`, as TensorFlow Serving writes them.

Responses use the typed repeated fields (`float_val`, `int_val`, ...) like
`Tensor::AsProtoField`, because clients written for TensorFlow Serving often
read `response.outputs["x"].float_val` directly; with `as_content=True`
(`--enable_serialization_as_tensor_content`) numbers go in `tensor_content`.
Requests may use either form; `tf.make_ndarray` reads both.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import invalid_argument

# DataType -> name of the typed field AsProtoField fills.
_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


def to_ndarray(proto, alias="?"):
    """A request TensorProto as a numpy array (object array of bytes for strings)."""
    try:
        array = tf.make_ndarray(proto)
    except Exception as error:  # noqa: BLE001 - malformed protos raise many types
        raise invalid_argument(f"input '{alias}' is not a valid TensorProto: {error}") from None
    if proto.dtype == types_pb2.DT_STRING and array.dtype != object:
        array = array.astype(object)
    return array


def from_ndarray(array, as_content=False):
    """A response TensorProto for `array`."""
    array = np.asarray(array)
    dtype = tf.as_dtype(array.dtype if array.dtype != object else tf.string)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    field = _FIELDS.get(proto.dtype)
    if proto.dtype == types_pb2.DT_HALF:
        proto.half_val.extend(array.ravel().view(np.uint16).tolist())
    elif field is None or (as_content and proto.dtype != types_pb2.DT_STRING):
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    elif proto.dtype == types_pb2.DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in array.ravel())
    else:
        getattr(proto, field).extend(array.ravel().tolist())
    return proto
