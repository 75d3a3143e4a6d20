"""A strict HTTP/1.1 front end: `h11` under an asyncio server, a small router, server-sent events.

    router = Router()
    router.add(r"/v1/.*", handler)                      # handler(request) -> Response, in a worker thread
    router.add(r"/v1/stream", stream, blocking=False)   # async handler -> Response or EventStream
    server = HttpServer(router, "127.0.0.1", 0, HttpLimits(max_body_bytes=2**20))
    server.start(); ...; server.stop(grace_seconds=5)

Framing is h11's job (it accepts only digits in `Content-Length`, only hex
chunk sizes, rejects conflicting lengths, and reports a body cut short by the
peer), so a request is processed only once its whole body has arrived. On top
of that this module enforces limits and timeouts, each answered with a JSON
error `{"error": "..."}`: request line longer than `max_url_bytes` (414),
header block over `max_header_bytes` or more than `max_headers` headers (431),
body over `max_body_bytes` (413; the rest of the body is read and dropped, up
to `max_drain_bytes`, so the client can read the answer), headers or body not
arriving within `header_timeout` / `body_timeout` (408), unknown methods (501),
HTTP versions other than 1.x (505), and malformed framing (400). Idle
keep-alive connections close after `idle_timeout`; at most `max_connections`
are open (the oldest idle one is closed to make room, else the newcomer gets
503). Request bodies with `Content-Encoding: gzip` are inflated up to
`max_body_bytes`.

A request carries a `deadline` (monotonic seconds, from the route's
`timeout`) and a `client_gone` event that is set when the peer closes the
connection while its request is running, so work that can no longer answer
anyone can be dropped before it runs. `stop()` stops accepting, waits (up to
the grace period) for requests whose client is still there and whose deadline
has not passed, then closes every connection.
"""

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import re
import socket
import threading
import time
import zlib

import h11

from serving import access_log

logger = logging.getLogger(__name__)

# Methods this server knows (RFC 9110); anything else, lowercase spellings included, is 501.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_READ_SIZE = 1 << 16


@dataclasses.dataclass
class HttpLimits:
    max_body_bytes: int = 64 * 2**20  # 0 = no limit
    max_url_bytes: int = 8 * 1024  # the request target
    max_header_bytes: int = 32 * 1024  # request line + headers
    max_headers: int = 100
    header_timeout: float = 10.0  # from the first byte of a request to its last header
    body_timeout: float = 60.0  # from the last header to the last body byte
    idle_timeout: float = 75.0  # a kept-alive connection with no request in progress
    max_connections: int = 1024
    backlog: int = 1024
    max_drain_bytes: int = 64 * 2**20  # an oversized body is read and dropped up to this, then the connection closes
    worker_threads: int = 64  # blocking handlers run here


class HttpError(Exception):
    """An answer decided by the transport (status, message), sent as a JSON error."""

    def __init__(self, status, message, close=False):
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


@dataclasses.dataclass
class Request:
    method: str
    target: str  # as sent (ASCII; h11 admits only visible ASCII characters)
    path: str  # target without the query, still percent-encoded
    query: str
    headers: list  # [(lowercase name, value)] as latin-1 strings
    body: bytes = b""
    peer: object = None
    deadline: float = None  # monotonic seconds, None = none
    # Set when nobody waits for the answer any more: the client closed, or the server answered 504 already.
    client_gone: threading.Event = dataclasses.field(default_factory=threading.Event)
    log: dict = dataclasses.field(default_factory=dict)  # what the handler notes for the access log
    received: float = dataclasses.field(default_factory=time.monotonic)

    def header(self, name, default=None):
        name = name.lower()
        return next((value for key, value in self.headers if key == name), default)

    def expired(self):
        return self.client_gone.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list = dataclasses.field(default_factory=list)


def error_body(message):
    """TensorFlow Serving's error shape; lone surrogates come out as JSON escapes, never as a failure."""
    return json.dumps({"error": message}, indent=4, ensure_ascii=False).encode("utf-8", errors="backslashreplace")


