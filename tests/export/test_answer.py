"""The `answer` signature of a BertQuestionAnswering export, served by the embedded server over REST and gRPC:
the same answers as the Python reading of the Keras model's logits (`predict_answers` -> `best_answer`)."""

import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from keras_transformer.text.question_answering import QASettings, predict_answers, window_builder
from keras_transformer.text.squad import QAExample
from tests.serving.helpers import rest_json

# Windows of 32 tokens, 6 context tokens apart: the first context takes several windows.
SETTINGS = QASettings(sequence_length=32, doc_stride=6, max_question_length=8, max_answer_length=5)
QUESTIONS = ["Which function joins the parts of a path?", "What does the module read?", "Wo?"]
CONTEXTS = ["The os.path module works with file system paths. os.path.join() joins path components with the "
            "separator of the operating system, os.path.exists() tells whether a path exists, and the function "
            "os.path.splitext() splits a path into a root and an extension.",
            "The json module reads and writes JSON text.",
            "Straße, naïve café: ein kurzer Text."]


@pytest.fixture(scope="module")
def served(export_root, wordpiece, bert_backbone):
    from keras_transformer.export import export
    from keras_transformer.models import BertQuestionAnswering
    from serving import ModelServer, ServerOptions

    model = BertQuestionAnswering(bert_backbone)
    path = export(model, str(export_root / "qa"), tokenizer=wordpiece, signatures=["answer"],
                  question_answering=SETTINGS.to_json(), model_name="qa")
    options = ServerOptions(model_name="qa", model_base_path=os.path.dirname(path), port=0, rest_api_port=0,
                            file_system_poll_wait_seconds=0)
    with ModelServer(options) as server:
        yield model, wordpiece, server


def _python_answers(model, tokenizer):
    examples = [QAExample(str(i), q, c, ()) for i, (q, c) in enumerate(zip(QUESTIONS, CONTEXTS))]
    answers = predict_answers(model, tokenizer, examples, SETTINGS)
    return [answers[str(i)] for i in range(len(examples))]


def _grpc(server, question, context):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "qa", "answer"
    request.inputs["question"].CopyFrom(tf.make_tensor_proto(np.array([q.encode() for q in question], object)))
    request.inputs["context"].CopyFrom(tf.make_tensor_proto(np.array([c.encode() for c in context], object)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=120)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def test_served_answers_equal_the_python_answers(served):
    model, tokenizer, server = served
    windows = window_builder(tokenizer, SETTINGS)(QUESTIONS, CONTEXTS)["example"]
    assert np.bincount(windows).tolist()[0] > 2  # the long context is read in several windows
    expected = _python_answers(model, tokenizer)
    status, body = rest_json(server.rest_port, "POST", "/v1/models/qa:predict", {
        "signature_name": "answer", "instances": [{"question": q, "context": c} for q, c in zip(QUESTIONS, CONTEXTS)]})
    assert status == 200, body
    over_grpc = _grpc(server, QUESTIONS, CONTEXTS)
    for row, (answer, rest) in enumerate(zip(expected, body["predictions"])):
        assert (rest["answer"], rest["answer_start"], rest["answer_end"]) == (answer.text, answer.start, answer.end)
        assert rest["score"] == pytest.approx(answer.score, abs=1e-4)
        assert CONTEXTS[row][answer.start:answer.end] == answer.text and answer.text
        assert over_grpc["answer"][row].decode("utf-8") == answer.text
        assert (over_grpc["answer_start"][row], over_grpc["answer_end"][row]) == (answer.start, answer.end)
        assert over_grpc["score"][row] == pytest.approx(rest["score"], abs=1e-6)


def test_empty_inputs_are_rejected_naming_the_input(served):
    _, _, server = served
    for question, context, name in (("", "Some text.", "question"), ("Why?", "   ", "context")):
        status, body = rest_json(server.rest_port, "POST", "/v1/models/qa:predict", {
            "signature_name": "answer", "instances": [{"question": question, "context": context}]})
        assert status == 400 and f"every `{name}` needs text" in body["error"]
        with pytest.raises(grpc.RpcError) as raised:
            _grpc(server, [question], [context])
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"every `{name}` needs text" in raised.value.details()
    status, body = rest_json(server.rest_port, "POST", "/v1/models/qa:predict", {
        "signature_name": "answer", "inputs": {"question": ["a", "b"], "context": ["c"]}})
    assert status == 400 and "`question` and `context` need the same number of rows" in body["error"]
