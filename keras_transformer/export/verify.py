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
  * the check process did not import keras_transformer.
"""

import json
import os
import subprocess
import sys
import tempfile

from keras_transformer.export import requests
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


def verify(path, model_name=None, print_fn=print):
    """Checks an export (base path -> newest version); prints a report; returns it with `problems`."""
    version_dir = version_folder(os.fspath(path))
    report = run_check(version_dir)
    has_warmup = os.path.isfile(os.path.join(version_dir, requests.WARMUP_FILE))
    warmup = {r.model_spec.signature_name: r for r in requests.read_warmup(version_dir)} if has_warmup else {}
    model_name = model_name or next((r.model_spec.name for r in warmup.values()), "model")
    report["problems"] = problems(report, list(warmup) if has_warmup else None)
    report["version_dir"] = version_dir
    print_fn(f"SavedModel {version_dir}")
    print_fn(f"ops: {len(report['ops']['core'])} core TensorFlow, tensorflow-text: "
             f"{report['ops']['tensorflow_text'] or 'none'}, unknown: {report['ops']['unknown'] or 'none'}")
    print_fn(f"XLA-compiled functions / XLA-only ops: {report['xla'] or 'none'}")
    if not has_warmup:
        print_fn(f"note: no {requests.WARMUP_FILE}: the first request of each signature pays its setup")
    for name, spec in report["signatures"].items():
        if name.startswith("__"):
            continue
        print_fn(f"\n== signature {name}")
        for kind in ("inputs", "outputs"):
            for key, value in spec[kind].items():
                print_fn(f"  {kind[:-1]:6} {key}: {value['dtype']} {value['shape']}")
        comparison = report["comparisons"].get(name)
        if comparison is not None:
            state = "OK" if comparison["ok"] else "DIFFERS"
            print_fn(f"  vs Keras model: {state} {comparison.get('error') or comparison['outputs']}")
            if "first_call_seconds" in comparison:
                print_fn(f"  latency on the reference request: first call {comparison['first_call_seconds']:.3f} s "
                         f"(absorbed by the warm-up), then {comparison['second_call_seconds']:.3f} s")
        if name in warmup and not requests.readable(warmup[name]):
            print_fn(f"  warm-up request: {warmup[name].ByteSize():,} bytes (not printed)")
        elif name in warmup:
            print_fn("  REST:  " + requests.rest_example(model_name, warmup[name]))
            print_fn("  gRPC PredictRequest:\n    " + str(warmup[name]).strip().replace("\n", "\n    "))
    print_fn("\n" + ("OK: servable by tensorflow_model_server" if not report["problems"]
                     else "PROBLEMS:\n  " + "\n  ".join(report["problems"])))
    return report
