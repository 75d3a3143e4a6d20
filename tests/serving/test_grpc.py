"""gRPC API with the official tensorflow-serving-api stubs; numbers equal REST's."""

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     inference_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from tests.serving import models
from tests.serving.helpers import rest_json

IDS = np.array([[1, 2, 3], [4, 5, 15]], np.int32)


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def predict_request(name="lm", inputs=None, signature="", version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for alias, value in (inputs if inputs is not None else {"token_ids": IDS}).items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def rpc_error(call, request):
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=60)
    return caught.value.code(), caught.value.details()


def test_predict_matches_rest_exactly(server, stubs):
    prediction, _ = stubs
    response = prediction.Predict(predict_request(), timeout=60)
    assert (response.model_spec.name, response.model_spec.version.value,
            response.model_spec.signature_name) == ("lm", 2, "serving_default")
    logits = response.outputs["logits"]
    assert logits.float_val and not logits.tensor_content  # typed fields, as TF Serving writes them
    grpc_logits = tf.make_ndarray(logits)
    _, rest = rest_json(server.rest_port, "POST", "/v1/models/lm:predict", {"inputs": IDS.tolist()})
    np.testing.assert_array_equal(grpc_logits, np.array(rest["outputs"], np.float32))
    np.testing.assert_allclose(grpc_logits, models.lm_logits(2, IDS), rtol=1e-5, atol=1e-6)


def test_predict_versions_labels_and_filter(stubs):
    prediction, _ = stubs
    for kwargs, version in (({"version": 1}, 1), ({"label": "stable"}, 1), ({"label": "canary"}, 2)):
        response = prediction.Predict(predict_request(**kwargs), timeout=60)
        assert response.model_spec.version.value == version
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["logits"]), models.lm_logits(version, IDS),
                                   rtol=1e-5, atol=1e-6)
    request = predict_request(signature="pair", inputs={"token_ids": IDS, "scale": np.ones(2, np.float32)})
    request.output_filter.append("total")
    response = prediction.Predict(request, timeout=60)
    assert list(response.outputs) == ["total"] and list(response.outputs["total"].float_val) == [6.0, 24.0]


def test_strings_round_trip(stubs):
    prediction, _ = stubs
    prompts = np.array(["héllo".encode(), b"\xff\x00raw"], dtype=object)
    response = prediction.Predict(predict_request(signature="generate", inputs={"prompts": prompts}, version=1),
                                  timeout=60)
    assert list(response.outputs["echo_bytes"].string_val) == list(prompts)
    assert response.outputs["text"].string_val[0].decode() == "HéLLO v1"


