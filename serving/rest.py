"""TensorFlow Serving's REST API (`/v1/models/...`) over `http.server`.

Routing, messages and status codes follow `http_rest_api_handler.cc` and
`http_rest_api_util.cc`: paths outside `/v1/` get a plain 404; anything under
`/v1/` that does not match an endpoint is "Malformed request" (400); every
reply under `/v1/` is JSON (`Content-Type: application/json`), errors as
`{"error": "..."}` with TF Serving's status -> HTTP table. Bodies may be gzip
compressed. Additions: a request size limit (`max_request_bytes`, answered
with 413 and a JSON error, then the connection keeps working) and a graceful
`stop()` that lets in-flight requests finish.
"""

import http.server
import logging
import re
import select
import socket
import threading
import time
import urllib.parse
import zlib

from google.protobuf import json_format

from serving import json_response, json_tensor
from serving.errors import Code, ServingError, from_exception, invalid_argument

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
    name = urllib.parse.unquote(name) if name else ""
    if version is not None:
        number = int(version)
        if number >= 2**63:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.")
        version = number
    if label is not None:
        label = urllib.parse.unquote(label)
    return name, version, label, verb


class RestApi:
    """Maps (method, path, body) to (HTTP status, JSON body) with a `ServingCore`."""

    def __init__(self, core, timeout_ms=30000):
        self.core = core
        self.timeout_ms = timeout_ms

    def handle(self, method, path, body):
        try:
            return 200, self._dispatch(method, path, body)
        except Exception as error:  # noqa: BLE001 - every failure becomes a JSON error
            failure = from_exception(error)
            if failure.code in (Code.INTERNAL, Code.UNKNOWN):
                logger.exception("REST %s %s failed", method, path)
            return failure.http_status, json_response.error_response(failure.message)

    def _deadline(self):
        return time.monotonic() + self.timeout_ms / 1000 if self.timeout_ms and self.timeout_ms > 0 else None

    def _dispatch(self, method, path, body):
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if method == "POST":
            match = PREDICTION_PATH.fullmatch(path)
            if match is None:
                raise malformed
            name, version, label, verb = _model_info(match)
            if verb == "predict":
                return self._predict(name, version, label, body)
            if verb in ("classify", "regress"):
                return self._classify_or_regress(verb, name, version, label, body)
            raise malformed  # the verb matched case-insensitively only
        if method == "GET":
            match = STATUS_PATH.fullmatch(path)
            if match is None:
                raise malformed
            name, version, label, subresource = _model_info(match)
            if not name:
                raise invalid_argument("Missing model name in request.")
            if subresource == "metadata":
                return self._metadata(name, version, label)
            # GetModelStatus only looks at the version: with a label it lists every version.
            return json_format.MessageToJson(self.core.status(name, version), **JSON_OPTIONS).encode()
        raise malformed

    def _predict(self, name, version, label, body):
        document = json_tensor.parse_body(body)
        signature = json_tensor.signature_name(document)
        infos = self.core.signature_inputs(name, version, label, signature)
        if not infos:
            raise invalid_argument(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
        inputs, request_format = json_tensor.predict_inputs(document, infos)
        _, _, outputs = self.core.predict(name, version, label, signature, inputs, deadline=self._deadline())
        return json_response.predict_response(outputs, request_format)

    def _classify_or_regress(self, verb, name, version, label, body):
        document = json_tensor.parse_body(body)
        signature = json_tensor.signature_name(document)
        request_input = json_tensor.examples_input(document)
        if verb == "classify":
            _, _, result = self.core.classify(name, version, label, signature, request_input, self._deadline())
            if not result.classifications:
                raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
            return json_response.classification_response(result)
        _, _, result = self.core.regress(name, version, label, signature, request_input, self._deadline())
        if not result.regressions:
            raise invalid_argument("Cannot convert empty RegressionResults to JSON")
        return json_response.regression_response(result)

    def _metadata(self, name, version, label):
        resolved, signature_defs = self.core.metadata(name, version, label)
        from tensorflow_serving.apis import model_pb2

        spec = model_pb2.ModelSpec(name=name)
        spec.version.value = resolved
        options = dict(JSON_OPTIONS, preserving_proto_field_name=True)
        # Stitched by hand like TF Serving's ToJsonString(GetModelMetadataResponse).
        return ('{\n"model_spec":' + json_format.MessageToJson(spec, **options) + ',\n"metadata": {"signature_def": '
                + json_format.MessageToJson(signature_defs, **options) + "}\n}\n").encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "serving-embedded"
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # TCP_NODELAY: no 40 ms delayed-ACK stalls on small replies
    wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)

    def handle(self):
        self.server.track(self.connection, True)
        try:
            super().handle()
        finally:
            self.server.track(self.connection, False)

    def handle_one_request(self):
        # A request counts as in flight from its request line on (see parse_request) until answered.
        self._counted = False
        try:
            super().handle_one_request()
        finally:
            if self._counted:
                self.server.leave()

    def parse_request(self):
        self.server.enter()
        self._counted = True
        return super().parse_request()

    def _any(self):
        path = urllib.parse.urlsplit(self.path).path
        if not API_PATH.fullmatch(path):
            self.send_error(404)
            return
        try:
            body = self._read_body()
        except ServingError as error:
            self._reply(413 if error.code == Code.RESOURCE_EXHAUSTED else error.http_status,
                        json_response.error_response(error.message))
            return
        if self.command == "OPTIONS":
            self._preflight()
            return
        status, payload = self.server.api.handle(self.command, path, body)
        self._reply(status, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

    def _preflight(self):
        """CORS preflight: 400 without an Origin header, else 204 (headers only with CORS on)."""
        if not self.headers.get("Origin"):
            self._reply(400, json_response.error_response("CORS preflight request is missing the Origin header"))
        else:
            self._reply(204, b"")

    def _read_body(self):
        limit = self.server.max_request_bytes
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked(limit)
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                raise invalid_argument(f"Malformed Content-Length header: {self.headers.get('Content-Length')!r}")
            if limit and length > limit:
                self._drain(length)
                raise ServingError(Code.RESOURCE_EXHAUSTED, f"Request body of {length} bytes is larger than the "
                                                            f"limit of {limit} bytes (--max_request_bytes)")
            body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, limit + 1 if limit else 0)
            except zlib.error as error:
                raise invalid_argument(f"Failed to decompress gzip request body: {error}") from None
            if limit and len(body) > limit:
                raise ServingError(Code.RESOURCE_EXHAUSTED, f"Decompressed request body is larger than the limit of "
                                                            f"{limit} bytes (--max_request_bytes)")
        return body

    def _read_chunked(self, limit):
        parts, total = [], 0
        while True:
            line = self.rfile.readline()
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                self.close_connection = True
                raise invalid_argument(f"Malformed chunk size line in a chunked request body: {line[:40]!r}") from None
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            chunk = self.rfile.read(size)
            self.rfile.readline()
            total += size
            if not limit or total <= limit:
                parts.append(chunk)
        if limit and total > limit:
            raise ServingError(Code.RESOURCE_EXHAUSTED, f"Request body of {total} bytes is larger than the limit "
                                                        f"of {limit} bytes (--max_request_bytes)")
        return b"".join(parts)

    def _drain(self, length):
        """Reads and drops an oversized body so the client can read our answer."""
        if length > 8 * 2**30:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 2**20))
            if not chunk:
                break
            length -= len(chunk)

    def _reply(self, status, payload):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.server.enable_cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "POST, GET")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
        if self.server.stopping or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        logger.debug("%s - %s", self.address_string(), format % args)


