"""TensorFlow Serving's REST API (`/v1/models/...`) on `serving.http_server` (h11 + asyncio).

Routing, messages and status codes follow `http_rest_api_handler.cc` and
`http_rest_api_util.cc`: paths outside `/v1/` get a plain 404; anything under
`/v1/` that does not match an endpoint is "Malformed request" (400); every
reply under `/v1/` is JSON (`Content-Type: application/json`), errors as
`{"error": "..."}` with TF Serving's status -> HTTP table. Bodies may be gzip
compressed. Additions: a request size limit (`max_request_bytes`, answered
with 413 and a JSON error, then the connection keeps working), the transport
limits and timeouts of `serving.http_server` (all answered with JSON errors),
requests dropped before they run once their deadline has passed or their
client has gone, and a graceful `stop()` that lets answerable requests finish.
"""

import dataclasses
import json
import logging
import re
import time
import urllib.parse

from google.protobuf import json_format

from serving import access_log, json_response, json_tensor
from serving.errors import Code, Deadline, ServingError, from_exception, invalid_argument
from serving.http_server import HttpLimits, HttpServer, Response, Router, json_error

logger = logging.getLogger(__name__)

API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.IGNORECASE)
STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE)
JSON_OPTIONS = dict(always_print_fields_with_no_presence=True, indent=2)


def _model_info(match):
    """(name, version, label, verb) from a path match, decoded as ParseModelInfo does."""
    name, version, label, verb = match.groups()
    name = _unquote(name, "model name") if name else ""
    if version is not None:
        number = int(version)
        if number >= 2**63:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.")
        version = number
    if label is not None:
        label = _unquote(label, "version label")
    return name, version, label, verb


def _unquote(text, what):
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError as error:
        raise invalid_argument(f"The {what} in the URL is not valid UTF-8 after percent-decoding "
                               f"(byte {error.start} of the decoded name)") from None