def test_error_codes(stubs):
    prediction, _ = stubs
    cases = [
        (predict_request(name="nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (predict_request(version=9), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(lm, 9)"),
        (predict_request(label="nope"), grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: nope"),
        (predict_request(signature="nope"), grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
        (predict_request(name=""), grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
        (predict_pb2.PredictRequest(), grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
        (predict_request(inputs={"ids": IDS}), grpc.StatusCode.INVALID_ARGUMENT,
         "input tensor alias not found in signature: ids. Inputs expected to be in the set {token_ids}."),
        (predict_request(inputs={"token_ids": IDS, "x": IDS}), grpc.StatusCode.INVALID_ARGUMENT,
         "input size does not match signature: 2!=1 len({token_ids,x}) != len({token_ids}). Sent extra: {x}."),
        (predict_request(inputs={"token_ids": IDS.astype(np.int64)}), grpc.StatusCode.INVALID_ARGUMENT,
         "input 'token_ids' of signature 'serving_default' has dtype DT_INT64, expected DT_INT32"),
        # Shapes and id ranges are the model's business, as in TF Serving: its own errors come back.
        (predict_request(inputs={"token_ids": IDS[0]}), grpc.StatusCode.INVALID_ARGUMENT, "einsum"),
        (predict_request(inputs={"token_ids": IDS + 1}), grpc.StatusCode.INVALID_ARGUMENT,
         "indices[1,2] = 16 is not in [0, 16)"),
    ]
    filtered = predict_request()
    filtered.output_filter.append("nope")
    cases.append((filtered, grpc.StatusCode.INVALID_ARGUMENT, "output tensor alias not found in signature: nope"))
    for request, code, needle in cases:
        got_code, details = rpc_error(prediction.Predict, request)
        assert got_code == code and needle in details, (got_code, details)
    assert prediction.Predict(predict_request(), timeout=60).outputs["logits"].float_val  # still serving


def test_metadata_and_status(stubs):
    prediction, models_stub = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "lm"
    request.model_spec.version_label = "stable"
    response = prediction.GetModelMetadata(request, timeout=60)
    assert response.model_spec.version.value == 1
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    assert signature_defs.signature_def["serving_default"].inputs["token_ids"].dtype == tf.int32.as_datatype_enum
    request.metadata_field[:] = ["nope"]
    assert rpc_error(prediction.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Metadata field nope is not supported")

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "lm"
    status = models_stub.GetModelStatus(status_request, timeout=60)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE), (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    status_request.model_spec.version.value = 5
    assert rpc_error(models_stub.GetModelStatus, status_request) == (
        grpc.StatusCode.NOT_FOUND, "Could not find version 5 of model lm")


def _examples(request):
    for x in ([1.0, 0.0], [0.0, 2.0]):
        request.input.example_list.examples.add().features.feature["x"].float_list.value.extend(x)
    return request


def test_classify_regress_multi_inference_match_rest(server, stubs):
    prediction, _ = stubs
    request = _examples(classification_pb2.ClassificationRequest())
    request.model_spec.name = "clf"
    result = prediction.Classify(request, timeout=60).result
    grpc_rows = [[[c.label, c.score] for c in row.classes] for row in result.classifications]
    _, rest = rest_json(server.rest_port, "POST", "/v1/models/clf:classify",
                        {"examples": [{"x": [1.0, 0.0]}, {"x": [0.0, 2.0]}]})
    assert [[[label, np.float32(score)] for label, score in row] for row in rest["results"]] == grpc_rows

    regression = _examples(regression_pb2.RegressionRequest())
    regression.model_spec.name, regression.model_spec.signature_name = "clf", "regress"
    assert [r.value for r in prediction.Regress(regression, timeout=60).result.regressions] == [2.0, 2.0]

    multi = inference_pb2.MultiInferenceRequest()
    _examples(multi)
    for method, signature in (("tensorflow/serving/classify", ""), ("tensorflow/serving/regress", "regress")):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "clf", signature
    results = prediction.MultiInference(multi, timeout=60).results
    assert results[0].classification_result == result
    assert [r.value for r in results[1].regression_result.regressions] == [2.0, 2.0]

    request.model_spec.name = "lm"
    code, details = rpc_error(prediction.Classify, request)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "No classification inputs found" in details


def test_clients_agree_across_protocols(server):
    from serving.client import GrpcClient, RestClient

    rest, grpc_client = RestClient(f"127.0.0.1:{server.rest_port}"), GrpcClient(f"127.0.0.1:{server.grpc_port}")
    try:
        for call in (lambda c: c.predict("lm", {"token_ids": IDS}),
                     lambda c: c.predict("lm", {"token_ids": IDS[:, :2], "scale": np.float32([1, 2])}, "pair", version=1)):
            a, b = call(rest), call(grpc_client)
            assert a.keys() == b.keys()
            for key in a:
                assert a[key].dtype == b[key].dtype
                np.testing.assert_array_equal(a[key], b[key])
        row = rest.predict("lm", {"token_ids": IDS}, row_format=True)["logits"]
        np.testing.assert_array_equal(row, grpc_client.predict("lm", {"token_ids": IDS})["logits"])
        assert rest.generate("lm", ["ab", "é"], label="stable") == grpc_client.generate("lm", ["ab", "é"], label="stable") \
            == ["AB v1", "é v1"]
        assert rest.status("lm") == grpc_client.status("lm")
        assert rest.metadata("lm", version=1) == grpc_client.metadata("lm", version=1)
        examples = [{"x": [1.0, 0.0]}]
        assert rest.classify("clf", examples) == grpc_client.classify("clf", examples)
        assert rest.regress("clf", examples, {"bias": 0.5}, "regress") == grpc_client.regress(
            "clf", examples, {"bias": 0.5}, "regress") == [2.5]
    finally:
        rest.close()
        grpc_client.close()


def test_client_cli_against_both_protocols(server, capsys):
    from serving.client.__main__ import main

    for target in (["--rest", f"127.0.0.1:{server.rest_port}"], ["--grpc", f"127.0.0.1:{server.grpc_port}"]):
        assert main(target + ["status", "lm"]) == 0
        assert [s["state"] for s in json.loads(capsys.readouterr().out)] == ["AVAILABLE", "AVAILABLE"]
        assert main(target + ["predict", "lm", "--version", "1", "--inputs", '{"token_ids": [[1, 2]]}']) == 0
        logits = json.loads(capsys.readouterr().out)["logits"]
        np.testing.assert_allclose(logits, models.lm_logits(1, [[1, 2]]), rtol=1e-5, atol=1e-6)
        assert main(target + ["generate", "lm", "hi", "there", "--label", "canary"]) == 0
        assert json.loads(capsys.readouterr().out) == ["HI v2", "THERE v2"]
        assert main(target + ["predict", "nope", "--inputs", "{}"]) == 1
        assert "NOT_FOUND" in capsys.readouterr().err
