"""Text generation beyond TF Serving's API: an OpenAI-compatible completions endpoint and a gRPC stream.

Both run the signatures that `keras_transformer.export` writes for GPT and T5
models (any SavedModel with the same signatures works), so they need nothing
but TensorFlow at serving time:

* `generate`: the whole continuation in one call;
* `generate_start` + `generate_next`: the decoding state as tensors, a few
  tokens per call, for streaming.

REST: `POST /v3/completions` (a `/v3` prefix, so it can never collide with TF
Serving's `/v1`) takes OpenAI's legacy Completions request:

    model        the served model name (required); "name:version" picks a version
    prompt       a string or a list of strings (required, each non-empty)
    max_tokens   new tokens per choice (default 16)
    temperature  0 = greedy; default 1.0 (OpenAI's default: sampling)
    top_p        nucleus mass in (0, 1] (default 1.0)
    n            choices per prompt (default 1); choice index = prompt index * n + i
    stop         a string or up to 4 strings; the text ends before the first one
    logprobs     null, or 0..5: each chosen token's log-probability (no alternatives are
                 computed, so `top_logprobs` holds only the chosen token)
    seed         an integer; choice k samples with seed + k (equal requests, equal answers)
    stream       true: server-sent events, one `text_completion` chunk per choice and step,
                 then `data: [DONE]`

It answers in OpenAI's shape (`choices`, `finish_reason` "stop" or "length",
`usage`), errors as `{"error": {"message", "type", "param", "code"}}`; the
`openai` Python client works against it unchanged, streaming included.

gRPC: `keras_transformer.serving.Generation/StreamGenerate` takes a
`PredictRequest` with the `generate` inputs (plus an optional scalar `steps`,
default 1) and streams one `PredictResponse` per step with `token_ids`,
`padding_mask`, `log_probs`, `token_texts`, `generated_text` and `done`. TF
Serving's own services are untouched.
"""

import asyncio
import json
import logging
import secrets
import time

import grpc
import numpy as np
from tensorflow_serving.apis import predict_pb2

from serving import tensor_proto
from serving.errors import Code, Deadline, from_exception, invalid_argument, truncate_for_grpc
from serving.http_server import EventStream, Response

logger = logging.getLogger(__name__)

COMPLETIONS_PATH = r"/v3/completions"
STREAM_SERVICE = "keras_transformer.serving.Generation"
STREAM_OUTPUTS = ("token_ids", "padding_mask", "log_probs", "token_texts", "generated_text", "done")
TEXT_INPUTS = ("prompt", "text")  # GPT's and T5's `generate` text input
MAX_STOP_STRINGS = 4
STREAM_STEPS = 4  # tokens per generate_next call of a REST stream
DEFAULTS = {"max_tokens": 16, "temperature": 1.0, "top_p": 1.0, "n": 1, "stop": None, "logprobs": None,
            "seed": None, "stream": False}
# Accepted at their neutral value only (anything else is a 400 naming the field).
NEUTRAL = {"echo": False, "best_of": 1, "presence_penalty": 0, "frequency_penalty": 0, "suffix": None,
           "logit_bias": None, "user": None, "stream_options": None}


class Generation:
    """The model calls behind both front ends, on a `ServingCore`."""

    def __init__(self, core):
        self.core = core

    def text_input(self, model, version, label):
        inputs = self.core.signature_inputs(model, version, label, "generate")
        names = [name for name in TEXT_INPUTS if name in inputs]
        if not names:
            raise invalid_argument(f"model {model!r} has no text generation signature (`generate` with a "
                                   f"`prompt` or `text` input)")
        return names[0]

    def generate(self, model, version, label, inputs, deadline=None):
        _, _, outputs = self.core.predict(model, version, label, "generate", inputs, deadline=deadline)
        return outputs

    def stream(self, model, version, label, inputs, steps=1, deadline=None, stopped=lambda: False):
        """Yields the outputs of each `generate_next` call (without the state) until every row is done."""
        _, _, state = self.core.predict(model, version, label, "generate_start", inputs, deadline=deadline)
        steps = np.asarray([steps], "int32")
        while not stopped():
            _, _, outputs = self.core.predict(model, version, label, "generate_next", dict(state, steps=steps),
                                              deadline=deadline)
            state = {name: value for name, value in outputs.items() if name.startswith("state_")}
            yield {name: outputs[name] for name in STREAM_OUTPUTS}
            if np.all(outputs["done"]):
                return


