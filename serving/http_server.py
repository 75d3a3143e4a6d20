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
                self._server = await asyncio.start_server(self._accept, sock=self._socket,
                                                          backlog=self.limits.backlog, ssl=self.ssl_context,
                                                          ssl_handshake_timeout=self.limits.header_timeout
                                                          if self.ssl_context else None)
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
        while time.monotonic() < deadline:
            busy = [c for c in self._connections if c.answerable()]
            if not busy:
                break
            await asyncio.sleep(0.01)
        else:
            logger.warning("HTTP: %d requests still running after %.1fs; closing", len(self._connections), grace_seconds)
        for connection in list(self._connections):
            connection.abort()

    async def _accept(self, reader, writer):
        if len(self._connections) >= self.limits.max_connections:
            idle = [c for c in self._connections if c.idle_since is not None]
            if idle:
                min(idle, key=lambda c: c.idle_since).abort()
            else:
                writer.write(_raw_error(503, "Too many open connections"))
                await _close(writer)
                return
        connection = _Connection(self, reader, writer)
        self._connections.add(connection)
        try:
            await connection.serve()
        except Exception:  # noqa: BLE001 - one connection's failure never stops the server
            logger.exception("HTTP connection failed")
        finally:
            self._connections.discard(connection)
            await _close(writer)


def _raw_error(status, message):
    """A complete HTTP/1.1 answer written without h11 (for connections h11 never saw)."""
    body = error_body(message)
    reason = {503: "Service Unavailable"}.get(status, "Error")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


async def _close(writer):
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        pass


