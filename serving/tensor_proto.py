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

from serving.errors import Code, ServingError, invalid_argument

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


def declared_bytes(proto, alias="?"):
    """Bytes the dense array of `proto` would take (elements x item size; 8 per string element),
    from its shape alone: a short proto can declare a huge shape, which TensorFlow fills by
    repeating the last value."""
    elements = 1
    for dim in proto.tensor_shape.dim:
        if dim.size < 0:
            raise invalid_argument(f"input '{alias}' declares a negative dimension {dim.size} in its tensor_shape")
        elements *= dim.size
    try:
        itemsize = 8 if proto.dtype == types_pb2.DT_STRING else tf.as_dtype(proto.dtype).size
    except TypeError:
        raise invalid_argument(f"input '{alias}' has an unsupported dtype {proto.dtype}") from None
    return elements * itemsize


def to_ndarray(proto, alias="?", max_bytes=0):
    """A request TensorProto as a numpy array (object array of bytes for strings).

    With `max_bytes` (--max_request_bytes), a tensor whose declared shape needs more memory than
    that is rejected (RESOURCE_EXHAUSTED) before anything is allocated."""
    size = declared_bytes(proto, alias)
    if max_bytes and size > max_bytes:
        raise ServingError(Code.RESOURCE_EXHAUSTED, (
            f"input '{alias}' declares shape {[d.size for d in proto.tensor_shape.dim]} of "
            f"{types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() else proto.dtype}"
            f", {size} bytes, more than the limit of {max_bytes} bytes (--max_request_bytes)"))
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
