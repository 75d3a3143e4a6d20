"""Status codes and errors shared by the REST and gRPC front ends.

`ServingError(code, message)` carries a `tensorflow.error.Code` (the same
numbers as gRPC status codes). The REST layer maps it to an HTTP status with
TensorFlow Serving's table (`http_server.cc` `ToHTTPStatusCode`); the gRPC
layer passes the code through unchanged and truncates long messages the way
`grpc_status_util.cc` does.
"""

import concurrent.futures
import enum
import re
import time


class Code(enum.IntEnum):
    """`tensorflow.error.Code`; the values equal gRPC's status codes."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# TensorFlow Serving's status -> HTTP table (http_server.cc ToHTTPStatusCode).
HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

MAX_GRPC_MESSAGE = 1024  # grpc_status_util.cc: longer messages are cut and marked


class ServingError(Exception):
    """An error with a TensorFlow status code, reported to the client as is."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    def __str__(self):
        return f"{self.code.name}: {self.message}"

    @property
    def http_status(self):
        return HTTP_STATUS.get(self.code, 500)


def invalid_argument(message):
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message):
    return ServingError(Code.NOT_FOUND, message)


def failed_precondition(message):
    return ServingError(Code.FAILED_PRECONDITION, message)


def from_exception(error):
    """Turns any exception raised while serving into a `ServingError`.

    TensorFlow's `OpError`s keep their code (a wrong-dtype or out-of-range
    tensor is INVALID_ARGUMENT there too); argument-binding `TypeError` /
    `ValueError` from a concrete function are the caller's fault; anything
    else is INTERNAL.
    """
    if isinstance(error, ServingError):
        return error
    code = getattr(error, "error_code", None)  # tf.errors.OpError
    if code is not None:
        return ServingError(code, public_message(getattr(error, "message", str(error))))
    if isinstance(error, RecursionError):
        return ServingError(Code.INVALID_ARGUMENT, "Request is nested too deeply")
    if isinstance(error, (TypeError, ValueError)):
        return ServingError(Code.INVALID_ARGUMENT, public_message(str(error)))
    return ServingError(Code.INTERNAL, public_message(f"{type(error).__name__}: {error}"))


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/<>-])/(?:[^\s/'\"<>:]+/)+[^\s/'\"<>:,;)]*")


def _without_frames(message):
    """Drops the Python frames TensorFlow appends ("... defined at (most recent call last):" and
    the indented lines after it) and Python tracebacks; the text around them stays."""
    kept, skipping = [], False
    for line in message.split("\n"):
        if "(most recent call last):" in line:
            head = line.split(" defined at ")[0] if " defined at " in line else ""
            if head.strip():
                kept.append(head)
            skipping = True
            continue
        if skipping and (not line.strip() or line[:1].isspace()):
            continue
        skipping = False
        kept.append(line)
    return "\n".join(kept)


def public_message(message, known_paths=()):
    """`message` fit for a client: no stack traces (TensorFlow appends the Python frames where an
    op was defined), no absolute file-system paths (`known_paths` become `<model base path>`,
    any other becomes `<path>`). The full text stays in the server log."""
    message = _without_frames(message)
    for path in sorted((str(p).rstrip("/") for p in known_paths if p), key=len, reverse=True):
        message = message.replace(path, "<model base path>")
    return _ABSOLUTE_PATH.sub("<path>", message)


class Deadline:
    """When a request stops being worth running: a monotonic time `at` and/or a `cancelled()`
    check (the client has gone). Work is dropped before it starts once either is true."""

    def __init__(self, at=None, cancelled=None):
        self.at, self.cancelled = at, cancelled

    @classmethod
    def of(cls, value):
        """None, a Deadline, or monotonic seconds -> None or a Deadline."""
        if value is None or isinstance(value, Deadline):
            return value
        return cls(float(value))

    def remaining(self):
        return None if self.at is None else max(self.at - time.monotonic(), 0.0)

    def expired(self):
        return (self.cancelled is not None and bool(self.cancelled())) or (
            self.at is not None and time.monotonic() >= self.at)

    def check(self, message="Deadline exceeded before the model ran"):
        if self.cancelled is not None and self.cancelled():
            raise ServingError(Code.CANCELLED, "Request cancelled: the client is gone")
        if self.at is not None and time.monotonic() >= self.at:
            raise ServingError(Code.DEADLINE_EXCEEDED, message)

    def wait(self, future, message):
        """`future.result()`, giving up with DEADLINE_EXCEEDED / CANCELLED as soon as either happens."""
        while True:
            step = self.remaining()
            if self.cancelled is not None:
                step = 0.05 if step is None else min(step, 0.05)
            try:
                return future.result(step)
            except concurrent.futures.TimeoutError:
                self.check(message)


def truncate_for_grpc(message):
    if len(message) <= MAX_GRPC_MESSAGE:
        return message
    return message[:MAX_GRPC_MESSAGE] + "...TRUNCATED"
