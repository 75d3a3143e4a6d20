"""Beyond TF Serving: the model list, health URLs, the access log and HTTPS on the REST port."""

import datetime
import http.client
import json
import ssl

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import ModelServer, ServerOptions
from tests.serving.helpers import request, rest_json


def test_get_v1_models_lists_every_model_with_its_versions(server):
    status, body = rest_json(server.rest_port, "GET", "/v1/models")
    assert status == 200
    listed = {entry["name"]: entry["model_version_status"] for entry in body["models"]}
    assert sorted(listed) == ["clf", "lm"]
    assert {(e["version"], e["state"]) for e in listed["lm"]} == {("1", "AVAILABLE"), ("2", "AVAILABLE")}
    assert rest_json(server.rest_port, "GET", "/v1/models/")[0] == 400  # TF Serving's "Malformed request"
    # A model's own status is unchanged: TF Serving's answer.
    assert rest_json(server.rest_port, "GET", "/v1/models/clf")[1]["model_version_status"][0]["state"] == "AVAILABLE"


def test_health_urls(server, tmp_path):
    assert rest_json(server.rest_port, "GET", "/v3/health/live") == (200, {"status": "live"})
    assert rest_json(server.rest_port, "GET", "/v3/health/ready") == (200, {"status": "ready", "models": ["clf", "lm"]})
    assert request(server.rest_port, "POST", "/v3/health/ready", b"")[0] == 405
    empty = tmp_path / "empty"
    empty.mkdir()  # a model base path without any version: never ready
    options = ServerOptions(model_name="waiting", model_base_path=str(empty), port=None, rest_api_port=0,
                            file_system_poll_wait_seconds=0)
    with ModelServer(options) as waiting:
        assert rest_json(waiting.rest_port, "GET", "/v3/health/live")[0] == 200
        status, body = rest_json(waiting.rest_port, "GET", "/v3/health/ready")
        assert status == 503 and body["models_without_an_available_version"] == ["waiting"]


def test_access_log_has_one_json_line_per_request_and_no_tensor_contents(model_base, tmp_path):
    log_path = tmp_path / "access.log"
    options = ServerOptions(model_name="lm", model_base_path=str(model_base / "lm"), port=0, rest_api_port=0,
                            file_system_poll_wait_seconds=0, access_log_file=str(log_path))
    with ModelServer(options) as running:
        assert request(running.rest_port, "POST", "/v1/models/lm:predict", {"instances": [[13, 1]]})[0] == 200
        assert request(running.rest_port, "POST", "/v1/models/lm:predict", {"instances": [["x"]]})[0] == 400
        assert request(running.rest_port, "GET", "/v1/models/lm/metadata")[0] == 200
        with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            call = predict_pb2.PredictRequest()
            call.model_spec.name = "lm"
            call.inputs["token_ids"].CopyFrom(tf.make_tensor_proto(np.int32([[13, 2]])))
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(call, timeout=30)
            call.model_spec.name = "nope"
            with pytest.raises(grpc.RpcError):
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(call, timeout=30)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(lines) == 5
    ok, bad, metadata, grpc_ok, grpc_bad = lines
    assert ok["entrypoint"] == "rest" and ok["method"] == "POST" and ok["path"] == "/v1/models/lm:predict"
    assert (ok["api"], ok["model"], ok["version"], ok["signature"], ok["status"]) == (
        "predict", "lm", 2, "serving_default", 200)
    assert ok["bytes_in"] > 0 and ok["bytes_out"] > 0 and ok["latency_ms"] >= 0
    assert ok["peer"].startswith("127.0.0.1:")
    datetime.datetime.fromisoformat(ok["time"].replace("Z", "+00:00"))
    assert bad["status"] == 400 and metadata["api"] == "metadata" and metadata["version"] == 2
    assert (grpc_ok["entrypoint"], grpc_ok["api"], grpc_ok["status"], grpc_ok["model"]) == ("grpc", "Predict", "OK", "lm")
    assert grpc_bad["status"] == "NOT_FOUND" and "model" not in grpc_bad
    # Only these fields, each a plain value: no field can carry a tensor's contents.
    allowed = {"time", "entrypoint", "peer", "method", "path", "api", "model", "version", "signature", "status",
               "latency_ms", "bytes_in", "bytes_out"}
    assert all(set(line) <= allowed for line in lines), [set(line) - allowed for line in lines]
    assert all(isinstance(v, (str, int, float)) for line in lines for v in line.values())


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "rest.crt", tmp_path / "rest.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_https_on_the_rest_port(model_base, tmp_path):
    cert, key = _self_signed(tmp_path)
    options = ServerOptions(model_name="clf", model_base_path=str(model_base / "clf"), port=None, rest_api_port=0,
                            file_system_poll_wait_seconds=0, rest_api_ssl_cert_file=cert, rest_api_ssl_key_file=key)
    with ModelServer(options) as running:
        context = ssl.create_default_context(cafile=cert)
        connection = http.client.HTTPSConnection("localhost", running.rest_port, context=context, timeout=30)
        connection.request("POST", "/v1/models/clf:classify", body=json.dumps({"examples": [{"x": [1.0, 2.0]}]}))
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["results"][0][0][0] == "neg"
        connection.close()
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            request(running.rest_port, "GET", "/v1/models/clf", timeout=5)  # plain HTTP gets no HTTP answer
    with pytest.raises(Exception, match="go together"):
        ModelServer(ServerOptions(model_name="clf", model_base_path=str(model_base / "clf"), port=None,
                                  rest_api_port=0, rest_api_ssl_cert_file=cert))