def json_error(status, message, headers=()):
    return Response(status, error_body(message), headers=list(headers))


class EventStream:
    """A server-sent-events answer: `events` is an async iterator of str, bytes, dict (sent as JSON) or
    `(event_name, data)` pairs; each becomes one `event:`/`data:` record. Sent with chunked framing; the
    iterator is closed when the client goes away."""

    def __init__(self, events, status=200, headers=()):
        self.events, self.status, self.headers = events, status, list(headers)

    @staticmethod
    def encode(item):
        name = None
        if isinstance(item, tuple):
            name, item = item
        if isinstance(item, (dict, list)):
            item = json.dumps(item, ensure_ascii=False)
        if isinstance(item, bytes):
            item = item.decode("utf-8", errors="replace")
        lines = [f"event: {name}"] if name else []
        lines += [f"data: {line}" for line in str(item).split("\n")]
        return ("\n".join(lines) + "\n\n").encode("utf-8", errors="backslashreplace")


@dataclasses.dataclass
class Route:
    pattern: re.Pattern
    handler: object
    methods: frozenset = None  # None = any method
    blocking: bool = True  # True: called in a worker thread; False: an `async def`, awaited on the loop
    timeout: float = None  # seconds until request.deadline; None = no deadline


class Router:
    """Routes by full match of the (percent-encoded) path, first added first."""

    def __init__(self, fallback=None):
        self.routes = []
        self.fallback = fallback or (lambda request: Response(404, b"Not Found", "text/plain"))

    def add(self, pattern, handler, methods=None, blocking=True, timeout=None):
        if isinstance(pattern, str):
            pattern = re.compile(pattern)
        self.routes.append(Route(pattern, handler, frozenset(methods) if methods else None, blocking, timeout))
        return handler

    def match(self, method, path):
        allowed = set()
        for route in self.routes:
            if route.pattern.fullmatch(path):
                if route.methods is None or method in route.methods:
                    return route
                allowed |= route.methods
        if allowed:
            raise HttpError(405, f"Method {method} is not allowed for {path}; allowed: {', '.join(sorted(allowed))}")
        return None


