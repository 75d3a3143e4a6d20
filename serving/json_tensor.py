"""REST JSON requests -> tensors, following TensorFlow Serving's `util/json_tensor.cc`.

Row format `{"instances": [...]}` (one item per batch row, all rows
the same shape) or columnar `{"inputs": value | {alias: value}}`; dtypes come
from the signature and are enforced with the same rules (ints for integer
inputs, numbers for floats that fit without loss, true/false for bools,
strings or `{"b64": ...}` for DT_STRING). Messages keep TF Serving's wording.

Classify/regress bodies (`context` + `examples`) become an `Input` proto of
tf.Examples. Responses are written by `serving.json_response`.
"""

import base64
import binascii
import json
import math
import re

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import input_pb2

from serving.errors import Code, ServingError, invalid_argument

_FLOAT32_MAX_INT = 2**24 - 1  # IsLosslessDecimal<float>
_FLOAT64_MAX_INT = 2**53 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**31), 2**31 - 1),  # TF accepts any int32 here; we range-check below
    types_pb2.DT_INT16: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_UINT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_NUMPY = {
    types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64, types_pb2.DT_INT8: np.int8,
    types_pb2.DT_INT16: np.int16, types_pb2.DT_INT32: np.int32, types_pb2.DT_UINT8: np.uint8,
    types_pb2.DT_INT64: np.int64, types_pb2.DT_UINT32: np.uint32, types_pb2.DT_UINT64: np.uint64,
    types_pb2.DT_BOOL: np.bool_,
}
_TF_TYPE_NAMES = {  # DataTypeString
    types_pb2.DT_FLOAT: "float", types_pb2.DT_DOUBLE: "double", types_pb2.DT_INT8: "int8",
    types_pb2.DT_INT16: "int16", types_pb2.DT_INT32: "int32", types_pb2.DT_UINT8: "uint8",
    types_pb2.DT_INT64: "int64", types_pb2.DT_UINT32: "uint32", types_pb2.DT_UINT64: "uint64",
    types_pb2.DT_BOOL: "bool", types_pb2.DT_STRING: "string",
}
ROW, COLUMNAR = "row", "columnar"


# ----------------------------------------------------------------------------- requests

def value_string(value, limit=200):
    text = json.dumps(value, allow_nan=True, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def json_type(value):
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


MAX_JSON_DEPTH = 100  # nesting of arrays/objects; tensors have rank <= 64 in numpy anyway
_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"\\')  # every byte but these is dropped
_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_DEPTH_STEP = np.zeros(256, np.int8)
_DEPTH_STEP[[ord("["), ord("{")]] = 1
_DEPTH_STEP[[ord("]"), ord("}")]] = -1


def json_depth(body):
    """Deepest nesting of arrays/objects in JSON bytes, brackets inside strings not counted (fast, no parse)."""
    skeleton = body.translate(None, _STRUCTURE).replace(b"\\\\", b"").replace(b'\\"', b"").replace(b"\\", b"")
    outside = b"".join(skeleton.split(b'"')[::2])  # even pieces lie outside strings
    if not outside:
        return 0
    return int(np.cumsum(_DEPTH_STEP[np.frombuffer(outside, np.uint8)], dtype=np.int64).max())


def _find_lone_surrogate(value, where):
    """JSON path of the first string or key holding a lone surrogate (from a \\uD8xx escape), else None."""
    stack = [(value, where)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                return f"{where} (character {error.start})"
        elif isinstance(value, dict):
            for key, item in value.items():
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return f"key {key.encode('utf-8', 'backslashreplace').decode()!r} in {where}"
                stack.append((item, f"{where}.{key}"))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(value))))
    return None


