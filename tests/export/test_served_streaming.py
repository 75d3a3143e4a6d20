"""Exported GPT and T5 served by the embedded server: OpenAI completions (the `openai` client, streaming
included) on `/v3/completions`, and the gRPC `Generation/StreamGenerate` stream."""

import os

import grpc
import numpy as np
import openai
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.export.helpers import text_array


@pytest.fixture(scope="module")
def server(gpt_export, t5_export):
    from serving import ModelServer, ServerOptions

    config = text_format.Parse(f"""model_config_list {{
        config {{ name: "gpt" base_path: "{os.path.dirname(gpt_export[2])}" model_platform: "tensorflow" }}
        config {{ name: "t5" base_path: "{os.path.dirname(t5_export[2])}" model_platform: "tensorflow" }} }}""",
                               model_server_config_pb2.ModelServerConfig())
    with ModelServer(ServerOptions(model_config=config, port=0, rest_api_port=0,
                                   file_system_poll_wait_seconds=0)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.rest_port}/v3", api_key="unused", max_retries=0,
                         timeout=120)


def _generate(server, model, prompts, max_new_tokens, temperature=0.0, seeds=None):
    """The `generate` signature through the server's core: what a TF Serving predict would answer."""
    text_input = "prompt" if model == "gpt" else "text"
    n = len(prompts)
    inputs = {text_input: text_array(prompts), "max_new_tokens": np.full([n], max_new_tokens, "int32"),
              "temperature": np.full([n], temperature, "float32"), "top_k": np.zeros([n], "int32"),
              "top_p": np.ones([n], "float32"), "seed": np.asarray(seeds if seeds is not None else [0] * n, "int64")}
    return server.core.predict(model, None, None, "generate", inputs)[2]


@pytest.mark.parametrize("model", ["gpt", "t5"])
def test_completions_equal_the_generate_signature(server, client, model):
    prompts = ["def main(", "The standard library"]
    answer = client.completions.create(model=model, prompt=prompts, max_tokens=6, temperature=0)
    expected = _generate(server, model, prompts, 6)
    assert answer.object == "text_completion" and answer.model == model and len(answer.choices) == 2
    for row, choice in enumerate(answer.choices):
        assert choice.index == row
        assert choice.text == expected["generated_text"][row].decode("utf-8", errors="replace")
        assert choice.finish_reason in ("stop", "length")
    assert answer.usage.prompt_tokens == int(expected["prompt_length"].sum())
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert 0 < answer.usage.completion_tokens <= 12


@pytest.mark.parametrize("model", ["gpt", "t5"])
def test_streamed_completion_equals_the_whole_one(client, model):
    kwargs = dict(model=model, prompt=["import os", "x"], max_tokens=9, temperature=0.9, top_p=0.95, n=2, seed=11)
    whole = client.completions.create(**kwargs)
    texts, finish = {}, {}
    chunks = list(client.completions.create(stream=True, **kwargs))
    assert len(chunks) > 4  # nine tokens per choice come in steps
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert sorted(texts) == [0, 1, 2, 3]
    for choice in whole.choices:
        assert texts[choice.index] == choice.text
        assert finish[choice.index] == choice.finish_reason
    # Seeds per choice: the two samples of one prompt differ somewhere (9 sampled bytes at temperature 0.9).
    assert whole.choices[0].text != whole.choices[1].text or whole.choices[2].text != whole.choices[3].text


def test_logprobs_and_stop_strings(server, client):
    answer = client.completions.create(model="gpt", prompt="def main(", max_tokens=8, temperature=0, logprobs=1)
    logprobs = answer.choices[0].logprobs
    assert "".join(logprobs.tokens) == answer.choices[0].text
    assert len(logprobs.token_logprobs) == len(logprobs.tokens) and all(v <= 0 for v in logprobs.token_logprobs)
    expected = _generate(server, "gpt", ["def main("], 8)
    np.testing.assert_allclose(logprobs.token_logprobs, expected["log_probs"][0][: len(logprobs.tokens)], atol=1e-5)
    assert logprobs.text_offset[0] == 0
    text = answer.choices[0].text
    stop = text[3:5]
    cut = client.completions.create(model="gpt", prompt="def main(", max_tokens=8, temperature=0, stop=[stop])
    assert cut.choices[0].text == text[: text.find(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="gpt", prompt="def main(", max_tokens=8, temperature=0, stop=stop, stream=True))
    assert streamed == cut.choices[0].text


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(client):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x", max_tokens=2)
    for kwargs, field in [(dict(temperature=3.0), "temperature"), (dict(max_tokens=0), "max_tokens"),
                          (dict(n=0), "n"), (dict(stop=["a", "b", "c", "d", "e"]), "stop"),
                          (dict(prompt=""), "prompt"), (dict(echo=True), "echo")]:
        arguments = dict(dict(model="gpt", prompt="x", max_tokens=2), **kwargs)
        with pytest.raises(openai.BadRequestError) as raised:
            client.completions.create(**arguments)
        assert raised.value.body["param"] == field and field in raised.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="max_new_tokens must be in"):
        client.completions.create(model="gpt", prompt="x", max_tokens=100000)  # the graph's own check
    assert client.completions.create(model="gpt", prompt="x", max_tokens=2, temperature=0).choices[0].text is not None


@pytest.mark.parametrize("model", ["gpt", "t5"])
def test_grpc_stream_equals_the_generate_signature(server, model):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    prompts = ["def main(", "x"]
    inputs = {("prompt" if model == "gpt" else "text"): text_array(prompts),
              "max_new_tokens": np.array([7], "int32"), "temperature": np.array([0.0], "float32"),
              "top_k": np.array([0], "int32"), "top_p": np.array([1.0], "float32"),
              "seed": np.array([0], "int64"), "steps": np.array(2, "int32")}
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_stream("/keras_transformer.serving.Generation/StreamGenerate",
                                    request_serializer=predict_pb2.PredictRequest.SerializeToString,
                                    response_deserializer=predict_pb2.PredictResponse.FromString)
        responses = list(call(request, timeout=120))
        assert len(responses) >= 4  # seven tokens two at a time
        last = {k: tf.make_ndarray(v) for k, v in responses[-1].outputs.items()}
        assert last["done"].all()
        expected = _generate(server, model, prompts, 7)
        np.testing.assert_array_equal(last["generated_text"], expected["generated_text"])
        bad = predict_pb2.PredictRequest()
        bad.CopyFrom(request)
        bad.inputs["steps"].CopyFrom(tf.make_tensor_proto(np.array(0, "int32")))
        with pytest.raises(grpc.RpcError) as raised:
            list(call(bad, timeout=60))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "steps" in raised.value.details()
