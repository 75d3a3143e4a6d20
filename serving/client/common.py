"""What the REST and gRPC clients share: errors, dtypes, metadata in one shape."""

import numpy as np

_DTYPES = {
    "DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_HALF": np.float16, "DT_INT8": np.int8,
    "DT_INT16": np.int16, "DT_INT32": np.int32, "DT_INT64": np.int64, "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16, "DT_UINT32": np.uint32, "DT_UINT64": np.uint64, "DT_BOOL": np.bool_,
    "DT_STRING": object,
}


class ServingClientError(Exception):
    """An error reply. `code` is the TensorFlow/gRPC code name (NOT_FOUND, INVALID_ARGUMENT, ...)."""

    def __init__(self, code, message, http_status=None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.http_status = code, message, http_status


def dtype_for(name):
    """numpy dtype of a DataType name such as "DT_INT32"."""
    if name not in _DTYPES:
        raise ServingClientError("UNIMPLEMENTED", f"no numpy dtype for {name}")
    return _DTYPES[name]


def _shape(tensor_shape):
    if tensor_shape.get("unknown_rank"):
        return None
    return [int(d.get("size", 0)) for d in tensor_shape.get("dim", [])]


def normalize_metadata(version, signature_def_map):
    """Metadata JSON (TF Serving's shape) -> {"version", "signatures": {name: {...}}}."""
    signatures = {}
    for name, signature in signature_def_map.get("signature_def", {}).items():
        signatures[name] = {
            "method_name": signature.get("method_name", ""),
            "inputs": {k: {"dtype": v.get("dtype", "DT_INVALID"), "shape": _shape(v.get("tensor_shape", {}))}
                       for k, v in signature.get("inputs", {}).items()},
            "outputs": {k: {"dtype": v.get("dtype", "DT_INVALID"), "shape": _shape(v.get("tensor_shape", {}))}
                        for k, v in signature.get("outputs", {}).items()},
        }
    return {"version": version, "signatures": signatures}


# Inputs of this project's `generate` signatures (keras_transformer.export), filled with these
# when the signature has them and the caller did not pass them: greedy, 32 new tokens.
GENERATE_SETTINGS = {"max_new_tokens": 32, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}


def generate_inputs(signature, prompts, extra_inputs):
    """({alias: array} for a text-in, text-out signature, the text output alias).

    Scalars become one value per prompt: with server batching every input
    must share dimension 0 (TF Serving rejects anything else).
    """
    extra = dict(extra_inputs)
    for name, value in GENERATE_SETTINGS.items():
        if name in signature["inputs"] and name not in extra:
            extra[name] = value
    prompt_input, text_output = pick_generate_io(signature, extra)
    inputs = {}
    for name, value in extra.items():
        spec = signature["inputs"].get(name)
        array = np.asarray(value, dtype=dtype_for(spec["dtype"]) if spec else None)
        inputs[name] = np.full([len(prompts)], array, dtype=array.dtype) if array.ndim == 0 else array
    inputs[prompt_input] = np.array([p.encode("utf-8") for p in prompts], dtype=object)
    return inputs, text_output


def pick_generate_io(signature, extra_inputs):
    """(prompt input alias, text output alias) of a text-in, text-out signature."""
    free = [k for k, v in signature["inputs"].items() if v["dtype"] == "DT_STRING" and k not in extra_inputs]
    texts = [k for k, v in signature["outputs"].items() if v["dtype"] == "DT_STRING"]
    missing = set(signature["inputs"]) - set(extra_inputs) - set(free[:1])
    if len(free) != 1 or len(texts) < 1 or missing:
        raise ServingClientError("INVALID_ARGUMENT", (
            "generate needs a signature with exactly one string input left for the prompts (others given as "
            f"keyword inputs) and a string output; inputs {signature['inputs']}, outputs {signature['outputs']}, "
            f"keyword inputs {sorted(extra_inputs)}"))
    preferred = [k for k in texts if k in ("text", "outputs", "generated_text", "completions")]
    return free[0], (preferred or sorted(texts))[0]