def parse_body(body):
    """`body` (bytes) as a JSON object; ParseJson's errors, plus: invalid UTF-8, lone surrogates
    and nesting deeper than MAX_JSON_DEPTH are 400s that say where."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid_argument(f"JSON Parse error: invalid UTF-8 at byte offset {error.start} "
                               f"({error.reason})") from None
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise invalid_argument(f"JSON Parse error: nesting depth {depth} exceeds the limit of {MAX_JSON_DEPTH}")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid_argument(f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: document nested too deeply") from None
    if _LONE_SURROGATE_ESCAPE.search(body):
        where = _find_lone_surrogate(document, "$")
        if where is not None:
            raise invalid_argument(f"JSON Parse error: a \\u escape encodes a lone UTF-16 surrogate, "
                                   f"which is not a character, at {where}")
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {value_string(document)} Is not object")
    return document


def signature_name(document):
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(
            f"JSON Value: {value_string(document)} not formatted correctly. "
            "'signature_name' key must be a string value.")
    return name


def is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _dense_shape(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _flatten(value, shape, level, flat):
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(f"JSON Value: {value_string(value)} found at incorrect level: {level + 1} "
                                   f"in the JSON DOM. Expected at level: {rank}")
        flat.append(value)
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                               f"expected size: {shape[level]}")
    if level == rank - 1:
        flat.extend(value)  # leaves; a nested list among them is caught by the type check
    else:
        for item in value:
            _flatten(item, shape, level + 1, flat)


def _type_error(value, dtype):
    if isinstance(value, list):
        return invalid_argument("Encountered list at unexpected level: deeper than the first element")
    return invalid_argument(f"JSON Value: {value_string(value)} Type: {json_type(value)} "
                            f"is not of expected type: {_TF_TYPE_NAMES.get(dtype, dtype)}")


def _lossy(value, target):
    return invalid_argument(f"Cannot convert JSON value: {value_string(value)} to {target} without loss of precision.")


def _convert(flat, shape, dtype):
    """Flat JSON leaves -> numpy array of `dtype` (a DataType enum), with TF's type rules."""
    types = set(map(type, flat))
    if dtype == types_pb2.DT_STRING:
        values = []
        for value in flat:
            if isinstance(value, str):
                values.append(value.encode("utf-8", errors="surrogateescape"))
            elif is_b64(value):
                values.append(b64decode(value["b64"]))
            else:
                raise _type_error(value, dtype)
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        if not types <= {int, float}:
            raise _type_error(next(v for v in flat if type(v) not in (int, float)), dtype)
        single = dtype == types_pb2.DT_FLOAT
        target = "float" if single else "double"
        if int in types:  # IsLosslessDecimal: integers must be exact in the target type
            max_int = _FLOAT32_MAX_INT if single else _FLOAT64_MAX_INT
            for value in flat:
                if type(value) is int and abs(value) > max_int:
                    raise _lossy(value, target)
        array = np.array(flat, dtype=np.float64)
        if single:
            big = np.isfinite(array) & (np.abs(array) > _FLOAT32_MAX)
            if big.any():
                raise _lossy(flat[int(np.argmax(big))], target)
        return array.astype(_NUMPY[dtype]).reshape(shape)
    if dtype == types_pb2.DT_BOOL:
        if not types <= {bool}:
            raise _type_error(next(v for v in flat if type(v) is not bool), dtype)
        return np.array(flat, dtype=np.bool_).reshape(shape)
    if dtype in _INT_RANGES:
        if not types <= {int}:
            raise _type_error(next(v for v in flat if type(v) is not int), dtype)
        return _integers(flat, shape, dtype)
    raise ServingError(Code.UNIMPLEMENTED, f"Conversion of JSON Value: {value_string(flat[:1])} to type: "
                                           f"{types_pb2.DataType.Name(dtype)}")


def _integers(flat, shape, dtype):
    """Integer leaves: JSON ints that fit what rapidjson accepts (IsInt/IsInt64/...), then our dtype."""
    json_low, json_high = _INT_RANGES[dtype]
    info = np.iinfo(_NUMPY[dtype])
    try:
        wide = np.array(flat, dtype=np.uint64 if dtype == types_pb2.DT_UINT64 else np.int64)
    except OverflowError:
        wide = None
    if wide is None or (wide.size and (int(wide.min()) < info.min or int(wide.max()) > info.max)):
        for value in flat:  # slow path only to name the offender
            if not json_low <= value <= json_high:
                raise _type_error(value, dtype)
            if not info.min <= value <= info.max:
                raise invalid_argument(f"JSON Value: {value} is out of range for type: {_TF_TYPE_NAMES[dtype]}")
    return wide.astype(_NUMPY[dtype]).reshape(shape)


def b64decode(text):
    """absl::Base64Unescape-like: standard alphabet, padding optional, whitespace ignored."""
    text = "".join(text.split())
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def tensor_from_json(value, dtype):
    """One JSON value (scalar or nested lists) as a dense numpy array."""
    if isinstance(value, dict) and not is_b64(value):
        raise _type_error(value, dtype)
    shape = _dense_shape(value)
    flat = []
    _flatten(value, shape, 0, flat)
    return _convert(flat, shape, dtype)


