"""REST API against the shared server, with plain http.client (no client library)."""

import base64
import gzip
import json

import numpy as np

from tests.serving import models
from tests.serving.helpers import request, rest_json

IDS = [[1, 2, 3], [4, 5, 15]]


def test_status_versions_and_labels(server):
    status, body = rest_json(server.rest_port, "GET", "/v1/models/lm")
    assert status == 200
    assert body == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    status, body = rest_json(server.rest_port, "GET", "/v1/models/lm/versions/2")
    assert [s["version"] for s in body["model_version_status"]] == ["2"]
    # TF Serving quirk kept: status with a label lists every version.
    status, body = rest_json(server.rest_port, "GET", "/v1/models/lm/labels/stable")
    assert status == 200 and len(body["model_version_status"]) == 2


def test_status_unknown_model_and_version(server):
    assert rest_json(server.rest_port, "GET", "/v1/models/nope") == (
        404, {"error": "Could not find any versions of model nope"})
    assert rest_json(server.rest_port, "GET", "/v1/models/lm/versions/7") == (
        404, {"error": "Could not find version 7 of model lm"})


def test_metadata_shape(server):
    status, body = rest_json(server.rest_port, "GET", "/v1/models/lm/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "lm", "signature_name": "", "version": "2"}  # latest
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "pair", "generate", "slow", "__saved_model_init_op"} <= set(signatures)
    token_ids = signatures["serving_default"]["inputs"]["token_ids"]
    assert token_ids["dtype"] == "DT_INT32"
    assert token_ids["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}, {"size": "-1", "name": ""}],
                                         "unknown_rank": False}
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert signatures["serving_default"]["outputs"]["logits"]["tensor_shape"]["dim"][2]["size"] == "16"
    for path, version in (("/v1/models/lm/versions/1/metadata", "1"), ("/v1/models/lm/labels/canary/metadata", "2")):
        assert rest_json(server.rest_port, "GET", path)[1]["model_spec"]["version"] == version


def test_predict_row_and_columnar_identical_and_correct(server):
    _, row = rest_json(server.rest_port, "POST", "/v1/models/lm:predict", {"instances": IDS})
    _, columnar = rest_json(server.rest_port, "POST", "/v1/models/lm:predict", {"inputs": IDS})
    _, named = rest_json(server.rest_port, "POST", "/v1/models/lm:predict", {"inputs": {"token_ids": IDS}})
    assert row["predictions"] == columnar["outputs"] == named["outputs"]
    expected = models.lm_logits(2, IDS)  # latest version answers
    np.testing.assert_allclose(np.array(row["predictions"], np.float32), expected, rtol=1e-5, atol=1e-6)


def test_predict_version_and_label_paths(server):
    for path, version in (("/v1/models/lm/versions/1:predict", 1), ("/v1/models/lm/labels/stable:predict", 1),
                          ("/v1/models/lm/labels/canary:predict", 2), ("/v1/models/lm/versions/2:predict", 2)):
        status, body = rest_json(server.rest_port, "POST", path, {"inputs": IDS})
        assert status == 200, body
        np.testing.assert_allclose(body["outputs"], models.lm_logits(version, IDS), rtol=1e-5, atol=1e-6)


def test_predict_multi_input_signature_both_formats(server):
    instances = [{"token_ids": [1, 2], "scale": 2.0}, {"token_ids": [3, 4], "scale": 0.5}]
    _, row = rest_json(server.rest_port, "POST", "/v1/models/lm:predict",
                       {"signature_name": "pair", "instances": instances})
    _, columnar = rest_json(server.rest_port, "POST", "/v1/models/lm:predict",
                            {"signature_name": "pair", "inputs": {"token_ids": [[1, 2], [3, 4]], "scale": [2.0, 0.5]},
                             "ignored_key": 1})
    assert [r["total"] for r in row["predictions"]] == columnar["outputs"]["total"] == [6.0, 3.5]
    assert [r["logits"] for r in row["predictions"]] == columnar["outputs"]["logits"]