class _Connection:
    """One client connection: reads requests with h11, answers them in order."""

    def __init__(self, server, reader, writer):
        self.server, self.limits, self.reader, self.writer = server, server.limits, reader, writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        self.idle_since = time.monotonic()
        self.current = None  # the Request being handled
        self._head = bytearray()  # the bytes of the current request's head (for messages)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.peer = writer.get_extra_info("peername")

    # -------------------------------------------------------------- state for shutdown
    def answerable(self):
        request = self.current
        return request is not None and not request.expired()

    def close_if_idle(self):
        if self.current is None:
            self.abort()

    def abort(self):
        transport = self.writer.transport
        if not transport.is_closing():
            transport.close()

    # -------------------------------------------------------------- reading
    async def _receive(self, timeout):
        try:
            data = await asyncio.wait_for(self.reader.read(_READ_SIZE), timeout)
        except asyncio.TimeoutError:
            return None
        except (ConnectionError, OSError):
            data = b""
        self.h11.receive_data(data)
        return data

    async def _next_event(self, until, head=None):
        """The next h11 event, reading as needed; None on timeout. `head` collects the bytes of the request head."""
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            data = await self._receive(remaining)
            if data is None:
                return None
            if head is not None:
                head.extend(data[: self.limits.max_header_bytes + 2 - len(head)])
                if b"\n" not in head and len(head) > self.limits.max_url_bytes + 16:
                    raise HttpError(414, f"Request line is longer than {self.limits.max_url_bytes} bytes", close=True)

    async def serve(self):
        while not self.server.stopping:
            try:
                request = await self._read_request()
                keep = request is not None and await self._answer(request)
            except HttpError as error:
                keep = await self._send_error(error)
            except h11.RemoteProtocolError as error:
                keep = await self._send_error(self._protocol_error(error))
            if not keep or self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                return
            self.h11.start_next_cycle()
            self.idle_since = time.monotonic()

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

    async def _read_request(self):
        limits = self.limits
        head = self._head = bytearray()
        # Idle wait for the first byte of a request, then the header timeout for the rest of the head.
        event = self.h11.next_event()
        if event is h11.NEED_DATA:
            data = await self._receive(limits.idle_timeout)
            if not data:
                return None  # idle timeout or peer closed: close quietly
            head.extend(data[: limits.max_header_bytes + 2])
            if b"\n" not in head and len(head) > limits.max_url_bytes + 16:
                raise HttpError(414, f"Request line is longer than {limits.max_url_bytes} bytes", close=True)
            event = await self._next_event(time.monotonic() + limits.header_timeout, head)
        self.idle_since = None
        if event is None:
            raise HttpError(408, f"Request headers did not arrive within {limits.header_timeout:g} s", close=True)
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise HttpError(400, "Malformed HTTP request", close=True)
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
        request = Request(method, target, path, query, headers, peer=self.peer)
        request.body = await self._read_body(request)
        return request

    async def _read_body(self, request):
        limits = self.limits
        limit = limits.max_body_bytes
        declared = request.header("content-length")
        if limit and declared is not None and int(declared) > limit:
            await self._drain(int(declared))
            raise HttpError(413, f"Request body of {declared} bytes is larger than the limit of {limit} bytes "
                                 "(--max_request_bytes)")
        if self.h11.client_is_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        parts, total = [], 0
        until = time.monotonic() + limits.body_timeout
        while True:
            event = await self._next_event(until)
            if event is None:
                raise HttpError(408, f"Request body did not arrive within {limits.body_timeout:g} s", close=True)
            if isinstance(event, h11.EndOfMessage):
                break
            if isinstance(event, h11.Data):
                total += len(event.data)
                if limit and total > limit:
                    await self._drain(None, total)
                    raise HttpError(413, f"Request body is larger than the limit of {limit} bytes "
                                         "(--max_request_bytes)")
                parts.append(event.data)
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError(400, "Connection closed before the request body was complete", close=True)
        body = b"".join(parts)
        encoding = (request.header("content-encoding") or "").strip().lower()
        if encoding == "gzip":
            body = _gunzip(body, limit)
        elif encoding not in ("", "identity"):
            raise HttpError(415, f"Unsupported Content-Encoding: {encoding}")
        return body

    async def _drain(self, declared, seen=0):
        """Reads and drops the rest of an oversized body (bounded), so the client can read the 413."""
        if declared is not None and declared > self.limits.max_drain_bytes:
            raise HttpError(413, f"Request body of {declared} bytes is larger than the limit of "
                                 f"{self.limits.max_body_bytes} bytes (--max_request_bytes)", close=True)
        until = time.monotonic() + self.limits.body_timeout
        while True:
            event = await self._next_event(until)
            if event is None or isinstance(event, h11.ConnectionClosed):
                raise HttpError(413, "Request body is larger than the limit of "
                                     f"{self.limits.max_body_bytes} bytes (--max_request_bytes)", close=True)
            if isinstance(event, h11.EndOfMessage):
                return
            seen += len(event.data)
            if seen > self.limits.max_drain_bytes:
                raise HttpError(413, "Request body is larger than the limit of "
                                     f"{self.limits.max_body_bytes} bytes (--max_request_bytes)", close=True)

    # -------------------------------------------------------------- answering
    async def _answer(self, request):
        """Runs the handler and sends its answer; False if the connection must close."""
        try:
            route = self.server.router.match(request.method, request.path)
        except HttpError as error:
            return await self._send_error(error, request)
        if route is None:
            handler, blocking = self.server.router.fallback, True
        else:
            handler, blocking = route.handler, route.blocking
            if route.timeout:
                request.deadline = time.monotonic() + route.timeout
        self.current = request
        try:
            result = await self._call(handler, blocking, request)
        finally:
            self.current = None
        if isinstance(result, EventStream):
            return await self._stream(request, result)
        close = self.server.stopping or request.client_gone.is_set()
        headers = [("Content-Type", result.content_type), ("Content-Length", str(len(result.body)))]
        headers += result.headers + self.server.extra_headers
        if close:
            headers.append(("Connection", "close"))
        await self._send(h11.Response(status_code=result.status, headers=headers),
                         h11.Data(data=result.body if request.method != "HEAD" else b""), h11.EndOfMessage())
        self.server.log(request, result.status, len(result.body))
        return not close

    async def _call(self, handler, blocking, request):
        """The handler's result; a client that closes its connection meanwhile sets `client_gone`."""
        if blocking:
            work = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(
                self.server._pool, access_log.bound, request.log, handler, request))
        else:
            work = asyncio.ensure_future(handler(request))
        watch = asyncio.ensure_future(self.reader.read(_READ_SIZE)) if not self.h11.trailing_data[1] else None
        try:
            while True:
                waiting = {work} | ({watch} if watch is not None else set())
                # Backstop: a handler still queued well past the deadline is answered here (it drops its work).
                backstop = None if request.deadline is None else request.deadline + 1.0 - time.monotonic()
                done, _ = await asyncio.wait(waiting, timeout=None if backstop is None else max(backstop, 0),
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    request.client_gone.set()
                    return json_error(504, "Deadline exceeded before the request could run")
                if work in done:
                    break
                try:
                    data = watch.result()
                except (ConnectionError, OSError):
                    data = b""
                watch = None
                if data:
                    self.h11.receive_data(data)  # a pipelined request: kept for the next cycle
                else:
                    request.client_gone.set()
                    self.h11.receive_data(b"")
            return work.result()
        except Exception as error:  # noqa: BLE001 - a handler bug is a 500, never a dropped connection
            logger.exception("HTTP handler failed for %s %s", request.method, request.path)
            return json_error(500, f"Internal error: {type(error).__name__}")
        finally:
            if watch is not None:
                watch.cancel()

    async def _stream(self, request, stream):
        headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
        headers += stream.headers + self.server.extra_headers
        if self.h11.their_http_version == b"1.0":
            headers.append(("Connection", "close"))
        events = stream.events
        sent = 0
        try:
            await self._send(h11.Response(status_code=stream.status, headers=headers))
            async for item in events:
                if self.writer.transport.is_closing():
                    request.client_gone.set()
                    break
                data = EventStream.encode(item)
                await self._send(h11.Data(data=data))
                sent += len(data)
            else:
                await self._send(h11.EndOfMessage())
                return True
        except (ConnectionError, OSError):
            request.client_gone.set()
        finally:
            closer = getattr(events, "aclose", None)
            if closer is not None:
                await closer()
            self.server.log(request, stream.status, sent)
        return False

    async def _send(self, *events):
        """Sends h11 events in one write (one TCP segment for a small answer)."""
        data = b"".join(self.h11.send(event) or b"" for event in events)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _send_error(self, error, request=None):
        """Answers with a JSON error if h11 still lets us; returns False when the connection must close."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return False
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
                self.writer.write(_status_line(error.status, headers) + body)
                await self.writer.drain()
                return False
            await self._send(h11.Response(status_code=error.status, headers=headers + self.server.extra_headers))
            await self._send(h11.Data(data=body if request is None or request.method != "HEAD" else b""))
            await self._send(h11.EndOfMessage())
        except (ConnectionError, OSError, h11.LocalProtocolError):
            return False
        self.server.log(request, error.status, len(body))
        return not close


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
