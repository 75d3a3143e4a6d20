"""Hostile gRPC Predict messages on loopback: each gets a status code (never a crash or a huge
allocation), and a good request succeeds right after."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import tensor_proto
from serving.errors import Code, ServingError


def _request(inputs, name="lm", signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for alias, proto in inputs.items():
        request.inputs[alias].CopyFrom(proto)
    return request


def _proto(dtype, dims, **values):
    proto = tensor_pb2.TensorProto(dtype=dtype, **values)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


HOSTILE = [
    # 78 bytes declaring ~10^12 elements: refused before anything is allocated.
    ({"token_ids": _proto(types_pb2.DT_INT32, [1000000, 1000000], int_val=[1])}, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"token_ids": _proto(types_pb2.DT_INT32, [2**40, 2**40], int_val=[1])}, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"token_ids": _proto(types_pb2.DT_STRING, [2**30], string_val=[b"a"])}, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"token_ids": _proto(types_pb2.DT_INT32, [-1, 3], int_val=[1])}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"token_ids": _proto(types_pb2.DT_INT32, [2, 2], tensor_content=b"\x00" * 3)}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"token_ids": _proto(types_pb2.DT_FLOAT, [1, 2], float_val=[1.0, 2.0])}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"token_ids": _proto(types_pb2.DT_INVALID, [1])}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"token_ids": _proto(types_pb2.DT_VARIANT, [1])}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"nope": _proto(types_pb2.DT_INT32, [1, 1], int_val=[1])}, grpc.StatusCode.INVALID_ARGUMENT),
    ({}, grpc.StatusCode.INVALID_ARGUMENT),
]


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def test_hostile_predict_messages_get_a_status_and_server_keeps_serving(stub):
    good = _request({"token_ids": tf.make_tensor_proto(np.int32([[1, 2, 3]]))})
    for inputs, code in HOSTILE:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(_request(inputs), timeout=30)
        assert caught.value.code() == code, (inputs, caught.value.details())
        assert "Traceback" not in caught.value.details()
        assert stub.Predict(good, timeout=30).outputs["logits"].tensor_shape.dim[2].size == 16
    for bad in (_request({}, name=""), _request({}, name="x" * 5000), _request({}, signature="\x00\xff")):
        with pytest.raises(grpc.RpcError):
            stub.Predict(bad, timeout=30)


def test_declared_size_is_checked_before_allocating():
    proto = _proto(types_pb2.DT_FLOAT, [4096, 4096, 4096], float_val=[0.0])
    with pytest.raises(ServingError) as caught:
        tensor_proto.to_ndarray(proto, "x", max_bytes=2**20)
    assert caught.value.code == Code.RESOURCE_EXHAUSTED and "274877906944 bytes" in caught.value.message
    small = _proto(types_pb2.DT_FLOAT, [2, 3], float_val=[1.5])  # TF repeats the last value
    np.testing.assert_array_equal(tensor_proto.to_ndarray(small, "x", max_bytes=2**20), np.full((2, 3), 1.5))
