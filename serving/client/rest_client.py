"""REST client for TensorFlow Serving's API (works against either server).

Only the standard library and numpy: importing it does not import TensorFlow.
Inputs and outputs are numpy arrays; DT_STRING values are bytes (sent as
`{"b64": ...}`, so any bytes survive), outputs are cast to the dtypes the
signature declares, so REST and gRPC give identical arrays.
"""

import base64
import http.client
import json
import urllib.parse

import numpy as np

from serving.client.common import ServingClientError, dtype_for, generate_inputs, normalize_metadata

# HTTP status -> the TensorFlow code TF Serving maps to it (first match of its table).
_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          409: "ABORTED", 413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
          500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def _to_json(array, dtype):
    array = np.asarray(array)
    if dtype == "DT_STRING" or array.dtype.kind in "OSU":
        def encode(value):
            if isinstance(value, str):
                return value
            return {"b64": base64.b64encode(bytes(value)).decode("ascii")}

        flat = [encode(v) for v in array.ravel().tolist()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    return array.tolist()


def _from_json(value, dtype):
    if dtype != "DT_STRING":
        return np.array(value, dtype=dtype_for(dtype))
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    flat = []

    def walk(item):
        if isinstance(item, list):
            for child in item:
                walk(child)
        elif isinstance(item, dict):
            flat.append(base64.b64decode(item["b64"]))
        else:
            flat.append(item.encode("utf-8", errors="surrogateescape"))

    walk(value)
    array = np.empty(len(flat), dtype=object)  # object, not "S": fixed-width bytes drop trailing NULs
    array[:] = flat
    return array.reshape(shape)


class RestClient:
    """`RestClient("localhost:8501")`; raises ServingClientError on an error reply.

    Keeps one HTTP connection alive: use one client per thread.
    """

    def __init__(self, address="localhost:8501", timeout=30.0):
        host, _, port = address.rpartition(":")
        self.host, self.port, self.timeout = host or "localhost", int(port), timeout
        self._metadata = {}
        self._connection = None

    def _request(self, method, path, body=None):
        payload = None if body is None else json.dumps(body).encode("utf-8")
        for attempt in (0, 1):  # one retry if a kept-alive connection was closed by the server
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
                response = self._connection.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
                self.close()
                if attempt:
                    raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            document = json.loads(data.decode("utf-8", errors="surrogateescape"))
        except ValueError:
            document = {"error": data.decode("utf-8", errors="replace")}
        if response.status != 200:
            message = document.get("error", data.decode("utf-8", errors="replace")) if isinstance(document, dict) else data
            raise ServingClientError(_CODES.get(response.status, "UNKNOWN"), message, http_status=response.status)
        return document

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @staticmethod
    def _path(model, version=None, label=None):
        path = "/v1/models/" + urllib.parse.quote(model, safe="")
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label is not None:
            path += "/labels/" + urllib.parse.quote(label, safe="")
        return path

    def status(self, model, version=None, label=None):
        """[{"version", "state", "error_code", "error_message"}], versions as ints."""
        document = self._request("GET", self._path(model, version, label))
        return [{"version": int(s["version"]), "state": s["state"], "error_code": s["status"]["error_code"],
                 "error_message": s["status"]["error_message"]} for s in document["model_version_status"]]

    def metadata(self, model, version=None, label=None):
        """{"version": int, "signatures": {name: {"inputs": {alias: {"dtype", "shape"}}, "outputs", "method_name"}}}."""
        document = self._request("GET", self._path(model, version, label) + "/metadata")
        return normalize_metadata(int(document["model_spec"]["version"]), document["metadata"]["signature_def"])

    def _signature(self, model, version, label, signature_name):
        key = (model, version, label)
        if key not in self._metadata:
            self._metadata[key] = self.metadata(model, version, label)
        signatures = self._metadata[key]["signatures"]
        name = signature_name or "serving_default"
        if name not in signatures:
            raise ServingClientError("INVALID_ARGUMENT", f"model {model} has no signature {name!r}; it has {sorted(signatures)}")
        return signatures[name]

    def predict(self, model, inputs, signature_name=None, version=None, label=None, row_format=False):
        """{alias: array} -> {alias: array}. `row_format` sends `instances` instead of `inputs`."""
        signature = self._signature(model, version, label, signature_name)
        columns = {alias: _to_json(value, signature["inputs"].get(alias, {}).get("dtype")) for alias, value in inputs.items()}
        body = {"signature_name": signature_name or ""}
        if row_format:
            rows = len(next(iter(columns.values())))
            body["instances"] = [{alias: column[i] for alias, column in columns.items()} for i in range(rows)]
        else:
            body["inputs"] = columns
        document = self._request("POST", self._path(model, version, label) + ":predict", body)
        outputs = signature["outputs"]
        if row_format:
            rows = document["predictions"]
            if len(outputs) == 1:
                values = {next(iter(outputs)): rows}
            else:
                values = {alias: [row[alias] for row in rows] for alias in outputs}
        else:
            values = document["outputs"] if len(outputs) > 1 else {next(iter(outputs)): document["outputs"]}
        return {alias: _from_json(value, outputs[alias]["dtype"]) for alias, value in values.items()}

    def generate(self, model, prompts, signature_name="generate", version=None, label=None, **extra_inputs):
        """Text in, text out through a signature with one DT_STRING input.

        Other inputs by keyword (`max_new_tokens=16, temperature=0.7, seed=3`);
        the usual generation settings the signature has get greedy defaults.
        """
        signature = self._signature(model, version, label, signature_name)
        inputs, text_output = generate_inputs(signature, prompts, extra_inputs)
        outputs = self.predict(model, inputs, signature_name, version, label)
        return [v.decode("utf-8", errors="replace") for v in outputs[text_output].ravel().tolist()]

    def _examples(self, verb, model, examples, context, signature_name, version, label):
        body = {"signature_name": signature_name or "", "examples": examples}
        if context is not None:
            body["context"] = context
        return self._request("POST", self._path(model, version, label) + ":" + verb, body)["results"]

    def classify(self, model, examples, context=None, signature_name=None, version=None, label=None):
        """Examples as JSON-like dicts ({feature: value or list}) -> [[(label, score), ...], ...]."""
        results = self._examples("classify", model, examples, context, signature_name, version, label)
        # Scores are float32 on the wire (gRPC); round the same way so both clients agree exactly.
        return [[(label_, float(np.float32(score))) for label_, score in row] for row in results]

    def regress(self, model, examples, context=None, signature_name=None, version=None, label=None):
        values = self._examples("regress", model, examples, context, signature_name, version, label)
        return [float(np.float32(v)) for v in values]