def _instances(items, infos):
    """Row format: one batch row per item."""
    if not isinstance(items[0], dict) and len(infos) > 1:
        raise invalid_argument("instances is a plain list, but expecting list of objects as multiple "
                               "input tensors required as per tensorinfo_map")
    named = isinstance(items[0], dict) and not is_b64(items[0])
    rows = {alias: [] for alias in infos}
    for index, item in enumerate(items):
        item_named = isinstance(item, dict) and not is_b64(item)
        if named and not item_named:
            raise invalid_argument(f"Expecting object but got list at item {index} of input list")
        if not named and item_named:
            raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
        values = item if named else {next(iter(infos)): item}
        for alias, value in values.items():
            key = f" key: {alias}" if named else ""
            try:
                if alias not in infos:
                    raise invalid_argument(f"JSON object: does not have named input: {alias}")
                row = tensor_from_json(value, infos[alias])
                if rows[alias] and rows[alias][0].shape != row.shape:
                    first = rows[alias][0]
                    raise invalid_argument(
                        (f"Expecting tensor size: {first.size} but got: {row.size}" if first.size != row.size
                         else f"Expecting shape {_shape(first.shape)} but got: {_shape(row.shape)}")
                        + f" (input '{alias}': all rows must have the same shape as row 0 "
                        f"{_shape(first.shape)}; pad ragged rows to one length)")
            except ServingError as error:
                raise ServingError(error.code, f"Failed to process element: {index}{key} of 'instances' list. "
                                               f"Error: {error.code.name}: {error.message}") from None
            rows[alias].append(row)
        if named and set(item) != set(infos):
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{value_string(item)} keys must be equal to: {','.join(sorted(infos))}")
    return {alias: _stack(values, infos[alias]) for alias, values in rows.items()}


def _shape(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _stack(rows, dtype):
    if rows[0].dtype == object:
        array = np.empty((len(rows),) + rows[0].shape, dtype=object)
        for i, row in enumerate(rows):
            array[i] = row if row.ndim else row.item()
        return array
    return np.stack(rows)


def _columns(value, infos):
    if not isinstance(value, dict) or is_b64(value):
        if len(infos) > 1:
            raise invalid_argument("inputs is a plain value/list, but expecting an object as multiple "
                                   "input tensors required as per tensorinfo_map")
        alias = next(iter(infos))
        return {alias: _named(alias, value, infos[alias])}
    result = {}
    for alias, dtype in infos.items():
        if alias not in value:
            raise invalid_argument(f"Missing named input: {alias} in 'inputs' object.")
        result[alias] = _named(alias, value[alias], dtype)
    return result  # extra keys are ignored, as in TF Serving


def _named(alias, value, dtype):
    try:
        return tensor_from_json(value, dtype)
    except ServingError as error:
        raise ServingError(error.code, f"{error.message} (input '{alias}')") from None


def predict_inputs(document, infos):
    """(inputs, format) from a predict body; `infos` is {alias: DataType enum}."""
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid_argument(f"JSON Value: {value_string(document)} Not formatted correctly expecting only "
                               "one of 'inputs' or 'instances' keys to exist ")
    if has_instances:
        items = document["instances"]
        if not isinstance(items, list):
            raise invalid_argument(f"JSON Value: {value_string(document)} Excepting 'instances' to be an list/array")
        if not items:
            raise invalid_argument(f"JSON Value: {value_string(document)} No values in 'instances' array")
        return _instances(items, infos), ROW
    if has_inputs:
        return _columns(document["inputs"], infos), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ----------------------------------------------------------------------------- classify / regress

def _feature(name, values):
    feature = feature_pb2.Feature()
    kind = None
    for value in values if isinstance(values, list) else [values]:
        if isinstance(value, bool) or type(value) is int:
            this = "int64_list"
        elif type(value) is float:
            this = "float_list"
        elif isinstance(value, str) or is_b64(value):
            this = "bytes_list"
        else:
            raise invalid_argument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
        if kind not in (None, this):
            raise invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind.split('_')[0]}")
        kind = this
        if this == "int64_list":
            if not isinstance(value, bool) and not -(2**63) <= value < 2**63:
                raise invalid_argument(f"Feature: {name} has uint64 element. Only int64 is supported.")
            feature.int64_list.value.append(int(value))
        elif this == "float_list":
            if math.isfinite(value) and abs(value) > _FLOAT32_MAX:
                raise _lossy(value, "float")
            feature.float_list.value.append(value)
        elif isinstance(value, str):
            feature.bytes_list.value.append(value.encode("utf-8", errors="surrogateescape"))
        else:
            feature.bytes_list.value.append(b64decode(value["b64"]))
    return feature


def _example(value):
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_pb2.Example()
    for name, values in value.items():
        example.features.feature[name].CopyFrom(_feature(name, values))
    return example


def examples_input(document):
    """`Input` proto from a classify/regress body (`context` + `examples`)."""
    request_input = input_pb2.Input()
    examples = document.get("examples")
    if examples is None:
        raise invalid_argument(f"JSON Value: {value_string(document)} When method is classify, key "
                               "'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise invalid_argument(f"JSON Value: {value_string(document)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid_argument(f"JSON Value: {value_string(document)} 'examples' value is an empty array")
    if "context" in document:
        target = request_input.example_list_with_context
        target.context.CopyFrom(_example(document["context"]))
    else:
        target = request_input.example_list
    for value in examples:
        target.examples.add().CopyFrom(_example(value))
    return request_input
