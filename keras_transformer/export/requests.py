"""Example requests for a signature: the TF Serving warm-up file, REST JSON and gRPC PredictRequests.

The warm-up file is `assets.extra/tf_serving_warmup_requests`, a TFRecord of
`PredictionLog` protos (one `PredictRequest` per signature). TF Serving
replays it when it loads the version (`--enable_model_warmup`, on by
default), so tracing and first-run costs are paid before the first real
request.
"""

import base64
import json
import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.layout import WARMUP_FILE  # noqa: F401  (re-exported: requests.WARMUP_FILE)



_TYPED_FIELDS = {"float32": "float_val", "float64": "double_val", "int32": "int_val", "int64": "int64_val",
                 "bool": "bool_val"}


def tensor_proto(value):
    """A TensorProto with typed value fields (`int_val`, `float_val`, `string_val`, ...).

    TF Serving accepts these and `tensor_content` alike; typed fields keep a
    printed request readable.
    """
    array = np.asarray(value)
    proto = tf.make_tensor_proto(array)
    field = _TYPED_FIELDS.get(array.dtype.name)
    if field is not None and proto.tensor_content:
        proto.ClearField("tensor_content")
        getattr(proto, field).extend(array.reshape(-1).tolist())
    return proto


def predict_request(model_name, signature_name, sample):
    """A `PredictRequest` for `sample` (dict of NumPy arrays, strings as bytes)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, value in sorted(sample.items()):
        request.inputs[name].CopyFrom(tensor_proto(value))
    return request


READABLE_BYTES = 16 * 1024


def readable(request):
    """Whether a request is small enough to print as an example (a decoding state is not)."""
    return request.ByteSize() <= READABLE_BYTES


def write_warmup(version_dir, model_name, signatures):
    """Writes one PredictRequest per signature; returns the file's path."""
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature in signatures:
            request = predict_request(model_name, signature.name, signature.sample)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup(version_dir):
    """The `PredictRequest`s of a warm-up file, in order (ValueError if a record is not a PredictionLog)."""
    path = os.path.join(version_dir, WARMUP_FILE)
    requests = []
    for index, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: record {index} is not a predict_log")
        requests.append(log.predict_log.request)
    return requests


def _json_value(value, binary=False):
    if isinstance(value, bytes):
        if not binary:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


def rest_body(signature_name, inputs):
    """The REST `:predict` body: row format ("instances": one object per batch row) when every input has
    the same batch size, else columnar ("inputs": one array per input). Strings of inputs named `*_bytes`
    (TF Serving's convention for binary data) and strings that are not UTF-8 go as {"b64": ...}."""
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    if len({array.shape[0] if array.ndim else -1 for array in arrays.values()}) != 1:
        return {"signature_name": signature_name,
                "inputs": {name: _to_json(a, name.endswith("_bytes")) for name, a in sorted(arrays.items())}}
    rows = len(next(iter(arrays.values())))
    instances = [{name: _to_json(array[row], name.endswith("_bytes")) for name, array in sorted(arrays.items())}
                 for row in range(rows)]
    return {"signature_name": signature_name, "instances": instances}


def _to_json(array, binary=False):
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "S":
        flat = [_json_value(v, binary) for v in array.reshape(-1)]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    return array.tolist()


def request_inputs(request):
    """A PredictRequest's inputs as NumPy arrays (strings as bytes)."""
    return {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def rest_example(model_name, request, host="localhost:8501"):
    """A curl command for the REST equivalent of a warm-up PredictRequest."""
    body = json.dumps(rest_body(request.model_spec.signature_name, request_inputs(request)))
    body = body.replace("'", "'\\''")  # inside a single-quoted shell word
    return (f"curl -s -X POST http://{host}/v1/models/{model_name}:predict "
            f"-H 'Content-Type: application/json' -d '{body}'")
