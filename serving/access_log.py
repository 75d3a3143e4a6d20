"""The opt-in access log (`--access_log_file`): one JSON line per request, never tensor contents.

    {"time": "2026-12-07T17:50:01.123Z", "entrypoint": "rest", "peer": "127.0.0.1:53412",
     "method": "POST", "path": "/v1/models/gpt:predict", "api": "predict", "model": "gpt",
     "version": 3, "signature": "serving_default", "status": 200, "latency_ms": 12.4,
     "bytes_in": 214, "bytes_out": 1733}

REST lines carry the HTTP method, path and status; gRPC lines the RPC name
(`api`) and the gRPC status name. `model`, `version` and `signature` are the
resolved ones (after labels and the default signature), noted by the serving
core while the request runs; they are absent when the request failed before.
`--access_log_file=-` writes to standard error.
"""

import datetime
import json
import sys
import threading
import time

_current = threading.local()


def note(**fields):
    """Adds fields to the request being served on this thread (no-op outside a logged request)."""
    record = getattr(_current, "record", None)
    if record is not None:
        record.update(fields)


def bound(record, function, *args):
    """Runs `function(*args)` with `note()` writing into `record` (a dict)."""
    previous = getattr(_current, "record", None)
    _current.record = record
    try:
        return function(*args)
    finally:
        _current.record = previous


class AccessLog:
    def __init__(self, stream, close=False):
        self._stream, self._close = stream, close
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path):
        """An AccessLog appending to `path` ("-": standard error), or None for ""."""
        if not path:
            return None
        if path == "-":
            return cls(sys.stderr)
        return cls(open(path, "a", encoding="utf-8", buffering=1), close=True)  # noqa: SIM115 - kept open

    def write(self, record, started, **fields):
        """Writes `record` plus `fields`, the time the request arrived and its latency, as one line."""
        line = dict(record, **fields)
        stamp = datetime.datetime.fromtimestamp(time.time() - (time.monotonic() - started), datetime.timezone.utc)
        line = {"time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"), **line,
                "latency_ms": round((time.monotonic() - started) * 1000, 3)}
        text = json.dumps(line, ensure_ascii=True, default=str) + "\n"
        with self._lock:
            self._stream.write(text)
            self._stream.flush()

    def close(self):
        if self._close:
            self._stream.close()