class RestApi:
    """Maps (method, path, body) to (HTTP status, JSON body) with a `ServingCore`."""

    def __init__(self, core, timeout_ms=30000):
        self.core = core
        self.timeout_ms = timeout_ms

    def handle(self, method, path, body, deadline=None):
        """-> (HTTP status, JSON bytes). `deadline`: a `Deadline`, or None for `timeout_ms` from now."""
        deadline = deadline if deadline is not None else self._default_deadline()
        try:
            if deadline is not None:
                deadline.check("Deadline exceeded before the request could run")
            return 200, self._dispatch(method, path, body, deadline)
        except Exception as error:  # noqa: BLE001 - every failure becomes a JSON error
            failure = from_exception(error)
            if failure.code in (Code.INTERNAL, Code.UNKNOWN):
                logger.exception("REST %s %s failed", method, path)
            return failure.http_status, json_response.error_response(failure.message)

    def _default_deadline(self):
        if self.timeout_ms and self.timeout_ms > 0:
            return Deadline(time.monotonic() + self.timeout_ms / 1000)
        return None

    def _dispatch(self, method, path, body, deadline):
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if method == "POST":
            match = PREDICTION_PATH.fullmatch(path)
            if match is None:
                raise malformed
            name, version, label, verb = _model_info(match)
            access_log.note(api=verb.lower())
            if verb == "predict":
                return self._predict(name, version, label, body, deadline)
            if verb in ("classify", "regress"):
                return self._classify_or_regress(verb, name, version, label, body, deadline)
            raise malformed  # the verb matched case-insensitively only
        if method == "GET":
            match = STATUS_PATH.fullmatch(path)
            if match is None:
                raise malformed
            name, version, label, subresource = _model_info(match)
            if not name and path.lower() == "/v1/models":
                access_log.note(api="list")
                return self._list()  # beyond TF Serving, which answers 400 here
            if not name:
                raise invalid_argument("Missing model name in request.")
            access_log.note(api=subresource or "status")
            if subresource == "metadata":
                return self._metadata(name, version, label)
            # GetModelStatus only looks at the version: with a label it lists every version.
            return json_format.MessageToJson(self.core.status(name, version), **JSON_OPTIONS).encode()
        raise malformed

    def _predict(self, name, version, label, body, deadline):
        document = json_tensor.parse_body(body)
        signature = json_tensor.signature_name(document)
        infos = self.core.signature_inputs(name, version, label, signature)
        if not infos:
            raise invalid_argument(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
        inputs, request_format = json_tensor.predict_inputs(document, infos)
        _, _, outputs = self.core.predict(name, version, label, signature, inputs, deadline=deadline)
        return json_response.predict_response(outputs, request_format)

    def _classify_or_regress(self, verb, name, version, label, body, deadline):
        document = json_tensor.parse_body(body)
        signature = json_tensor.signature_name(document)
        request_input = json_tensor.examples_input(document)
        if verb == "classify":
            _, _, result = self.core.classify(name, version, label, signature, request_input, deadline)
            if not result.classifications:
                raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
            return json_response.classification_response(result)
        _, _, result = self.core.regress(name, version, label, signature, request_input, deadline)
        if not result.regressions:
            raise invalid_argument("Cannot convert empty RegressionResults to JSON")
        return json_response.regression_response(result)

    def _list(self):
        """`GET /v1/models`: {"models": [{"name", "model_version_status": [...]}, ...]}."""
        models = []
        for name, status in self.core.list_models():
            entry = json_format.MessageToDict(status, always_print_fields_with_no_presence=True)
            models.append({"name": name, "model_version_status": entry.get("model_version_status", [])})
        return (json.dumps({"models": models}, indent=2) + "\n").encode()

    def _metadata(self, name, version, label):
        resolved, signature_defs = self.core.metadata(name, version, label)
        from tensorflow_serving.apis import model_pb2

        spec = model_pb2.ModelSpec(name=name)
        spec.version.value = resolved
        options = dict(JSON_OPTIONS, preserving_proto_field_name=True)
        # Stitched by hand like TF Serving's ToJsonString(GetModelMetadataResponse).
        return ('{\n"model_spec":' + json_format.MessageToJson(spec, **options) + ',\n"metadata": {"signature_def": '
                + json_format.MessageToJson(signature_defs, **options) + "}\n}\n").encode()


class RestServer:
    """TF Serving's REST API on the strict HTTP/1.1 front end (`serving.http_server`).

    Every path under `/v1/` goes to `RestApi`; other paths get a plain-text 404
    as TF Serving's libevent answers. Further routes (a streaming endpoint, for
    example) are added with `server.router.add(...)` before `start()`.
    """

    def __init__(self, api, host, port, max_request_bytes=0, enable_cors=False, limits=None, ssl_context=None,
                 access_log=None):
        self.api = api
        limits = dataclasses.replace(limits or HttpLimits(), max_body_bytes=max_request_bytes or 0)
        if max_request_bytes:
            limits.max_drain_bytes = max(limits.max_drain_bytes, max_request_bytes)
        cors = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST, GET"),
                ("Access-Control-Allow-Headers", "Content-Type")] if enable_cors else []
        self.router = Router()
        timeout = api.timeout_ms / 1000 if api.timeout_ms and api.timeout_ms > 0 else None
        self.router.add(API_PATH, self._on_request, timeout=timeout)
        try:
            self.http = HttpServer(self.router, host, port, limits, extra_headers=cors, ssl_context=ssl_context,
                                   access_log=access_log)
        except OSError as error:
            raise ServingError(Code.UNAVAILABLE, f"Cannot start the REST server: {error.strerror}") from None

    @property
    def port(self):
        return self.http.port

    def start(self):
        self.http.start()
        return self

    def stop(self, grace_seconds=30.0):
        self.http.stop(grace_seconds)

    def _on_request(self, request):
        if request.method == "OPTIONS":
            # CORS preflight: 400 without an Origin header, else 204 (headers only with CORS on).
            if not request.header("origin"):
                return json_error(400, "CORS preflight request is missing the Origin header")
            return Response(204)
        deadline = Deadline(request.deadline, request.client_gone.is_set)
        status, payload = self.api.handle(request.method, request.path, request.body, deadline)
        return Response(status, payload)
