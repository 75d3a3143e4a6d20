"""Versions on disk: polling, swaps under load, policies, labels, failed loads, warmup."""

import os
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_log_pb2, prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2

from serving import ModelServer, ServerOptions
from serving.errors import ServingError
from tests.serving import models
from tests.serving.helpers import request, rest_json, wait_until

IDS = [[1, 2, 3]]


def states(server, name="lm"):
    status, body = rest_json(server.rest_port, "GET", f"/v1/models/{name}")
    return {int(s["version"]): s["state"] for s in body.get("model_version_status", [])} if status == 200 else {}


def test_new_version_swaps_in_under_load_with_zero_failures(built, tmp_path):
    base = str(tmp_path / "lm")
    models.install(built["lm1"], base, 1)
    options = ServerOptions(model_name="lm", model_base_path=base, port=0, rest_api_port=0,
                            file_system_poll_wait_seconds=0.2)
    with ModelServer(options) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stop, failures, seen = threading.Event(), [], []
        expected = {v: models.lm_logits(v, IDS) for v in (1, 2)}

        def rest_loop():
            while not stop.is_set():
                status, body = rest_json(server.rest_port, "POST", "/v1/models/lm:predict", {"inputs": IDS})
                if status != 200 or not any(np.allclose(body["outputs"], e, rtol=1e-5, atol=1e-6)
                                            for e in expected.values()):
                    failures.append((status, body))

        def grpc_loop():
            request_ = predict_pb2.PredictRequest()
            request_.model_spec.name = "lm"
            request_.inputs["token_ids"].CopyFrom(tf.make_tensor_proto(np.int32(IDS)))
            while not stop.is_set():
                try:
                    response = stub.Predict(request_, timeout=30)
                    version = response.model_spec.version.value
                    seen.append(version)
                    if not np.allclose(tf.make_ndarray(response.outputs["logits"]), expected[version], rtol=1e-5,
                                       atol=1e-6):
                        failures.append(("wrong numbers for version", version))
                except grpc.RpcError as error:
                    failures.append((error.code(), error.details()))

        # A slow request on version 1 is still running when version 1 is retired.
        slow = {}
        slow_thread = threading.Thread(target=lambda: slow.update(result=rest_json(
            server.rest_port, "POST", "/v1/models/lm/versions/1:predict",
            {"signature_name": "slow", "inputs": [1.5]})))
        threads = [threading.Thread(target=loop) for loop in (rest_loop, rest_loop, grpc_loop)]
        for thread in threads:
            thread.start()
        slow_thread.start()
        time.sleep(0.3)
        models.install(built["lm2"], base, 2)  # tmp-export-2, then renamed to 2
        wait_until(lambda: states(server).get(2) == "AVAILABLE", timeout=30)
        wait_until(lambda: states(server).get(1) in ("UNLOADING", "END"), timeout=30)
        slow_thread.join(timeout=30)
        wait_until(lambda: states(server) == {1: "END", 2: "AVAILABLE"}, timeout=30)
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        channel.close()
    assert failures == []
    assert slow["result"][0] == 200 and slow["result"][1]["outputs"][0] >= 1.5
    assert 1 in seen and 2 in seen and seen[-1] == 2
    assert seen.index(2) > 0 and 1 not in seen[seen.index(2):]  # once 2 answers, 1 never does again


def _latest(base, count):
    return text_format.Parse(f"""model_config_list {{ config {{ name: "lm" base_path: "{base}"
        model_version_policy {{ latest {{ num_versions: {count} }} }} }} }}""", model_server_config_pb2.ModelServerConfig())


def test_policies_ignore_non_numeric_and_keep_serving_on_bad_version(built, tmp_path):
    base = str(tmp_path / "lm")
    models.install(built["lm1"], base, 1)
    models.install(built["lm2"], base, 2)
    os.makedirs(os.path.join(base, "tmp-export-3"))  # half-written export: ignored
    options = ServerOptions(model_config=_latest(base, 2), port=0, rest_api_port=0, file_system_poll_wait_seconds=0.2,
                            load_retry_interval_micros=0, max_num_load_retries=1)
    with ModelServer(options) as server:
        assert states(server) == {1: "AVAILABLE", 2: "AVAILABLE"}
        server.manager.reload_config(_latest(base, 1))  # latest 1: version 1 goes
        wait_until(lambda: states(server) == {1: "END", 2: "AVAILABLE"}, timeout=30)
        # A numeric folder that is not a SavedModel: its load fails; version 2 is the last one serving,
        # so it stays (availability preserving) and keeps answering.
        os.makedirs(os.path.join(base, "0003"))
        with open(os.path.join(base, "0003", "saved_model.pb"), "wb") as handle:
            handle.write(b"not a protobuf")
        wait_until(lambda: states(server).get(3) == "END", timeout=30)
        _, body = rest_json(server.rest_port, "GET", "/v1/models/lm/versions/3")
        failure = body["model_version_status"][0]["status"]
        assert failure["error_code"] != "OK" and "SavedModel" in failure["error_message"]
        time.sleep(0.5)  # a few more polls (with retries) change nothing
        assert states(server) == {1: "END", 2: "AVAILABLE", 3: "END"}
        status, body = rest_json(server.rest_port, "POST", "/v1/models/lm:predict", {"inputs": IDS})
        assert status == 200
        np.testing.assert_allclose(body["outputs"], models.lm_logits(2, IDS), rtol=1e-5, atol=1e-6)