# ------------------------------------------------------------------ REST (OpenAI completions)


class RequestError(Exception):
    def __init__(self, message, param=None):
        super().__init__(message)
        self.message, self.param = message, param


def openai_error(status, message, param=None, kind=None):
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return Response(status, json.dumps(body, ensure_ascii=False).encode("utf-8", errors="backslashreplace"))


def _number(body, name, kind, low=None, high=None, low_open=False):
    value = body[name]
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise RequestError(f"`{name}` must be an integer; received {value!r}", name)
    if kind is float and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise RequestError(f"`{name}` must be a number; received {value!r}", name)
    if (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high):
        bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"
        raise RequestError(f"`{name}` must be in {bounds}; received {value!r}", name)
    return value


def parse_request(raw):
    """The checked request dict (defaults filled); RequestError names the first bad field."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise RequestError(f"The request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object")
    for name, neutral in NEUTRAL.items():
        if body.get(name, neutral) not in (neutral, None):
            raise RequestError(f"`{name}` is not supported by this server (only {neutral!r})", name)
    unknown = sorted(set(body) - set(DEFAULTS) - set(NEUTRAL) - {"model", "prompt"})
    if unknown:
        raise RequestError(f"Unknown field(s) {unknown}", unknown[0])
    request = dict(DEFAULTS)
    request.update({k: v for k, v in body.items() if k in DEFAULTS and v is not None})
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("`model` is required: the served model's name (optionally name:version)", "model")
    request["model"] = model
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise RequestError("`prompt` must be a non-empty string or a non-empty list of non-empty strings", "prompt")
    request["prompts"] = prompts
    _number(request, "max_tokens", int, 1)
    _number(request, "temperature", float, 0, 2)
    _number(request, "top_p", float, 0, 1, low_open=True)
    _number(request, "n", int, 1, 128)
    if request["logprobs"] is not None:
        _number(request, "logprobs", int, 0, 5)
    if request["seed"] is not None:
        _number(request, "seed", int, -(2**63), 2**63 - 1)
    if not isinstance(request["stream"], bool):
        raise RequestError(f"`stream` must be true or false; received {request['stream']!r}", "stream")
    stop = request["stop"]
    stop = [stop] if isinstance(stop, str) else (stop or [])
    if (not isinstance(stop, list) or len(stop) > MAX_STOP_STRINGS
            or not all(isinstance(s, str) and s for s in stop)):
        raise RequestError(f"`stop` must be a non-empty string or a list of up to {MAX_STOP_STRINGS} of them",
                           "stop")
    request["stop"] = stop
    return request


def _model_and_version(text):
    name, _, version = text.partition(":")
    if version and not version.isdigit():
        raise RequestError(f"`model` {text!r}: the version after ':' must be a number", "model")
    return name, int(version) if version else None


def _decoded(data, final):
    """UTF-8 text of `data`; unless `final`, an incomplete character at the end is held back."""
    if final:
        return data.decode("utf-8", errors="replace")
    for cut in range(4):
        try:
            return data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def _cut_at_stop(text, stops):
    """(text before the first stop string, whether one was found)."""
    found = [text.find(s) for s in stops if s in text]
    return (text[: min(found)], True) if found else (text, False)


class Completions:
    """`POST /v3/completions` on a `Generation`."""

    def __init__(self, generation, timeout_ms=0):
        self.generation = generation
        self.timeout_ms = timeout_ms

    def handle(self, request):
        """An http_server handler: a JSON `Response` or an `EventStream`."""
        try:
            body = parse_request(request.body)
            model, version = _model_and_version(body["model"])
            text_input = self.generation.text_input(model, version, None)
            rows = len(body["prompts"]) * body["n"]
            seed = body["seed"] if body["seed"] is not None else secrets.randbits(31)
            inputs = {
                text_input: np.array([p.encode("utf-8") for p in body["prompts"] for _ in range(body["n"])],
                                     dtype=object),
                "max_new_tokens": np.full([rows], body["max_tokens"], "int32"),
                "temperature": np.full([rows], body["temperature"], "float32"),
                "top_k": np.zeros([rows], "int32"),
                "top_p": np.full([rows], body["top_p"], "float32"),
                "seed": (np.int64(seed) + np.arange(rows, dtype="int64")),
            }
            completion = _Completion(body, model, text_input == "text")
            if body["stream"]:
                return EventStream(self._events(completion, model, version, inputs, request))
            outputs = self.generation.generate(model, version, None, inputs, _deadline(request))
            return Response(200, json.dumps(completion.whole(outputs), ensure_ascii=False).encode("utf-8"))
        except RequestError as error:
            return openai_error(400, error.message, error.param)
        except Exception as error:  # noqa: BLE001 - every failure becomes an OpenAI-shaped error
            return _failure(error)

    async def _events(self, completion, model, version, inputs, request):
        loop = asyncio.get_running_loop()
        stream = self.generation.stream(model, version, None, inputs, STREAM_STEPS,
                                        stopped=lambda: request.client_gone.is_set() or completion.all_finished())
        try:
            while True:
                outputs = await loop.run_in_executor(None, next, stream, None)
                if outputs is None:
                    break
                for chunk in completion.chunks(outputs):
                    yield chunk
                if completion.all_finished():
                    break
        except Exception as error:  # noqa: BLE001 - headers are sent: the error goes in the stream
            failure = from_exception(error)
            yield {"error": {"message": failure.message, "type": "server_error", "param": None,
                             "code": failure.code.name}}
        finally:
            stream.close()
        yield "[DONE]"


def _deadline(request):
    return Deadline(request.deadline, request.client_gone.is_set)


def _failure(error):
    failure = from_exception(error)
    if failure.code in (Code.INTERNAL, Code.UNKNOWN):
        logger.exception("completions request failed")
    status = failure.http_status
    kind = {404: "not_found_error"}.get(status)
    return openai_error(status, failure.message, kind=kind)


class _Completion:
    """Assembles one request's answer (whole or as stream chunks) from signature outputs."""

    def __init__(self, body, model, seq2seq):
        self.body, self.model, self.seq2seq = body, model, seq2seq
        self.id = f"cmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        rows = len(body["prompts"]) * body["n"]
        self.sent = [""] * rows
        self.finished = [False] * rows
        self.counts = [0] * rows  # new tokens streamed per choice
        self.holdback = max((len(s) for s in body["stop"]), default=1) - 1

    def all_finished(self):
        return all(self.finished)

    def _envelope(self, choices):
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.body["model"],
                "choices": choices}

    def _logprobs(self, texts, log_probs, offset=0):
        if self.body["logprobs"] is None:
            return None
        tokens = [t.decode("utf-8", errors="replace") for t in texts]
        values = [float(v) for v in log_probs]
        offsets, position = [], offset
        for token in tokens:
            offsets.append(position)
            position += len(token)
        return {"tokens": tokens, "token_logprobs": values,
                "top_logprobs": [{t: v} for t, v in zip(tokens, values)] if self.body["logprobs"] > 0 else None,
                "text_offset": offsets}

    def _new_tokens_start(self, outputs, row):
        return 1 if self.seq2seq else int(outputs["prompt_length"][row])  # T5 rows start with the start token

    def whole(self, outputs):
        choices, completion_tokens = [], 0
        for row, raw in enumerate(outputs["generated_text"]):
            mask = outputs["padding_mask"][row].astype(bool)
            start = self._new_tokens_start(outputs, row)
            count = int(mask.sum()) - start
            completion_tokens += count
            text, stopped = _cut_at_stop(_decoded(raw, True), self.body["stop"])
            finish = "stop" if stopped or count < self.body["max_tokens"] else "length"
            logprobs = None
            if self.body["logprobs"] is not None:
                logprobs = self._logprobs(outputs["token_texts"][row][mask][start:], outputs["log_probs"][row][:count])
            choices.append({"text": text, "index": row, "logprobs": logprobs, "finish_reason": finish})
        answer = self._envelope(choices)
        # Each prompt once, however many choices it has.
        prompt_tokens = int(np.sum(outputs["prompt_length"][:: self.body["n"]]))
        answer["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           "total_tokens": prompt_tokens + completion_tokens}
        return answer

    def chunks(self, outputs):
        """One chunk per choice whose text grew or that just finished."""
        for row, raw in enumerate(outputs["generated_text"]):
            if self.finished[row]:
                continue
            mask = outputs["padding_mask"][row].astype(bool)
            self.counts[row] += int(mask.sum())
            done = bool(outputs["done"][row])
            text, stopped = _cut_at_stop(_decoded(raw, done), self.body["stop"])
            finish = None
            if stopped or done:
                finish = "length" if not stopped and self.counts[row] >= self.body["max_tokens"] else "stop"
                self.finished[row] = True
            else:
                text = text[: max(len(self.sent[row]), len(text) - self.holdback)]
            delta = text[len(self.sent[row]):]
            if not delta and finish is None:
                continue
            logprobs = self._logprobs(outputs["token_texts"][row][mask], outputs["log_probs"][row][mask],
                                      len(self.sent[row]))
            self.sent[row] = text
            yield self._envelope([{"text": delta, "index": row, "logprobs": logprobs, "finish_reason": finish}])


# ------------------------------------------------------------------ gRPC stream


def add_stream_service(server, generation, max_request_bytes=0):
    """Registers `keras_transformer.serving.Generation/StreamGenerate` on a `grpc.Server`."""

    def stream_generate(request, context):
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            spec = request.model_spec
            version = spec.version.value if spec.WhichOneof("version_choice") == "version" else None
            label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
            inputs = {alias: tensor_proto.to_ndarray(proto, alias, max_request_bytes)
                      for alias, proto in request.inputs.items()}
            steps = inputs.pop("steps", np.int32(1))
            if np.size(steps) != 1 or int(np.ravel(steps)[0]) < 1:
                raise invalid_argument(f"steps must be one integer >= 1; received {np.ravel(steps).tolist()}")
            for outputs in generation.stream(spec.name, version, label, inputs, int(np.ravel(steps)[0]),
                                             stopped=lambda: not context.is_active()):
                response = predict_pb2.PredictResponse()
                response.model_spec.name = spec.name
                response.model_spec.signature_name = "generate_next"
                for alias, array in outputs.items():
                    response.outputs[alias].CopyFrom(tensor_proto.from_ndarray(array))
                yield response
        except Exception as error:  # noqa: BLE001 - every failure becomes a status
            failure = from_exception(error)
            if failure.code in (Code.INTERNAL, Code.UNKNOWN):
                logger.exception("StreamGenerate failed")
            context.abort(grpc.StatusCode[failure.code.name], truncate_for_grpc(failure.message))

    handler = grpc.method_handlers_generic_handler(STREAM_SERVICE, {
        "StreamGenerate": grpc.unary_stream_rpc_method_handler(
            stream_generate, request_deserializer=predict_pb2.PredictRequest.FromString,
            response_serializer=predict_pb2.PredictResponse.SerializeToString)})
    server.add_generic_rpc_handlers((handler,))
    return STREAM_SERVICE
