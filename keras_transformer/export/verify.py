"""Verifying an export the way a server would load it.

`verify(path)` runs `savedmodel_check.py` in a fresh interpreter that imports
only TensorFlow and tensorflow-text (never keras_transformer), then adds the
example requests of each signature (REST JSON and gRPC `PredictRequest`,
from the warm-up file). The export is OK when:
  * no function is XLA-compiled and no Xla* op is used;
  * every op is core TensorFlow or tensorflow-text;
  * every signature reproduces the Keras model's outputs on the stored
    reference request;
  * the warm-up file holds one request per signature;
  * the metadata, reference-output and warm-up files are all there and agree
    with the graph (a missing or damaged one is a problem, never a pass);
  * the check process did not import keras_transformer.
A SavedModel that does not load at all is a problem too: the CLI exits 1
for every problem, 2 only when PATH is not an export at all.
"""

import json
import os
import subprocess
import sys
import tempfile

from keras_transformer.export import requests
from serving import layout
from keras_transformer.export.versions import existing_versions

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "savedmodel_check.py")


def version_folder(path):
    """`path` itself if it holds saved_model.pb, else its newest version folder."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = existing_versions(path)
    if not versions:
        raise ValueError(f"{path!r} is neither a SavedModel folder nor a model base path with version folders")
    return os.path.join(path, str(versions[-1]))


def run_check(version_dir, scan_only=False, timeout=900):
    """The checker's report (dict), from a fresh TensorFlow-only process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "report.json")
        command = [sys.executable, CHECKER, version_dir, "--json", out] + (["--scan-only"] if scan_only else [])
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise ValueError(f"the SavedModel check failed for {version_dir!r}:\n{result.stderr[-4000:]}")
        with open(out, encoding="utf-8") as handle:
            return json.load(handle)


def problems(report, warmup_signatures=None):
    """Human-readable reasons the export is not servable as is (empty when it is)."""
    found = [f"XLA: {item}" for item in report["xla"]]
    found += [f"op {op} is neither core TensorFlow nor tensorflow-text" for op in report["ops"]["unknown"]]
    for name, result in report.get("comparisons", {}).items():
        if not result["ok"]:
            found.append(f"{name}: differs from the Keras model: {result.get('error') or result['outputs']}")
    if report.get("imported_keras_transformer"):
        found.append("the check process imported keras_transformer")
    if warmup_signatures is not None and "signatures" in report:
        served = sorted(n for n in report["signatures"] if not n.startswith("__"))
        if sorted(warmup_signatures) != served:
            found.append(f"warm-up requests cover {sorted(warmup_signatures)}, signatures are {served}")
    return found


def file_problems(version_dir, report, warmup_count):
    """Missing or inconsistent files beside the graph: metadata, reference outputs, warm-up requests."""
    found = []
    metadata_path = os.path.join(version_dir, layout.METADATA_FILE)
    try:
        with open(metadata_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
        if not isinstance(metadata, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        return [f"{layout.METADATA_FILE} is missing or unreadable ({type(error).__name__}): not a complete "
                "keras_transformer export"]
    if not os.path.isfile(os.path.join(version_dir, layout.REFERENCE_FILE)):
        found.append(f"{layout.REFERENCE_FILE} is missing: the graph cannot be compared with the Keras model")
    listed = sorted(metadata.get("signatures", {}))
    served = sorted(n for n in report.get("signatures", {}) if not n.startswith("__"))
    if listed != served:
        found.append(f"{layout.METADATA_FILE} lists signatures {listed}, the SavedModel has {served}")
    expected_warmup = metadata.get("warmup_requests", 0)
    if expected_warmup and warmup_count != expected_warmup:
        found.append(f"{layout.WARMUP_FILE} holds {warmup_count} requests; the export wrote {expected_warmup}")
    return found


def verify(path, model_name=None):
    """Checks an export (base path -> newest version); returns the report, with `problems` (empty when OK).

    `format_report(report)` turns it into the text the CLI prints.
    """
    version_dir = version_folder(os.fspath(path))
    try:
        report = run_check(version_dir)
    except ValueError as error:  # the SavedModel itself does not load: a problem of the export (exit 1)
        report = {"ops": {"core": [], "tensorflow_text": [], "unknown": []}, "xla": [], "signatures": {},
                  "comparisons": {}, "load_error": str(error)}
    has_warmup = os.path.isfile(os.path.join(version_dir, requests.WARMUP_FILE))
    try:
        warmup_requests = requests.read_warmup(version_dir) if has_warmup else []
    except Exception as error:  # noqa: BLE001 - a damaged warm-up file is a problem, not a crash
        report.setdefault("load_error", f"{requests.WARMUP_FILE} is unreadable: {error}")
        warmup_requests = []
    warmup = {r.model_spec.signature_name: r for r in warmup_requests}
    report["model_name"] = model_name or next((r.model_spec.name for r in warmup.values()), "model")
    report["problems"] = ([report["load_error"]] if "load_error" in report else []) + problems(
        report, list(warmup) if has_warmup else None) + file_problems(version_dir, report, len(warmup_requests))
    report["version_dir"] = version_dir
    report["has_warmup"] = has_warmup
    report["examples"] = {}
    for name, request in warmup.items():
        if requests.readable(request):
            report["examples"][name] = {"rest": requests.rest_example(report["model_name"], request),
                                        "grpc": str(request).strip()}
        else:
            report["examples"][name] = {"bytes": request.ByteSize()}
    return report


def format_report(report):
    """The human-readable text of a `verify()` report."""
    lines = [f"SavedModel {report['version_dir']}",
             f"ops: {len(report['ops']['core'])} core TensorFlow, tensorflow-text: "
             f"{report['ops']['tensorflow_text'] or 'none'}, unknown: {report['ops']['unknown'] or 'none'}",
             f"XLA-compiled functions / XLA-only ops: {report['xla'] or 'none'}"]
    if not report["has_warmup"]:
        lines.append(f"note: no {requests.WARMUP_FILE}: the first request of each signature pays its setup")
    for name, spec in report["signatures"].items():
        if name.startswith("__"):
            continue
        lines.append(f"\n== signature {name}")
        for kind in ("inputs", "outputs"):
            for key, value in spec[kind].items():
                lines.append(f"  {kind[:-1]:6} {key}: {value['dtype']} {value['shape']}")
        comparison = report["comparisons"].get(name)
        if comparison is not None:
            state = "OK" if comparison["ok"] else "DIFFERS"
            lines.append(f"  vs Keras model: {state} {comparison.get('error') or comparison['outputs']}")
            if "first_call_seconds" in comparison:
                lines.append(f"  latency on the reference request: first call {comparison['first_call_seconds']:.3f} s "
                             f"(absorbed by the warm-up), then {comparison['second_call_seconds']:.3f} s")
        example = report["examples"].get(name)
        if example and "bytes" in example:
            lines.append(f"  warm-up request: {example['bytes']:,} bytes (not printed)")
        elif example:
            lines.append("  REST:  " + example["rest"])
            lines.append("  gRPC PredictRequest:\n    " + example["grpc"].replace("\n", "\n    "))
    lines.append("\n" + ("OK: servable by tensorflow_model_server" if not report["problems"]
                         else "PROBLEMS:\n  " + "\n  ".join(report["problems"])))
    return "\n".join(lines)
