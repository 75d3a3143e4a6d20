"""Beyond TF Serving: the model list, health URLs, the access log and HTTPS on the REST port."""

import dataclasses
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


def _pem(certificate=None, key=None):
    from cryptography.hazmat.primitives import serialization

    if certificate is not None:
        return certificate.public_bytes(serialization.Encoding.PEM)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(common_name, issuer=None, ca=False):
    """(certificate, key): signed by `issuer` ((certificate, key)), else self-signed; SAN localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _self_signed(tmp_path):
    certificate, key = _certificate("localhost")
    cert_path, key_path = tmp_path / "rest.crt", tmp_path / "rest.key"
    cert_path.write_bytes(_pem(certificate))
    key_path.write_bytes(_pem(key=key))
    return str(cert_path), str(key_path)


def _status(channel, name="clf"):
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)


def test_grpc_tls_and_mutual_tls_from_an_ssl_config(model_base, tmp_path):
    from google.protobuf import text_format

    from serving.config import SSLConfig

    authority = _certificate("test CA", ca=True)
    server_cert, server_key = _certificate("localhost", authority)
    client_cert, client_key = _certificate("client", authority)
    stranger_cert, stranger_key = _certificate("stranger")  # signed by nobody the server trusts
    override = (("grpc.ssl_target_name_override", "localhost"),)
    for client_verify in (False, True):
        config = SSLConfig(server_key=_pem(key=server_key).decode(), server_cert=_pem(server_cert).decode(),
                           custom_ca=_pem(authority[0]).decode(), client_verify=client_verify)
        path = tmp_path / f"ssl-{client_verify}.config"
        path.write_text(text_format.MessageToString(config))
        options = ServerOptions(model_name="clf", model_base_path=str(model_base / "clf"), port=0, rest_api_port=None,
                                file_system_poll_wait_seconds=0, ssl_config_file=str(path))
        with ModelServer(options) as running:
            target = f"127.0.0.1:{running.grpc_port}"
            trusted = grpc.ssl_channel_credentials(root_certificates=_pem(authority[0]),
                                                   private_key=_pem(key=client_key), certificate_chain=_pem(client_cert))
            with grpc.secure_channel(target, trusted, options=override) as channel:
                assert _status(channel).model_version_status[0].state == 30  # AVAILABLE
            anonymous = grpc.ssl_channel_credentials(root_certificates=_pem(authority[0]))
            strangers = grpc.ssl_channel_credentials(root_certificates=_pem(authority[0]),
                                                     private_key=_pem(key=stranger_key),
                                                     certificate_chain=_pem(stranger_cert))
            for credentials in (anonymous, strangers):
                with grpc.secure_channel(target, credentials, options=override) as channel:
                    if client_verify:  # mutual TLS: only certificates the custom CA signed get in
                        with pytest.raises(grpc.RpcError) as refused:
                            _status(channel)
                        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                    else:
                        assert _status(channel).model_version_status
            with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError):
                _status(channel)  # plaintext gets nothing from a TLS port


def test_health_service_and_reflection_through_their_client_packages(model_base):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    options = ServerOptions(model_name="clf", model_base_path=str(model_base / "clf"), port=0, rest_api_port=None,
                            file_system_poll_wait_seconds=0, enable_grpc_healthcheck_service=True)
    with ModelServer(options) as running, grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=30)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
                "grpc.health.v1.Health", "keras_transformer.serving.Generation"} <= services


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


def _reload(channel, name, base_path):
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    request = model_management_pb2.ReloadConfigRequest()
    entry = request.config.model_config_list.config.add()
    entry.name, entry.base_path, entry.model_platform = name, str(base_path), "tensorflow"
    return model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=60)


def test_model_roots_and_the_reload_rpc_switch(model_base, tmp_path):
    from serving.errors import ServingError

    inside = tmp_path / "models"
    inside.mkdir()
    (inside / "clf").symlink_to(model_base / "clf")  # resolves outside the root
    with pytest.raises(ServingError, match="base_path of model clf is outside") as refused:
        ModelServer(ServerOptions(model_name="clf", model_base_path=str(inside / "clf"), port=None, rest_api_port=0,
                                  allowed_model_roots=str(inside))).start()
    assert str(model_base) not in str(refused.value)  # the path itself is not echoed
    options = ServerOptions(model_name="clf", model_base_path=str(model_base / "clf"), port=0, rest_api_port=None,
                            file_system_poll_wait_seconds=0, allowed_model_roots=f"{inside},{model_base}")
    with ModelServer(options) as running, grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as outside:
            _reload(channel, "elsewhere", tmp_path)  # tmp_path is in neither root
        assert outside.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _status(channel).model_version_status  # the old config still serves
        assert _reload(channel, "lm", model_base / "lm").status.error_code == 0  # inside a root: applied
    options = dataclasses.replace(options, enable_reload_config_rpc=False, allowed_model_roots="")
    with ModelServer(options) as running, grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as denied:
            _reload(channel, "lm", model_base / "lm")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert _status(channel).model_version_status