class HttpServer:
    def __init__(self, router, host, port, limits=None, extra_headers=(), ssl_context=None, access_log=None):
        """`extra_headers`: (name, value) pairs added to every answer (CORS, for example);
        `ssl_context`: serve HTTPS; `access_log`: a `serving.access_log.AccessLog` (one line per answer)."""
        self.router, self.limits, self.extra_headers = router, limits or HttpLimits(), list(extra_headers)
        self.ssl_context, self.access_log = ssl_context, access_log
        self.stopping = False
        self._connections = set()  # _Connection objects
        self._loop = self._server = self._thread = None
        self._pool = concurrent.futures.ThreadPoolExecutor(self.limits.worker_threads, thread_name_prefix="http")
        self._socket = self._bind(host, port)

    def _bind(self, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(self.limits.backlog)
        except OSError as error:
            sock.close()
            raise OSError(error.errno, f"Cannot listen on {host}:{port}: {error.strerror}") from None
        sock.setblocking(False)
        return sock

    @property
    def port(self):
        return self._socket.getsockname()[1]

    def start(self):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

            async def serve():
                self._server = await self._loop.create_server(
                    lambda: _Connection(self), sock=self._socket, backlog=self.limits.backlog, ssl=self.ssl_context,
                    ssl_handshake_timeout=self.limits.header_timeout if self.ssl_context else None)
                ready.set()

            self._loop.run_until_complete(serve())
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="http", daemon=True)
        self._thread.start()
        ready.wait(30)
        return self

    def log(self, request, status, bytes_out):
        if self.access_log is None or request is None:
            return
        peer = request.peer
        record = {"entrypoint": "rest", "peer": f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
                  "method": request.method, "path": request.path, **request.log}
        self.access_log.write(record, request.received, status=status, bytes_in=len(request.body),
                              bytes_out=bytes_out)

    def open_connections(self):
        return len(self._connections)

    def stop(self, grace_seconds=30.0):
        """Stops accepting, waits for requests that can still be answered, then closes every connection."""
        if self._loop is None or self.stopping:
            return
        self.stopping = True
        asyncio.run_coroutine_threadsafe(self._shutdown(grace_seconds), self._loop).result(grace_seconds + 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self, grace_seconds):
        self._server.close()
        deadline = time.monotonic() + grace_seconds
        for connection in list(self._connections):
            connection.close_if_idle()
        while any(c.answerable() for c in self._connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        busy = sum(c.answerable() for c in self._connections)
        if busy:
            logger.warning("HTTP: %d requests still running after %.1fs; closing", busy, grace_seconds)
        for connection in list(self._connections):
            connection.abort()

    def _admit(self, connection):
        """True if `connection` may be served: at most `max_connections` are open (the oldest idle one makes room)."""
        if len(self._connections) >= self.limits.max_connections:
            idle = [c for c in self._connections if c.idle_since is not None]
            if not idle:
                return False
            min(idle, key=lambda c: c.idle_since).abort()
        self._connections.add(connection)
        return True


def _raw_error(status, message):
    """A complete HTTP/1.1 answer written without h11 (for connections h11 never saw)."""
    body = error_body(message)
    reason = {503: "Service Unavailable"}.get(status, "Error")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class _Connection(asyncio.Protocol):
    """One client connection, driven by the event loop's callbacks (no task per read): bytes go to h11 as they
    arrive, a complete request goes to its handler, the answer is written when the handler returns.

    Phases: "idle" (waiting for a request's first byte; `idle_timeout`), "head" (`header_timeout` from the
    first byte), "body" (`body_timeout` from the last header), "drain" (dropping an oversized body, same
    timeout), "busy" (a handler runs; bytes that arrive are kept for the next request), "closed".
    """

    def __init__(self, server):
        self.server, self.limits = server, server.limits
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        self.loop = asyncio.get_running_loop()
        self.transport = self.peer = None
        self.phase, self.timer = "idle", None
        self.idle_since = time.monotonic()
        self.current = None  # the Request being handled
        self.request = None  # the Request being read
        self._head = bytearray()  # the bytes of the current request's head (for messages)
        self._parts, self._size, self._draining = [], 0, None
        self._stream_task = None
        self._writable = None  # a Future while the transport's write buffer is full

    # -------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if not self.server._admit(self):
            self.phase = "closed"
            transport.write(_raw_error(503, "Too many open connections"))
            transport.close()
            return
        self._set_timer(self.limits.idle_timeout, None)

    def data_received(self, data):
        if self.phase == "closed":
            return
        try:
            self.h11.receive_data(data)
        except RuntimeError:  # bytes after the peer's end of stream cannot happen; be safe
            return
        if self.phase == "busy":
            if len(self.h11.trailing_data[0]) > self.limits.max_header_bytes + _READ_SIZE:
                self.transport.pause_reading()  # a pipelining client waits for its answers
            return
        if self.phase == "idle":
            self._start_head()
        if self.phase == "head":
            head = self._head
            head.extend(data[: self.limits.max_header_bytes + 2 - len(head)])
            if b"\n" not in head and len(head) > self.limits.max_url_bytes + 16:
                return self._fail(HttpError(414, f"Request line is longer than {self.limits.max_url_bytes} bytes",
                                            close=True))
        self._process()

    def eof_received(self):
        if self.phase == "busy" and self.current is not None:
            self.current.client_gone.set()  # nobody reads the answer's end any more
        try:
            self.h11.receive_data(b"")
        except RuntimeError:
            pass
        if self.phase in ("idle", "head", "body", "drain"):
            self._process()
        return self.server.ssl_context is None  # keep the transport open for an answer in progress (not for TLS)

    def connection_lost(self, exc):
        if self.current is not None:
            self.current.client_gone.set()
        self.phase = "closed"
        self._set_timer(None)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self.server._connections.discard(self)

    def pause_writing(self):
        self._writable = self.loop.create_future()

    def resume_writing(self):
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -------------------------------------------------------------- state for shutdown
    def answerable(self):
        request = self.current
        return request is not None and not request.expired()

    def close_if_idle(self):
        if self.current is None:
            self.abort()

    def abort(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -------------------------------------------------------------- timers
    def _set_timer(self, seconds, error=None):
        """One timer per connection: on expiry an idle connection closes quietly, others answer `error`."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if seconds is not None:
            self.timer = self.loop.call_later(seconds, self._expired, error)

    def _start_head(self):
        """A request's first byte is here: the header timeout runs from now."""
        self.phase, self.idle_since = "head", None
        self._set_timer(self.limits.header_timeout,
                        HttpError(408, f"Request headers did not arrive within {self.limits.header_timeout:g} s",
                                  close=True))

    def _expired(self, error):
        self.timer = None
        if error is None:
            self.abort()
        else:
            self._fail(error)

    # -------------------------------------------------------------- reading
    def _process(self):
        """Feeds h11's events to the request being read until it needs more bytes or a handler takes over."""
        try:
            while self.phase in ("idle", "head", "body", "drain"):
                event = self.h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.ConnectionClosed):
                    if self.phase == "head" or self._head:
                        raise HttpError(400, "Connection closed before the request headers were complete", True)
                    self.abort()
                    return
                if isinstance(event, h11.Request):
                    self._start_request(event)
                elif isinstance(event, h11.Data):
                    self._body_data(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._end_of_body()
        except HttpError as error:
            self._fail(error)
        except h11.RemoteProtocolError as error:
            self._fail(self._protocol_error(error))

    def _start_request(self, event):
        limits = self.limits
        method = event.method.decode("latin-1")
        target = event.target.decode("latin-1")
        if len(event.target) > limits.max_url_bytes:
            raise HttpError(414, f"Request target is longer than {limits.max_url_bytes} bytes", close=True)
        if len(event.headers) > limits.max_headers:
            raise HttpError(431, f"Request has {len(event.headers)} headers; at most {limits.max_headers} are allowed",
                            close=True)
        size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
        if size > limits.max_header_bytes:  # h11 checks only heads that arrive in pieces
            raise HttpError(431, f"Request header block is larger than {limits.max_header_bytes} bytes", close=True)
        if event.http_version not in (b"1.0", b"1.1"):
            raise HttpError(505, f"HTTP version {event.http_version.decode('latin-1')} is not supported", close=True)
        if method not in KNOWN_METHODS:
            raise HttpError(501, f"Method not implemented: {method}", close=True)
        path, _, query = target.partition("?")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
        self.request = Request(method, target, path, query, headers, peer=self.peer)
        self._parts, self._size, self._draining = [], 0, None
        self.phase = "body"
        self._set_timer(limits.body_timeout,
                        HttpError(408, f"Request body did not arrive within {limits.body_timeout:g} s", close=True))
        limit = limits.max_body_bytes
        declared = self.request.header("content-length")
        if limit and declared is not None and int(declared) > limit:
            self._drain(HttpError(413, f"Request body of {declared} bytes is larger than the limit of {limit} bytes "
                                       "(--max_request_bytes)"), int(declared))
        elif self.h11.client_is_waiting_for_100_continue:
            self._write(h11.InformationalResponse(status_code=100, headers=[]))

    def _drain(self, error, declared=None):
        """Reads and drops the rest of an oversized body (bounded), so the client can read the 413."""
        if declared is not None and declared > self.limits.max_drain_bytes:
            raise HttpError(error.status, error.message, close=True)
        self.phase, self._draining, self._parts = "drain", error, []
        self._set_timer(self.limits.body_timeout, HttpError(error.status, error.message, close=True))

    def _body_data(self, data):
        self._size += len(data)
        limit = self.limits.max_body_bytes
        if self._draining is not None:
            if self._size > self.limits.max_drain_bytes:
                raise HttpError(self._draining.status, self._draining.message, close=True)
            return
        if limit and self._size > limit:
            self._drain(HttpError(413, f"Request body is larger than the limit of {limit} bytes "
                                       "(--max_request_bytes)"))
            return
        self._parts.append(data)

    def _end_of_body(self):
        request, self.request = self.request, None
        self._set_timer(None)
        if self._draining is not None:
            error, self._draining = self._draining, None
            raise error
        body = b"".join(self._parts)
        self._parts = []
        encoding = (request.header("content-encoding") or "").strip().lower()
        if encoding == "gzip":
            body = _gunzip(body, self.limits.max_body_bytes)
        elif encoding not in ("", "identity"):
            raise HttpError(415, f"Unsupported Content-Encoding: {encoding}")
        request.body = body
        self._dispatch(request)

    def _protocol_error(self, error):
        """h11's complaint as an HttpError with a message that names the problem."""
        text = str(error)
        if error.error_status_hint == 431:
            return HttpError(431, f"Request header block is larger than {self.limits.max_header_bytes} bytes", True)
        if "Content-Length" in text:
            found = re.search(rb"(?im)^content-length:[ \t]*([^\r\n]*)", bytes(self._head))
            value = found.group(1).decode("latin-1").strip() if found else ""
            return HttpError(400, f"Malformed Content-Length header: {value!r}", True)
        if "chunk" in text:
            return HttpError(400, f"Malformed chunk size line in a chunked request body ({text})", True)
        if "peer closed" in text:
            return HttpError(400, f"Request body is incomplete: {text}", True)
        return HttpError(error.error_status_hint, f"Malformed HTTP request: {text}", True)

    # -------------------------------------------------------------- answering
    def _dispatch(self, request):
        """Starts the handler; its answer is written from a callback when it is done."""
        try:
            route = self.server.router.match(request.method, request.path)
        except HttpError as error:
            return self._fail(error, request)
        if route is None:
            handler, blocking = self.server.router.fallback, True
        else:
            handler, blocking = route.handler, route.blocking
            if route.timeout:
                request.deadline = time.monotonic() + route.timeout
        self.current, self.phase = request, "busy"
        if blocking:
            work = self.loop.run_in_executor(self.server._pool, access_log.bound, request.log, handler, request)
        else:
            work = asyncio.ensure_future(handler(request))
        backstop = None
        if request.deadline is not None:
            # A handler still queued well past the deadline is answered here (it drops its work when it starts).
            backstop = self.loop.call_at(request.deadline + 1.0, self._backstop, request, work)
        work.add_done_callback(lambda future: self._handled(request, future, backstop))

    def _backstop(self, request, work):
        if self.current is request:
            request.client_gone.set()
            self._finish(request, json_error(504, "Deadline exceeded before the request could run"))

    def _handled(self, request, future, backstop):
        if backstop is not None:
            backstop.cancel()
        if self.current is not request:
            return  # answered by the backstop already
        try:
            result = future.result()
        except Exception as error:  # noqa: BLE001 - a handler bug is a 500, never a dropped connection
            logger.error("HTTP handler failed for %s %s", request.method, request.path, exc_info=error)
            result = json_error(500, f"Internal error: {type(error).__name__}")
        self._finish(request, result)

    def _finish(self, request, result):
        self.current = None
        if self.phase == "closed":
            return
        if isinstance(result, EventStream):
            self._stream_task = asyncio.ensure_future(self._stream(request, result))
            return
        close = self.server.stopping or request.client_gone.is_set()
        headers = [("Content-Type", result.content_type), ("Content-Length", str(len(result.body)))]
        headers += result.headers + self.server.extra_headers
        if close:
            headers.append(("Connection", "close"))
        self._write(h11.Response(status_code=result.status, headers=headers),
                    h11.Data(data=result.body if request.method != "HEAD" else b""), h11.EndOfMessage())
        self.server.log(request, result.status, len(result.body))
        self._next_cycle(not close)

    def _next_cycle(self, keep):
        """After an answer: closes, or starts reading the next request (perhaps already buffered)."""
        if not keep or self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE \
                or self.server.stopping:
            self.phase = "closed"
            self._set_timer(None)
            self.abort()
            return
        self.h11.start_next_cycle()
        self.phase, self.idle_since, self._head = "idle", time.monotonic(), bytearray()
        self._set_timer(self.limits.idle_timeout, None)
        self.transport.resume_reading()
        if self.h11.trailing_data[0] or self.h11.trailing_data[1]:
            self._start_head()
            self._head.extend(self.h11.trailing_data[0][: self.limits.max_header_bytes + 2])
            self._process()

    async def _stream(self, request, stream):
        headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
        headers += stream.headers + self.server.extra_headers
        if self.h11.their_http_version == b"1.0":
            headers.append(("Connection", "close"))
        events = stream.events
        sent, keep = 0, False
        self.current = request
        try:
            self._write(h11.Response(status_code=stream.status, headers=headers))
            async for item in events:
                if self.transport.is_closing():
                    request.client_gone.set()
                    break
                data = EventStream.encode(item)
                self._write(h11.Data(data=data))
                sent += len(data)
                if self._writable is not None:
                    await self._writable
            else:
                self._write(h11.EndOfMessage())
                keep = True
        except (ConnectionError, OSError):
            request.client_gone.set()
        finally:
            self.current = None
            closer = getattr(events, "aclose", None)
            if closer is not None:
                await closer()
            self.server.log(request, stream.status, sent)
        self._next_cycle(keep and self.h11.their_http_version != b"1.0")

    def _write(self, *events):
        """Sends h11 events in one write (one TCP segment for a small answer)."""
        data = b"".join(self.h11.send(event) or b"" for event in events)
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, error, request=None):
        """Answers with a JSON error if h11 still lets us, then closes or goes on with the next request."""
        self._set_timer(None)
        self.request, self._parts, self._draining = None, [], None
        if self.phase == "closed":
            return
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self.phase = "closed"
            self.abort()
            return
        headers = [("Content-Type", "application/json")]
        body = error_body(error.message)
        headers.append(("Content-Length", str(len(body))))
        if error.status == 405:
            allowed = re.search(r"allowed: (.*)$", error.message)
            headers.append(("Allow", allowed.group(1) if allowed else ""))
        close = error.close or self.server.stopping
        if close:
            headers.append(("Connection", "close"))
        try:
            if self.h11.our_state is h11.IDLE or self.h11.their_state is h11.ERROR:
                # h11 refuses to answer after a protocol error; write the answer ourselves.
                self.transport.write(_status_line(error.status, headers) + body)
                self.phase = "closed"
                self.abort()
                return
            self._write(h11.Response(status_code=error.status, headers=headers + self.server.extra_headers),
                        h11.Data(data=body if request is None or request.method != "HEAD" else b""),
                        h11.EndOfMessage())
        except h11.LocalProtocolError:
            self.phase = "closed"
            self.abort()
            return
        self.server.log(request, error.status, len(body))
        self._next_cycle(not close)


def _status_line(status, headers):
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"] + [f"{k}: {v}" for k, v in headers]
    if not any(k.lower() == "connection" for k, _ in headers):
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
            415: "Unsupported Media Type", 431: "Request Header Fields Too Large", 501: "Not Implemented",
            503: "Service Unavailable", 505: "HTTP Version Not Supported"}


def _gunzip(body, limit):
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1 if limit else 0)
    except zlib.error as error:
        raise HttpError(400, f"Failed to decompress gzip request body: {error}") from None
    if limit and len(data) > limit:
        raise HttpError(413, f"Decompressed request body is larger than the limit of {limit} bytes "
                             "(--max_request_bytes)")
    return data
