"""`python -m serving` as a process: flags, startup, SIGTERM finishing in-flight requests."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.main import main, options_from_args, parse_args
from tests.serving import models
from tests.serving.helpers import repo_root, rest_json


def test_flags_use_tensorflow_model_server_names(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--port", "--rest_api_port", "--model_name", "--model_base_path", "--model_config_file",
                 "--enable_batching", "--batching_parameters_file", "--file_system_poll_wait_seconds",
                 "--rest_api_timeout_in_ms", "--max_request_bytes", "--bind_address"):
        assert flag in text
    options = options_from_args(parse_args(["--model_base_path=/m", "--rest_api_port=0", "--enable_batching"]))
    assert (options.rest_api_port, options.enable_batching, options.bind_address, options.port) == (
        None, True, "127.0.0.1", 8500)
    options = options_from_args(parse_args(["--model_base_path", "/m", "--rest_api_port", "8501",
                                            "--enable_batching=false", "--enable_model_warmup=false"]))
    assert (options.rest_api_port, options.enable_batching, options.enable_model_warmup) == (8501, False, False)


def test_startup_errors_exit_1_with_a_message(tmp_path, capsys):
    (tmp_path / "bad.config").write_text("model_config_list { config { name: 'a' } }")
    assert main([f"--model_config_file={tmp_path / 'bad.config'}", "--port=8500"]) == 1
    assert "Model a has no base_path" in capsys.readouterr().err
    assert main(["--port=8500"]) == 1
    assert "--model_base_path" in capsys.readouterr().err
    assert main(["--port=0"]) == 1  # TF Serving: --port=0 turns gRPC over TCP off, and then a socket is needed
    assert "At least one of --port or --grpc_socket_path" in capsys.readouterr().err


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sigterm_finishes_in_flight_requests(built, tmp_path):
    base = tmp_path / "models"
    models.install(built["lm1"], str(base / "lm"), 1)
    models.build_text(str(base / "txt" / "1"))
    (tmp_path / "models.config").write_text(f"""model_config_list {{
        config {{ name: "lm" base_path: "{base / 'lm'}" }}
        config {{ name: "txt" base_path: "{base / 'txt'}" }} }}""")
    rest_port = _free_port()
    env = dict(os.environ, PYTHONPATH=repo_root(), TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", f"--port={_free_port()}", f"--rest_api_port={rest_port}",
         f"--model_config_file={tmp_path / 'models.config'}", "--file_system_poll_wait_seconds=0"],
        cwd=repo_root(), env=env, stderr=subprocess.PIPE, text=True)
    lines, ready = [], threading.Event()

    def read_log():
        for line in process.stderr:
            lines.append(line)
            if "Exporting HTTP/REST API" in line:
                ready.set()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        assert ready.wait(180), "".join(lines)
        grpc_port = int(re.search(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
        # tf-text ops are registered, as in the official tensorflow_model_server build.
        status, body = rest_json(rest_port, "POST", "/v1/models/txt:predict", {"instances": ["ｆｕｌｌ"]})
        assert (status, body) == (200, {"predictions": ["full"]})

        results = {}
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "lm", "slow"
        request.inputs["seconds"].CopyFrom(tf.make_tensor_proto(np.float32([2.0])))
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        calls = [
            threading.Thread(target=lambda: results.update(rest=rest_json(
                rest_port, "POST", "/v1/models/lm:predict", {"signature_name": "slow", "inputs": [2.0]}))),
            threading.Thread(target=lambda: results.update(grpc=stub.Predict(request, timeout=60))),
        ]
        for call in calls:
            call.start()
        time.sleep(0.8)  # both requests are running inside the model now
        process.send_signal(signal.SIGTERM)
        for call in calls:
            call.join(timeout=60)
        assert process.wait(timeout=60) == 0, "".join(lines)
        channel.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert results["rest"][0] == 200 and results["rest"][1]["outputs"][0] >= 2.0
    assert tf.make_ndarray(results["grpc"].outputs["waited"])[0] >= 2.0
    assert any("Received SIGTERM" in line for line in lines)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", rest_port), timeout=5).close()