def _config(base, labels=""):
    return text_format.Parse(f"""model_config_list {{ config {{ name: "lm" base_path: "{base}"
        model_version_policy {{ all {{}} }} {labels} }} }}""", model_server_config_pb2.ModelServerConfig())


def test_labels_need_available_versions_and_reload_config_rpc(built, tmp_path):
    base = str(tmp_path / "lm")
    models.install(built["lm1"], base, 1)
    models.install(built["lm2"], base, 2)
    labelled = _config(base, 'version_labels { key: "stable" value: 1 }')
    # As in tensorflow_model_server, labels are checked before anything loads.
    with pytest.raises(ServingError, match="Request to assign label to version 1 of model lm, which is not "
                                           "currently available for inference"):
        ModelServer(ServerOptions(model_config=labelled, port=0)).start()
    with ModelServer(ServerOptions(model_config=_config(base), port=0, rest_api_port=0,
                                   file_system_poll_wait_seconds=0)) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        reply = stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=labelled), timeout=60)
        assert reply.status.error_code == 0
        status, body = rest_json(server.rest_port, "POST", "/v1/models/lm/labels/stable:predict", {"inputs": IDS})
        np.testing.assert_allclose(body["outputs"], models.lm_logits(1, IDS), rtol=1e-5, atol=1e-6)
        bad = _config(base, 'version_labels { key: "stable" value: 7 }')
        with pytest.raises(grpc.RpcError) as caught:
            stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=bad), timeout=60)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert rest_json(server.rest_port, "POST", "/v1/models/lm/labels/stable:predict", {"inputs": IDS})[0] == 200
        channel.close()


def _write_warmup(path, inputs):
    log = prediction_log_pb2.PredictionLog()
    for alias, value in inputs.items():
        log.predict_log.request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(path, "assets.extra", "tf_serving_warmup_requests")) as writer:
        writer.write(log.SerializeToString())


def test_warmup_and_malformed_vocabulary_file(built, tmp_path):
    base = str(tmp_path / "lm")
    _write_warmup(models.install(built["lm1"], base, 1), {"token_ids": np.int32([[1, 2]])})
    bad_warmup = models.install(built["lm2"], str(tmp_path / "bad_warmup"), 2)
    _write_warmup(bad_warmup, {"token_ids": np.int32([[99]])})  # out of the vocabulary: the graph's gather fails
    bad_vocabulary = models.install(built["lm2"], str(tmp_path / "bad_vocabulary"), 2)
    with open(os.path.join(bad_vocabulary, "assets.extra", "vocabulary.json"), "w") as handle:
        handle.write('{"vocabulary_size": -3, "token_id_inputs": ["token_ids"]}')
    config = text_format.Parse(f"""model_config_list {{
        config {{ name: "lm" base_path: "{base}" }}
        config {{ name: "bad_warmup" base_path: "{tmp_path / 'bad_warmup'}" }}
        config {{ name: "bad_vocabulary" base_path: "{tmp_path / 'bad_vocabulary'}" }} }}""",
                               model_server_config_pb2.ModelServerConfig())
    with ModelServer(ServerOptions(model_config=config, port=0, rest_api_port=0,
                                   file_system_poll_wait_seconds=0)) as server:
        assert states(server) == {1: "AVAILABLE"}
        _, body = rest_json(server.rest_port, "GET", "/v1/models/bad_warmup")
        entry = body["model_version_status"][0]
        assert entry["state"] == "END" and "is not in [0, 16)" in entry["status"]["error_message"], entry
        # assets.extra/vocabulary.json is not read (TF Serving does not read it either): the version loads.
        _, body = rest_json(server.rest_port, "GET", "/v1/models/bad_vocabulary")
        assert body["model_version_status"][0]["state"] == "AVAILABLE", body
        assert request(server.rest_port, "POST", "/v1/models/bad_warmup:predict", {"inputs": IDS})[0] == 404


def test_config_file_polling_applies_edits(built, tmp_path):
    base = str(tmp_path / "lm")
    models.install(built["lm1"], base, 1)
    models.install(built["lm2"], base, 2)
    config_file = tmp_path / "models.config"
    config_file.write_text(text_format.MessageToString(_config(base)))
    options = ServerOptions(model_config_file=str(config_file), model_config_file_poll_wait_seconds=0.2, port=0,
                            rest_api_port=0, file_system_poll_wait_seconds=0)
    with ModelServer(options) as server:
        path = "/v1/models/lm/labels/stable:predict"
        assert rest_json(server.rest_port, "POST", path, {"inputs": IDS})[0] == 400  # no label yet
        config_file.write_text(text_format.MessageToString(_config(base, 'version_labels { key: "stable" value: 2 }')))
        wait_until(lambda: rest_json(server.rest_port, "POST", path, {"inputs": IDS})[0] == 200, timeout=30)
        np.testing.assert_allclose(rest_json(server.rest_port, "POST", path, {"inputs": IDS})[1]["outputs"],
                                   models.lm_logits(2, IDS), rtol=1e-5, atol=1e-6)
