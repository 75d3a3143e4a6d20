"""TF1 SavedModels (Session signatures, ParseExample in the graph) served like TF Serving serves them."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, inference_pb2, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from serving import metrics
from tests.serving import models


@pytest.fixture(scope="module")
def tf1_server(tmp_path_factory):
    from serving import ModelServer, ServerOptions

    base = tmp_path_factory.mktemp("tf1") / "half_plus_two"
    models.build_half_plus_two_tf1(str(base / "1"))
    with ModelServer(ServerOptions(model_name="half_plus_two", model_base_path=str(base), port=0,
                                   file_system_poll_wait_seconds=0)) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
        channel.close()


def _examples(request, values):
    for value in values:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(value)
    if hasattr(request, "model_spec"):
        request.model_spec.name = "half_plus_two"
    return request


def test_predict_ignores_declared_shape_like_tf_serving(tf1_server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32([2.0, 3.0, 4.0])))  # declared [-1, 1]
    before = metrics.request_count.labels("half_plus_two", "OK")._value.get()
    response = tf1_server.Predict(request, timeout=30)
    assert list(tf.make_ndarray(response.outputs["y"])) == [3.0, 3.5, 4.0]
    assert metrics.request_count.labels("half_plus_two", "OK")._value.get() == before + 1
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float64([1.0])))
    with pytest.raises(grpc.RpcError) as caught:
        tf1_server.Predict(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_regress_classify_multi_inference(tf1_server):
    regress = _examples(regression_pb2.RegressionRequest(), [1.0, 2.0])
    regress.model_spec.signature_name = "tensorflow/serving/regress"
    assert [r.value for r in tf1_server.Regress(regress, timeout=30).result.regressions] == [2.5, 3.0]
    classify = _examples(classification_pb2.ClassificationRequest(), [4.0])
    classify.model_spec.signature_name = "tensorflow/serving/classify"
    entry = tf1_server.Classify(classify, timeout=30).result.classifications[0].classes[0]
    assert (entry.label, entry.score) == ("y", 4.0)
    multi = inference_pb2.MultiInferenceRequest()
    _examples(multi, [0.0])
    for signature, method in (("tensorflow/serving/regress", "tensorflow/serving/regress"),
                              ("tensorflow/serving/classify", "tensorflow/serving/classify")):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "half_plus_two", signature
    results = tf1_server.MultiInference(multi, timeout=30).results
    assert results[0].regression_result.regressions[0].value == 2.0
    assert results[1].classification_result.classifications[0].classes[0].score == 2.0


def test_metrics_render_parses():
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    samples = families[":tensorflow:serving:request_count"].samples
    assert any(s.labels == {"model_name": "half_plus_two", "status": "INVALID_ARGUMENT"} and s.value >= 1
               for s in samples)
    latency = families[":tensorflow:serving:request_latency"].samples
    assert any(s.labels.get("entrypoint") == "GRPC" and s.labels.get("API") == "Regress" for s in latency)
    assert any(s.labels.get("status") == "OK" for s in families[":tensorflow:cc:saved_model:load_attempt_count"].samples)


def test_documented_rest_requests_get_the_documented_answers(tmp_path):
    """TF Serving's REST API document serves half_plus_three (y = 0.5 x + 3) with these requests and answers."""
    from serving import ModelServer, ServerOptions
    from tests.serving.helpers import rest_json

    base = tmp_path / "half_plus_three"
    models.build_half_plus_two_tf1(str(base / "1"), a=0.5, b=3.0)
    with ModelServer(ServerOptions(model_name="half_plus_three", model_base_path=str(base), port=None,
                                   rest_api_port=0, file_system_poll_wait_seconds=0)) as server:
        port, path = server.rest_port, "/v1/models/half_plus_three"
        assert rest_json(port, "POST", f"{path}:predict", {"instances": [1.0, 2.0, 5.0]}) == (
            200, {"predictions": [3.5, 4.0, 5.5]})
        assert rest_json(port, "POST", f"{path}:predict", {"inputs": [1.0, 2.0, 5.0]}) == (
            200, {"outputs": [3.5, 4.0, 5.5]})
        assert rest_json(port, "POST", f"{path}:regress", {"signature_name": "tensorflow/serving/regress",
                                                           "examples": [{"x": 1.0}, {"x": 2.0}]}) == (
            200, {"results": [3.5, 4.0]})
        assert rest_json(port, "POST", f"{path}:classify", {"signature_name": "tensorflow/serving/classify",
                                                            "examples": [{"x": 1.0}]}) == (
            200, {"results": [[["y", 3.5]]]})
        status, metadata = rest_json(port, "GET", f"{path}/versions/1/metadata")
        assert status == 200 and metadata["model_spec"] == {"name": "half_plus_three", "signature_name": "",
                                                            "version": "1"}
        assert set(metadata["metadata"]["signature_def"]["signature_def"]) == {
            "serving_default", "tensorflow/serving/regress", "tensorflow/serving/classify"}
