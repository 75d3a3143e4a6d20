"""Tensors -> REST JSON responses, following TensorFlow Serving's `util/json_tensor.cc`.

`{"predictions": [...]}` for row requests (one entry per batch row; an object
per row when there are several outputs), `{"outputs": ...}` for columnar ones.
Floats are written as `WriteDecimal` writes them: `%g` (six digits) when that
round-trips, else 9 (float) or 17 (double) significant digits, always with a
`.` or an exponent, and NaN / Infinity / -Infinity as bare tokens. DT_STRING
outputs are JSON strings, or `{"b64": ...}` when the alias ends in `_bytes`.
Errors are `{"error": "..."}`.
"""

import base64
import json
import math

import numpy as np

from serving.errors import invalid_argument
from serving.json_tensor import COLUMNAR


def _float_tokens(flat, single):
    """WriteDecimal: '%g' (6 digits) if it round-trips, else max_digits10; '.0' for integers."""
    values = flat.tolist()
    tokens = ["%.6g" % v for v in values]
    back = np.array(list(map(float, tokens)), dtype=np.float64)
    if single:
        with np.errstate(over="ignore"):
            back = back.astype(np.float32)
    precision = "%.9g" if single else "%.17g"
    for i in np.nonzero(back != flat)[0].tolist():  # NaN != NaN lands here too
        tokens[i] = precision % values[i]
    for i in np.nonzero(~np.isfinite(flat))[0].tolist():
        v = values[i]
        tokens[i] = "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return [t if ("." in t or "e" in t or "N" in t or "I" in t) else t + ".0" for t in tokens]


def _tokens(array, as_bytes):
    flat = array.ravel()
    kind = array.dtype.kind
    if array.dtype == np.float16:
        return _float_tokens(flat.astype(np.float32), True)
    if kind == "f" and array.dtype.itemsize in (4, 8):
        return _float_tokens(flat, array.dtype.itemsize == 4)
    if kind in "iu":
        return list(map(str, flat.tolist()))
    if kind == "b":
        return ["true" if v else "false" for v in flat.tolist()]
    if kind in "OS":
        if as_bytes:
            return ['{"b64": "%s"}' % base64.b64encode(v).decode("ascii") for v in flat.tolist()]
        return [json.dumps(v.decode("utf-8", errors="surrogateescape") if isinstance(v, bytes) else str(v),
                           ensure_ascii=False) for v in flat.tolist()]
    raise invalid_argument(f"Failed to write JSON value for tensor type: {array.dtype}")


def _nest(tokens, shape):
    """Nested JSON arrays of `shape` around the flat `tokens`."""
    if not shape:
        return tokens[0]
    items = tokens
    for k in range(len(shape) - 1, -1, -1):
        dim, groups = shape[k], math.prod(shape[:k])
        if dim == 0:
            items = ["[]"] * groups
        else:
            items = ["[" + ",".join(items[i * dim:(i + 1) * dim]) + "]" for i in range(groups)]
    return items[0]


def encode_tensor(array, alias):
    return _nest(_tokens(array, alias.endswith("_bytes")), array.shape)


def predict_response(outputs, request_format):
    """Response body (bytes) for {alias: array} in the request's format."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    aliases = sorted(outputs)
    if request_format == COLUMNAR:
        if len(aliases) == 1:
            body = encode_tensor(outputs[aliases[0]], aliases[0])
        else:
            body = "{" + ",".join(f"{json.dumps(a)}: {encode_tensor(outputs[a], a)}" for a in aliases) + "}"
        return _utf8('{"outputs": ' + body + "}")
    batch = None
    for alias in aliases:
        array = outputs[alias]
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {alias} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise invalid_argument(f"Tensor name: {alias} has inconsistent batch size: {array.shape[0]} "
                                   f"expecting: {batch}")
        batch = array.shape[0]
    rows = {}
    for alias in aliases:
        array = outputs[alias]
        tokens = _tokens(array, alias.endswith("_bytes"))
        per_row = math.prod(array.shape[1:])
        rows[alias] = [_nest(tokens[i * per_row:(i + 1) * per_row], array.shape[1:]) for i in range(batch)]
    if len(aliases) == 1:
        items = rows[aliases[0]]
    else:
        items = ["{" + ",".join(f"{json.dumps(a)}: {rows[a][i]}" for a in aliases) + "}" for i in range(batch)]
    return _utf8('{"predictions": [' + ",".join(items) + "]}")


def classification_response(result):
    rows = []
    for classifications in result.classifications:
        scores = _float_tokens(np.array([c.score for c in classifications.classes], np.float32), True)
        pairs = [f"[{json.dumps(c.label, ensure_ascii=False)}, {score}]"
                 for c, score in zip(classifications.classes, scores)]
        rows.append("[" + ", ".join(pairs) + "]")
    return _utf8('{"results": [' + ", ".join(rows) + "]}")


def regression_response(result):
    values = np.array([r.value for r in result.regressions], dtype=np.float32)
    return _utf8('{"results": [' + ", ".join(_float_tokens(values, True)) + "]}")


def error_response(message):
    return _utf8(json.dumps({"error": message}, indent=4, ensure_ascii=False))


def _utf8(text):
    return text.encode("utf-8", errors="surrogateescape")
