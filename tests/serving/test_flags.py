"""tensorflow_model_server's flags: every one accepted; gRPC flags' effects observed."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import flags
from serving.config import parse_text_proto
from serving.errors import ServingError
from serving.grpc_server import parse_channel_arguments
from serving.main import options_from_args, parse_args
from tests.serving import models

VALUES = {int: "3", float: "0.5", str: "x", bool: "true"}


def test_every_flag_is_accepted_with_its_default():
    assert len(flags.FLAGS) == 48 and len({f.name for f in flags.FLAGS}) == 48
    args = parse_args([f"--{f.name}={VALUES[f.kind]}" for f in flags.FLAGS])
    assert args.unknown == []
    for flag in flags.FLAGS:
        assert getattr(args, flag.name) == flag.kind(VALUES[flag.kind]) if flag.kind is not bool else True
    defaults = parse_args([])
    assert (defaults.port, defaults.model_name, defaults.saved_model_tags, defaults.enable_model_warmup,
            defaults.max_num_load_retries, defaults.load_retry_interval_micros) == (8500, "default", "serve", True, 5,
                                                                                   60_000_000)
    bare = parse_args(["--enable_batching", "--enable_model_warmup=false", "--port", "9000", "--bogus=1"])
    assert (bare.enable_batching, bare.enable_model_warmup, bare.port, bare.unknown) == (True, False, 9000, ["--bogus=1"])
    options = options_from_args(parse_args(["--port=0", "--rest_api_port=0", "--rest_api_num_threads=7"]))
    assert (options.port, options.rest_api_port, options.rest_api_num_threads) == (None, None, 7)
    assert flags.log_without_effect(parse_args(["--enable_profiler=false"]), ["--enable_profiler=false"]) == [
        "enable_profiler"]


def test_channel_arguments_parse_as_tf_serving():
    assert parse_channel_arguments("grpc.max_connection_age_ms=2000,grpc.primary_user_agent=x") == [
        ("grpc.max_connection_age_ms", 2000), ("grpc.primary_user_agent", "x")]
    with pytest.raises(ServingError, match="expected key=value"):
        parse_channel_arguments("oops")


def test_text_proto_errors_use_tf_serving_wording():
    from tensorflow_serving.config import model_server_config_pb2

    with pytest.raises(ServingError, match=r"Error parsing text-format tensorflow\.serving\.ModelServerConfig: 1:21: .*no field named \"oops\""):
        parse_text_proto("model_config_list { oops: 1 }", model_server_config_pb2.ModelServerConfig(), "m.config")


def test_unix_socket_and_channel_arguments_reach_the_server(built, tmp_path):
    from serving import ModelServer, ServerOptions

    base = tmp_path / "m"
    models.install(built["lm1"], str(base), 1)
    socket = tmp_path / "grpc.sock"
    options = ServerOptions(model_name="lm", model_base_path=str(base), port=None, grpc_socket_path=str(socket),
                            file_system_poll_wait_seconds=0, grpc_channel_arguments="grpc.max_receive_message_length=200")
    with ModelServer(options) as server:
        assert server.grpc_port is None
        channel = grpc.insecure_channel(f"unix:{socket}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "lm"
        request.inputs["token_ids"].CopyFrom(tf.make_tensor_proto(np.int32([[1, 2]])))
        response = stub.Predict(request, timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["logits"]), models.lm_logits(1, [[1, 2]]),
                                   rtol=1e-5, atol=1e-6)
        request.inputs["token_ids"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 100), np.int32)))
        with pytest.raises(grpc.RpcError) as caught:  # 400+ bytes > grpc.max_receive_message_length=200
            stub.Predict(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        channel.close()