class RestServer(http.server.ThreadingHTTPServer):
    """Threaded HTTP server with in-flight tracking for graceful shutdown."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, api, host, port, max_request_bytes=0, enable_cors=False):
        super().__init__((host, port), _Handler)
        self.api = api
        self.max_request_bytes = max_request_bytes
        self.enable_cors = enable_cors
        self.stopping = False
        self._active = 0
        self._connections = set()  # open client sockets, closed on stop
        self._cond = threading.Condition()
        self._thread = None

    @property
    def port(self):
        return self.server_address[1]

    def track(self, connection, opened):
        with self._cond:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def enter(self):
        with self._cond:
            self._active += 1

    def leave(self):
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, name="rest", daemon=True)
        self._thread.start()

    def stop(self, grace_seconds=30.0):
        """Stops accepting, lets running requests answer (up to the grace period), closes idle sockets."""
        self.stopping = True
        self.shutdown()
        self.server_close()
        deadline = time.monotonic() + grace_seconds
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._active == 0, max(deadline - time.monotonic(), 0))
                connections = list(self._connections)
            # Bytes already waiting on a kept-alive connection are a request that has
            # arrived but not been read yet: let its handler pick it up first.
            waiting = [c for c in connections if _readable(c)]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        if self._active:
            logger.warning("REST: %d requests still running after %.1fs; closing", self._active, grace_seconds)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _readable(connection):
    try:
        return bool(select.select([connection], [], [], 0)[0])
    except (OSError, ValueError):
        return False
