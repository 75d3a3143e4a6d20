"""Hostile REST requests over raw loopback sockets: every one gets an answer of TF Serving's JSON
error shape with the right status, and a good request succeeds right after.
Bounded: a fixed list of cases plus a few hundred hypothesis examples on the codec alone."""

import json
import socket
import time

import hypothesis
import numpy as np
from hypothesis import strategies as st
from tensorflow.core.framework import types_pb2

from serving import json_tensor
from serving.errors import ServingError
from tests.serving.helpers import rest_json

IDS = [[1, 2, 3]]
GOOD = json.dumps({"inputs": IDS}).encode()
HEAD = b"POST /v1/models/lm:predict HTTP/1.1\r\nHost: x\r\n"


def _exchange(port, data, half_close=False, timeout=20):
    """Sends raw bytes; returns (status, headers, body) of the first answer, or None if none came."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        try:
            connection.sendall(data)
            if half_close:
                connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        reply = connection.makefile("rb")
        line = reply.readline()
        if not line:
            return None
        status = int(line.split()[1])
        headers = {}
        while (text := reply.readline().strip()):
            key, _, value = text.decode("latin-1").partition(":")
            headers[key.lower()] = value.strip()
        return status, headers, reply.read(int(headers.get("content-length", 0)))


def _assert_json_error(answer, status, needle=""):
    assert answer is not None, "no answer"
    got, headers, body = answer
    assert got == status, (got, body)
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert list(document) == ["error"] and needle in document["error"], document
    assert "Traceback" not in document["error"] and "/tmp/" not in document["error"]


def _assert_still_serving(port):
    status, body = rest_json(port, "POST", "/v1/models/lm:predict", {"inputs": IDS})
    assert status == 200 and len(body["outputs"]) == 1


def _post(body, extra=b""):
    return HEAD + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


FRAMING = [
    # (raw request, status, message part)
    (HEAD + b"Content-Length: +63\r\n\r\n" + GOOD, 400, "Content-Length"),
    (HEAD + b"Content-Length: 6_3\r\n\r\n" + GOOD, 400, "Content-Length"),
    (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n" + GOOD, 400, ""),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x10\r\n" + GOOD[:16] + b"\r\n0\r\n\r\n", 400, "chunk"),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n1_0\r\n" + GOOD[:16] + b"\r\n0\r\n\r\n", 400, "chunk"),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabcde\r\n0\r\n\r\n", 400, "chunk"),
    (HEAD + b"Content-Length: 99999999999\r\n\r\n{", 413, "larger than the limit"),
    (b"GET /v1/models/lm HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP version"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP version"),
    (b"get /v1/models/lm HTTP/1.1\r\nHost: x\r\n\r\n", 501, "Method not implemented: get"),
    (b"BREW /v1/models/lm HTTP/1.1\r\nHost: x\r\n\r\n", 501, "BREW"),
    (b"GET /v1/models/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "longer than"),
    (b"GET /v1/models/lm HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431, "headers"),
    (b"GET /v1/models/lm HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 40000 + b"\r\n\r\n", 431, "header"),
    (b"GET /v1/models/lm HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, ""),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40) + b"\r\n\r\n", 400, ""),  # a TLS hello
    (_post(GOOD, b"Content-Encoding: gzip\r\n"), 400, "gzip"),
    (_post(GOOD, b"Content-Encoding: br\r\n"), 415, "Content-Encoding"),
]

BODIES = [
    (b'{"inputs": "\xff\xfe"}', 400, "invalid UTF-8 at byte offset 12"),
    (b'{"signature_name": "\\ud800", "inputs": [[1]]}', 400, "lone UTF-16 surrogate"),
    (b'{"\\udc00": 1, "inputs": [[1]]}', 400, "lone UTF-16 surrogate"),
    (b'{"signature_name": "generate", "inputs": ["\\ud800"]}', 400, "$.inputs[0]"),
    (b'{"inputs": {"\\ud800": [[1]]}}', 400, "lone UTF-16 surrogate"),
    (b'{"inputs": ' + b"[" * 976 + b"]" * 976 + b"}", 400, "nesting depth"),
    (b'{"instances": 5, "x": ' + b"[" * 90 + b"]" * 90 + b"}", 400, "instances"),
    (b'{"inputs": [[1e999]]}', 400, "int32"),
    (b'{"inputs": [[NaN]]}', 400, "int32"),
    (b'{"inputs": [[9223372036854775808]]}', 400, ""),
    (b'{"inputs": [[true]]}', 400, "int32"),
    (b'{"inputs": [[{"b64": "AA=="}]]}', 400, ""),
    (b'{"signature_name": "generate", "inputs": [{"b64": "@@@"}]}', 400, "base64"),
    (b'{"signature_name": "generate", "inputs": [{"b64": 5}]}', 400, ""),
    (b'{"signature_name": "slow", "inputs": [[[[[1.0]]]]]}', 400, ""),
    (b'{"inputs": [[1, [2]]]}', 400, ""),
    (b'{"inputs": []}', 400, ""),
    (b'{"inputs": ' + b"[1]" * 3 + b"}", 400, "JSON Parse error"),
    (b'{"signature_name": ["x"], "inputs": [[1]]}', 400, "signature_name"),
]

PATHS = [
    (b"GET /v1/models/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not valid UTF-8"),
    (b"GET /v1/models/lm/labels/%ed%a0%80 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not valid UTF-8"),
    (b"GET /v1/models/lm/versions/99999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Failed to convert"),
    (b"GET /v1/models/lm/versions/-1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Malformed request"),
    (b"PUT /v1/models/lm:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400, "Malformed request"),
    (b"DELETE /v1/models/lm HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Malformed request"),
    (b"POST /v1/models/lm/labels/x%2F..:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 400, ""),
    (b"POST /v1/models/..%2F..%2Fetc:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\n"
     b'{"inputs": [[1]]}\n', 404, "Servable not found"),
]


def test_hostile_framing_methods_and_headers_get_json_errors(server):
    for data, status, needle in FRAMING:
        _assert_json_error(_exchange(server.rest_port, data), status, needle)
    _assert_still_serving(server.rest_port)


def test_hostile_bodies_get_400_naming_the_problem(server):
    for body, status, needle in BODIES:
        _assert_json_error(_exchange(server.rest_port, _post(body)), status, needle)
    _assert_still_serving(server.rest_port)


def test_hostile_paths(server):
    for data, status, needle in PATHS:
        _assert_json_error(_exchange(server.rest_port, data), status, needle)
    _assert_still_serving(server.rest_port)


def test_truncated_body_is_400_and_never_processed(server):
    data = HEAD + b"Content-Length: %d\r\n\r\n" % (len(GOOD) + 10) + GOOD
    _assert_json_error(_exchange(server.rest_port, data, half_close=True), 400, "incomplete")
    # A chunk declaring 1 TiB, then the client stops sending.
    data = HEAD + b"Transfer-Encoding: chunked\r\n\r\n10000000000\r\n" + GOOD
    _assert_json_error(_exchange(server.rest_port, data, half_close=True), 400, "incomplete")
    # More chunked bytes than --max_request_bytes (1 MiB here): 413.
    chunk = b"x" * 2**16
    data = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 20 + b"0\r\n\r\n"
    _assert_json_error(_exchange(server.rest_port, data), 413, "larger than the limit")
    _assert_still_serving(server.rest_port)


def test_slow_and_idle_clients_are_bounded(built, tmp_path):
    from serving.http_server import HttpLimits
    from serving.rest import RestApi, RestServer
    from serving import ModelServer, ServerOptions
    from tests.serving import models

    models.install(built["lm1"], str(tmp_path / "lm"), 1)
    options = ServerOptions(model_name="lm", model_base_path=str(tmp_path / "lm"), port=0,
                            file_system_poll_wait_seconds=0)
    with ModelServer(options) as model_server:
        limits = HttpLimits(header_timeout=0.5, body_timeout=0.5, idle_timeout=0.5, max_connections=4)
        rest = RestServer(RestApi(model_server.core), "127.0.0.1", 0, 2**20, limits=limits).start()
        try:
            port = rest.port
            # Headers that never finish: 408 within the header timeout.
            _assert_json_error(_exchange(port, b"GET /v1/models/lm HTTP/1.1\r\nHost"), 408, "headers")
            # A body that stops: 408.
            _assert_json_error(_exchange(port, HEAD + b"Content-Length: 100\r\n\r\n{"), 408, "body")
            # Idle keep-alive connections are closed; more than max_connections never pile up.
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
            time.sleep(1.0)
            assert rest.http.open_connections() <= 4
            for connection in idle:
                connection.close()
            _assert_still_serving(port)
        finally:
            rest.stop(1)


def test_server_sent_events_route():
    from serving.http_server import EventStream, HttpServer, Router

    async def events(request):
        async def generate():
            for i in range(3):
                yield {"token": i}
            yield ("done", "[DONE]")

        return EventStream(generate())

    router = Router()
    router.add(r"/stream", events, methods=["GET"], blocking=False)
    server = HttpServer(router, "127.0.0.1", 0).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"0\r\n\r\n"):
                chunk = connection.recv(4096)
                assert chunk
                data += chunk
        assert b"content-type: text/event-stream" in data.lower()
        assert b'data: {"token": 2}\n\n' in data and b"event: done\ndata: [DONE]\n\n" in data
        status = _exchange(server.port, b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        _assert_json_error(status, 405, "allowed: GET")
    finally:
        server.stop(1)


# ----------------------------------------------------------------------------- the JSON tensor codec

_LEAVES = {
    types_pb2.DT_INT32: st.integers(-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: st.integers(-(2**63), 2**63 - 1),
    types_pb2.DT_FLOAT: st.floats(width=32, allow_nan=False),
    types_pb2.DT_DOUBLE: st.floats(allow_nan=False),
    types_pb2.DT_BOOL: st.booleans(),
    types_pb2.DT_STRING: st.text(max_size=8),
}


@st.composite
def _tensor(draw):
    dtype = draw(st.sampled_from(sorted(_LEAVES)))
    shape = draw(st.lists(st.integers(1, 3), max_size=3))
    flat = draw(st.lists(_LEAVES[dtype], min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return dtype, np.array(flat, dtype=object).reshape(shape).tolist() if shape else flat[0]


@hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
@hypothesis.given(_tensor())
def test_codec_round_trip(case):
    dtype, value = case
    array = json_tensor.tensor_from_json(value, dtype)
    expected = np.array(value, dtype=object)
    assert array.shape == expected.shape
    if dtype == types_pb2.DT_STRING:
        assert [v.decode() for v in array.ravel()] == [str(v) for v in expected.ravel()]
    else:
        np.testing.assert_array_equal(array.astype(object).ravel().tolist(), expected.ravel().tolist())


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                     max_leaves=20)


@hypothesis.settings(max_examples=200, deadline=None, derandomize=True)
@hypothesis.given(_JSON, st.sampled_from(sorted(_LEAVES)))
def test_codec_never_fails_with_anything_but_a_client_error(value, dtype):
    body = json.dumps({"inputs": value}).encode()
    try:
        document = json_tensor.parse_body(body)
        json_tensor.predict_inputs(document, {"x": dtype})
    except ServingError as error:
        assert error.http_status < 500, error


def _router_server(**routes):
    """An HttpServer over a Router of `name -> handler` routes at `/name` (no model involved)."""
    from serving.http_server import HttpServer, Router

    router = Router()
    for name, (handler, blocking, timeout) in routes.items():
        router.add("/" + name, handler, blocking=blocking, timeout=timeout)
    return HttpServer(router, "127.0.0.1", 0).start()


def test_pipelined_requests_are_answered_in_order():
    from serving.http_server import Response

    def echo(request):
        time.sleep(0.05 if request.body == b"slow" else 0)
        return Response(200, request.body, "text/plain")

    server = _router_server(echo=(echo, True, None))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            requests = [b"slow", b"second", b"third"]
            connection.sendall(b"".join(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                                        for body in requests))
            reply = connection.makefile("rb")
            for body in requests:
                assert reply.readline().startswith(b"HTTP/1.1 200")
                headers = {}
                while (line := reply.readline().strip()):
                    key, _, value = line.decode().partition(":")
                    headers[key.lower()] = value.strip()
                assert reply.read(int(headers["content-length"])) == body
    finally:
        server.stop(1)


def test_client_gone_and_deadline_reach_the_handler():
    import threading

    from serving.http_server import Response

    seen, release = {}, threading.Event()

    def wait(request):
        release.wait(10)
        seen[request.body] = request.expired()
        return Response(200, b"late", "text/plain")

    def never(request):
        time.sleep(3)
        seen["deadline"] = request.expired()
        return Response(200, b"too late", "text/plain")

    server = _router_server(wait=(wait, True, None), never=(never, True, 0.2))
    try:
        # The client closes while its request runs: the handler sees the request expired.
        connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        connection.sendall(b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ngone")
        time.sleep(0.3)
        connection.close()
        time.sleep(0.3)
        release.set()
        _wait_for(lambda: b"gone" in seen)
        assert seen[b"gone"] is True
        # A route's timeout: the client gets a 504 at the deadline's backstop, the handler sees expired().
        started = time.monotonic()
        answer = _exchange(server.port, b"POST /never HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        _assert_json_error(answer, 504, "Deadline exceeded")
        assert time.monotonic() - started < 2.5
        _wait_for(lambda: "deadline" in seen)
        assert seen["deadline"] is True
    finally:
        server.stop(1)


def _wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
