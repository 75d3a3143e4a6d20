"""Checks an exported SavedModel with TensorFlow and tensorflow-text only, as a server would see it.

Run as a script in a fresh interpreter (the export verifier does), so nothing
of keras_transformer is imported and only what a serving process has is used:

    python keras_transformer/export/savedmodel_check.py VERSION_DIR --json report.json [--scan-only]

It reports:
  * the graph's op types, split into core TensorFlow (registered by
    `import tensorflow`), tensorflow-text (registered by `import
    tensorflow_text`) and unknown ones (neither: the server cannot load it);
  * XLA: functions or calls marked `_XlaMustCompile` (jit_compile=True) and
    Xla* ops (run through XLA's compile-on-demand kernel). The stock
    tensorflow_model_server cannot run either on GPU, and strings cannot
    enter XLA;
  * unless --scan-only: every signature's inputs and outputs, and each
    signature run on the reference request stored at export
    (assets.extra/keras_transformer_reference.npz) compared with the
    outputs the Keras model gave (floats within atol + atol * |expected|,
    ints and strings exactly).
"""

import os
import sys

if __name__ == "__main__":  # run as a script: keep sibling modules (its folder is sys.path[0]) from shadowing
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402

from serving.layout import REFERENCE_FILE  # noqa: E402  (imports nothing but os)
XLA_ATTRIBUTE = "_XlaMustCompile"


def read_saved_model(directory):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    return proto


def op_types(proto):
    """Counter of op type -> uses, over the graphs and every function in their libraries."""
    counts = collections.Counter()
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        counts.update(node.op for node in graph.node)
        for function in graph.library.function:
            counts.update(node.op for node in function.node_def)
    return counts


def xla_findings(proto, types):
    """Descriptions of XLA-compiled functions / calls and Xla* ops."""
    found = []
    for meta_graph in proto.meta_graphs:
        library = meta_graph.graph_def.library
        for function in library.function:
            name = function.signature.name
            if function.attr.get(XLA_ATTRIBUTE) is not None and function.attr[XLA_ATTRIBUTE].b:
                found.append(f"function {name} has {XLA_ATTRIBUTE}=true (jit_compile)")
            for node in function.node_def:
                if XLA_ATTRIBUTE in node.attr and node.attr[XLA_ATTRIBUTE].b:
                    found.append(f"node {node.name} in {name} calls {node.op} with {XLA_ATTRIBUTE}=true")
        for node in meta_graph.graph_def.node:
            if XLA_ATTRIBUTE in node.attr and node.attr[XLA_ATTRIBUTE].b:
                found.append(f"graph node {node.name} has {XLA_ATTRIBUTE}=true")
    found += [f"op {op} (XLA-only kernel, {count} uses)" for op, count in sorted(types.items())
              if op.startswith("Xla") or op.startswith("_Xla")]
    return found


def classify_ops(types):
    """{"core": [...], "tensorflow_text": [...], "unknown": [...]}.

    In a process that has not imported tensorflow_text yet (the verifier's),
    core ops are those registered by TensorFlow alone and tensorflow-text
    ops those its import adds. Once it is imported (an exporting process),
    core ops are those with a `tf.raw_ops` wrapper, generated for every op
    TensorFlow itself defines.
    """
    if "tensorflow_text" in sys.modules:
        core = sorted(op for op in types if hasattr(tf.raw_ops, op))
    else:
        core = sorted(op for op in types if op_def_registry.get(op) is not None)
    import tensorflow_text  # noqa: F401  (registers its ops)

    text = sorted(op for op in types if op not in core and op_def_registry.get(op) is not None)
    unknown = sorted(op for op in types if op not in core and op not in text)
    return {"core": core, "tensorflow_text": text, "unknown": unknown}


def _spec(spec):
    return {"dtype": spec.dtype.name, "shape": None if spec.shape.rank is None else list(spec.shape.as_list())}


def describe_signatures(loaded):
    described = {}
    for name, function in loaded.signatures.items():
        inputs = function.structured_input_signature[1]
        described[name] = {
            "inputs": {key: _spec(spec) for key, spec in sorted(inputs.items())},
            "outputs": {key: _spec(spec) for key, spec in sorted(function.structured_outputs.items())},
        }
    return described


def _load_reference(directory):
    path = os.path.join(directory, REFERENCE_FILE)
    if not os.path.exists(path):
        return {}
    reference = collections.defaultdict(lambda: {"inputs": {}, "expected": {}, "atol": 1e-4})
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            signature, kind, name = key.split("::")
            if kind == "atol":
                reference[signature]["atol"] = float(data[key])
            else:
                reference[signature]["inputs" if kind == "in" else "expected"][name] = data[key]
    return dict(reference)


def compare(actual, expected, atol):
    """(max abs difference or number of mismatches, ok) for one output."""
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        return f"shape {list(actual.shape)} != expected {list(expected.shape)}", False
    if expected.dtype.kind == "f":
        difference = np.abs(actual.astype("float64") - expected.astype("float64"))
        ok = bool(np.all(difference <= atol + atol * np.abs(expected)))
        return float(difference.max(initial=0.0)), ok
    if expected.dtype.kind == "S":
        actual = actual.astype(expected.dtype)
    mismatches = int(np.sum(actual != expected))
    return f"{mismatches} mismatches", mismatches == 0


def run_references(loaded, directory):
    results = {}
    for signature, case in sorted(_load_reference(directory).items()):
        if signature not in loaded.signatures:
            results[signature] = {"error": "signature missing from the SavedModel", "ok": False}
            continue
        inputs = {k: tf.constant(v) for k, v in case["inputs"].items()}
        try:
            seconds = []
            for _ in range(2):  # the first call pays graph setup (what the warm-up file absorbs)
                started = time.perf_counter()
                outputs = loaded.signatures[signature](**inputs)
                outputs = {k: v.numpy() for k, v in outputs.items()}
                seconds.append(time.perf_counter() - started)
        except Exception as error:  # reported, not raised: the report lists every signature
            results[signature] = {"error": f"{type(error).__name__}: {str(error)[:2000]}", "ok": False}
            continue
        compared = {name: compare(outputs[name], expected, case["atol"]) for name, expected in case["expected"].items()}
        results[signature] = {
            "outputs": {name: value for name, (value, _) in compared.items()},
            "ok": all(ok for _, ok in compared.values()),
            "first_call_seconds": seconds[0],
            "second_call_seconds": seconds[1],
        }
    return results


def check(directory, scan_only=False):
    proto = read_saved_model(directory)
    types = op_types(proto)
    report = {"xla": xla_findings(proto, types), "ops": classify_ops(types)}
    if not scan_only:
        loaded = tf.saved_model.load(directory)
        report["signatures"] = describe_signatures(loaded)
        report["comparisons"] = run_references(loaded, directory)
    report["imported_keras_transformer"] = any(m.split(".")[0] == "keras_transformer" for m in sys.modules)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check a SavedModel version folder with TensorFlow only.")
    parser.add_argument("directory")
    parser.add_argument("--json", required=True, help="where the report goes")
    parser.add_argument("--scan-only", action="store_true", help="only the op and XLA scan")
    args = parser.parse_args(argv)
    report = check(args.directory, args.scan_only)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