def test_predict_strings_and_bytes(server):
    body = {"signature_name": "generate", "instances": ["héllo", {"b64": base64.b64encode(b"ab").decode()}]}
    status, result = rest_json(server.rest_port, "POST", "/v1/models/lm/versions/1:predict", body)
    assert status == 200
    assert [p["text"] for p in result["predictions"]] == ["HéLLO v1", "AB v1"]  # upper() is ASCII-only in TF
    assert [p["length"] for p in result["predictions"]] == [6, 2]  # bytes
    # Outputs whose alias ends in _bytes come back base64-encoded.
    assert result["predictions"][1]["echo_bytes"] == {"b64": base64.b64encode(b"ab").decode()}


def test_content_type_and_gzip(server):
    payload = gzip.compress(json.dumps({"inputs": IDS}).encode())
    status, headers, data = request(server.rest_port, "POST", "/v1/models/lm:predict", payload,
                                    headers={"Content-Encoding": "gzip"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(data)["outputs"] == rest_json(server.rest_port, "POST", "/v1/models/lm:predict",
                                                    {"inputs": IDS})[1]["outputs"]


def _error(server, path, body, method="POST"):
    status, _, data = request(server.rest_port, method, path, body)
    return status, json.loads(data)["error"]


def test_bad_requests_are_400_naming_the_problem_and_server_keeps_serving(server):
    predict = "/v1/models/lm:predict"
    cases = [
        (b"{not json", "JSON Parse error"),
        (b"", "The document is empty"),
        (b"[1, 2]", "Is not object"),
        ({"instances": IDS, "inputs": IDS}, "expecting only one of 'inputs' or 'instances'"),
        ({"signature_name": 3, "inputs": IDS}, "'signature_name' key must be a string value"),
        ({"signature_name": "nope", "inputs": IDS}, 'Serving signature name: "nope" not found in signature def'),
        ({"inputs": {"ids": IDS}}, "Missing named input: token_ids in 'inputs' object."),
        ({"instances": [{"ids": [1]}]}, "does not have named input: ids"),
        ({"inputs": [[1.5, 2]]}, "is not of expected type: int32"),
        ({"inputs": [["a"]]}, "is not of expected type: int32"),
        ({"instances": [[1, 2, 3], [4, 5]]}, "Expecting tensor size: 3 but got: 2 (input 'token_ids'"),
        ({"inputs": [[1, 2, 3], [4, 5]]}, "Encountered list at unexpected size: 2 at level: 1"),
        # Shapes and id ranges are the model's to check, as in TF Serving: its message comes back,
        # without the Python frames TensorFlow appends.
        ({"inputs": [1, 2]}, "rank 3 but got: 2"),
        ({"inputs": [[1, 16]]}, "= 16 is not in [0, 16)"),
        ({"inputs": [[-1, 2]]}, "= -1 is not in [0, 16)"),
        ({"signature_name": "pair", "instances": [[1, 2]]}, "instances is a plain list"),
        ({"instances": []}, "No values in 'instances' array"),
        ({"nothing": 1}, "Missing 'inputs' or 'instances' key"),
    ]
    for body, needle in cases:
        status, message = _error(server, predict, body)
        assert status == 400, (body, message)
        assert needle in message, (body, message)
        assert 'File "' not in message and "most recent call last" not in message, message
    status, body = rest_json(server.rest_port, "POST", predict, {"inputs": IDS})
    assert status == 200 and len(body["outputs"]) == 2


def test_unknown_model_version_label(server):
    assert _error(server, "/v1/models/nope:predict", {"inputs": IDS}) == (
        404, "Servable not found for request: Latest(nope)")
    assert _error(server, "/v1/models/lm/versions/9:predict", {"inputs": IDS}) == (
        404, "Servable not found for request: Specific(lm, 9)")
    assert _error(server, "/v1/models/lm/labels/nope:predict", {"inputs": IDS}) == (
        400, "Unrecognized servable version label: nope")
    assert _error(server, "/v1/models/nope/metadata", None, "GET")[0] == 404
    # Invalid JSON is reported before the model is looked up, as in TF Serving.
    assert _error(server, "/v1/models/nope:predict", b"{")[0] == 400


def test_routing_errors(server):
    assert _error(server, "/v1/foo", None, "GET") == (400, "Malformed request: GET /v1/foo")
    assert _error(server, "/v1/models/lm:predict", None, "GET") == (400, "Malformed request: GET /v1/models/lm:predict")
    assert _error(server, "/v1/models/lm", {"inputs": IDS}) == (400, "Malformed request: POST /v1/models/lm")
    assert _error(server, "/v1/models/lm/versions/1/labels/x", None, "GET")[0] == 400
    assert _error(server, "/v1/models/versions/3", None, "GET") == (400, "Missing model name in request.")
    assert request(server.rest_port, "GET", "/v1/models")[0] == 200  # the model list (beyond TF Serving)
    assert _error(server, "/v1/models/lm/versions/18446744073709551615", None, "GET") == (
        400, "Failed to convert version: 18446744073709551615 to numeric.")
    status, headers, data = request(server.rest_port, "GET", "/elsewhere")
    assert status == 404 and not data.startswith(b"{")


def test_classify_and_regress(server):
    examples = [{"x": [1.0, 0.0]}, {"x": [0.0, 2.0]}]
    status, body = rest_json(server.rest_port, "POST", "/v1/models/clf:classify", {"examples": examples})
    assert status == 200
    assert [[c[0] for c in row] for row in body["results"]] == [["neg", "pos"], ["neg", "pos"]]
    np.testing.assert_allclose([row[1][1] for row in body["results"]], [1 / (1 + np.exp(-1)), 1 / (1 + np.exp(2))],
                               rtol=1e-6)
    status, body = rest_json(server.rest_port, "POST", "/v1/models/clf:regress",
                             {"signature_name": "regress", "context": {"bias": 1.5}, "examples": examples})
    assert status == 200 and body == {"results": [3.5, 3.5]}
    # A predict-style signature cannot classify; TF Serving says why.
    status, message = _error(server, "/v1/models/lm:classify", {"examples": examples})
    assert status == 400 and "No classification inputs found in SignatureDef" in message
    status, message = _error(server, "/v1/models/clf:regress", {"examples": examples})  # serving_default has 2 outputs
    assert status == 400 and message == "Expected one output Tensor."
    assert _error(server, "/v1/models/clf:classify", {"examples": [{"x": [1.0, [2.0]]}]})[0] == 400


def test_request_size_limit_keeps_connection_usable(server):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    big = json.dumps({"inputs": [[1] * (2**20 // 2)]}).encode()  # > max_request_bytes (1 MiB)
    connection.request("POST", "/v1/models/lm:predict", body=big)
    response = connection.getresponse()
    assert response.status == 413
    assert "larger than the limit of 1048576 bytes" in json.loads(response.read())["error"]
    connection.request("POST", "/v1/models/lm:predict", body=json.dumps({"inputs": IDS}))
    response = connection.getresponse()
    assert response.status == 200 and len(json.loads(response.read())["outputs"]) == 2
    connection.close()


def test_rest_timeout_is_504_and_cors_headers(built, tmp_path):
    from serving import ModelServer, ServerOptions

    models.install(built["lm1"], str(tmp_path / "lm"), 1)
    options = ServerOptions(model_name="lm", model_base_path=str(tmp_path / "lm"), port=0, rest_api_port=0,
                            file_system_poll_wait_seconds=0, rest_api_timeout_in_ms=300,
                            rest_api_enable_cors_support=True)
    with ModelServer(options) as server:
        status, headers, data = request(server.rest_port, "POST", "/v1/models/lm:predict",
                                        {"signature_name": "slow", "inputs": [1.0]})
        assert status == 504 and json.loads(data) == {"error": "Deadline exceeded while running the model"}
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert request(server.rest_port, "OPTIONS", "/v1/models/lm:predict", headers={"Origin": "x"})[0] == 204
        assert request(server.rest_port, "OPTIONS", "/v1/models/lm:predict")[0] == 400
        status, body = rest_json(server.rest_port, "POST", "/v1/models/lm:predict", {"inputs": IDS})
        assert status == 200


def _raw(port, data):
    """Sends raw bytes, returns (status, JSON body) of the one response."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(data)
        reply = connection.makefile("rb")
        status = int(reply.readline().split()[1])
        headers = {}
        while (line := reply.readline().strip()):
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        return status, json.loads(reply.read(int(headers["content-length"])))


def test_http_framing_chunked_and_malformed(server):
    body = json.dumps({"inputs": IDS}).encode()
    head = b"POST /v1/models/lm:predict HTTP/1.1\r\nHost: x\r\n"
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    status, reply = _raw(server.rest_port, chunked)
    assert status == 200 and len(reply["outputs"]) == 2
    assert _raw(server.rest_port, head + b"Content-Length: abc\r\n\r\n") == (
        400, {"error": "Malformed Content-Length header: 'abc'"})
    status, reply = _raw(server.rest_port, head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert status == 400 and "Malformed chunk size" in reply["error"]


def test_deadline_ends_the_work_and_shutdown_does_not_wait_for_it(built, tmp_path):
    import threading
    import time

    from serving import ModelServer, ServerOptions

    models.install(built["lm1"], str(tmp_path / "lm"), 1)
    options = ServerOptions(model_name="lm", model_base_path=str(tmp_path / "lm"), port=0, rest_api_port=0,
                            file_system_poll_wait_seconds=0, rest_api_timeout_in_ms=300)
    server = ModelServer(options).start()
    servable = server.manager._models["lm"].versions[1].servable
    answers = []

    def slow():
        status, _, body = request(server.rest_port, "POST", "/v1/models/lm:predict",
                                  {"signature_name": "slow", "inputs": [2.0]})
        answers.append(status if status == 504 else body)

    threads = [threading.Thread(target=slow) for _ in range(80)]  # more than the 64 run threads
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [504] * 80
    # Runs still queued at their deadline were dropped and released the version at once;
    # only the ones that had started are still running, and shutdown does not wait for them.
    assert servable.in_flight < 80
    started = time.monotonic()
    server.stop(grace_seconds=10)
    assert time.monotonic() - started < 4.0


def test_prometheus_metrics_on_the_rest_port_only_when_configured(model_base, server, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from serving import ModelServer, ServerOptions

    # Not configured (the shared server): TF Serving's plain 404 outside /v1.
    assert request(server.rest_port, "GET", "/monitoring/prometheus/metrics")[0] == 404
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics/here" }\n')
    options = ServerOptions(model_name="clf", model_base_path=str(model_base / "clf"), port=None, rest_api_port=0,
                            file_system_poll_wait_seconds=0, monitoring_config_file=str(monitoring))
    with ModelServer(options) as running:
        def count():
            status, headers, body = request(running.rest_port, "GET", "/metrics/here")
            assert status == 200 and headers["Content-Type"].startswith("text/plain")
            families = {f.name: f for f in text_string_to_metric_families(body.decode())}
            return sum(s.value for s in families[":tensorflow:serving:request_count"].samples
                       if s.labels.get("model_name") == "clf")

        before = count()
        assert request(running.rest_port, "POST", "/v1/models/clf:classify", {"examples": [{"x": [1.0, 2.0]}]})[0] == 200
        assert count() == before + 1
        assert request(running.rest_port, "POST", "/metrics/here", b"")[0] == 405
