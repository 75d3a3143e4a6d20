"""Status codes and errors shared by the REST and gRPC front ends.

`ServingError(code, message)` carries a `tensorflow.error.Code` (the same
numbers as gRPC status codes). The REST layer maps it to an HTTP status with
TensorFlow Serving's table (`http_server.cc` `ToHTTPStatusCode`); the gRPC
layer passes the code through unchanged and truncates long messages the way
`grpc_status_util.cc` does.
"""

import enum


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
        return ServingError(code, getattr(error, "message", str(error)))
    if isinstance(error, (TypeError, ValueError)):
        return ServingError(Code.INVALID_ARGUMENT, str(error))
    return ServingError(Code.INTERNAL, f"{type(error).__name__}: {error}")


def truncate_for_grpc(message):
    if len(message) <= MAX_GRPC_MESSAGE:
        return message
    return message[:MAX_GRPC_MESSAGE] + "...TRUNCATED"
