"""Small helpers for the serving tests: plain-http calls, bounded polling."""

import contextlib
import http.client
import json
import os
import time


def request(port, method, path, body=None, headers=None, timeout=60):
    """(status, headers, body bytes) with plain http.client."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def rest_json(port, method, path, body=None, **kwargs):
    """(status, parsed JSON) for a REST call."""
    status, _, data = request(port, method, path, body, **kwargs)
    return status, json.loads(data)


def wait_until(predicate, timeout=30.0, interval=0.05):
    """Polls `predicate` until true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
