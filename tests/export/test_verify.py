"""The verifier: a TensorFlow-only check of an export, XLA detection, warm-up file, metadata."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.export import requests, verify
from keras_transformer.export.plain_graph import plain_graph_ops
from keras_transformer.export.verify import format_report, problems


def test_verify_cli_reports_a_servable_export(gpt_export, tmp_path):
    _, _, path = gpt_export
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "keras_transformer.export", "verify", os.path.dirname(path), "--json", str(report_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "OK: servable by tensorflow_model_server" in out
    for name in ("serving_default", "serving_default_int64", "generate"):
        assert f"== signature {name}" in out
        assert f'"signature_name": "{name}"' in out  # REST body
        assert f'signature_name: "{name}"' in out  # gRPC PredictRequest text
    assert "curl -s -X POST http://localhost:8501/v1/models/gpt:predict" in out
    report = json.loads(report_path.read_text())
    assert report["problems"] == [] and report["imported_keras_transformer"] is False
    assert report["comparisons"]["generate"]["ok"] and report["comparisons"]["serving_default"]["ok"]
    assert report["signatures"]["generate"]["inputs"]["prompt"] == {"dtype": "string", "shape": [None]}


def test_warmup_file_holds_one_request_per_signature(classifier_export):
    _, _, path = classifier_export
    warmup = requests.read_warmup(path)
    names = [r.model_spec.signature_name for r in warmup]
    assert names == ["serving_default", "serving_default_int64", "classify", "embed"]
    assert all(r.model_spec.name == "model" for r in warmup)
    classify = requests.request_inputs(warmup[2])
    assert classify["text"].dtype == object and len(classify["text"]) == 2
    with open(os.path.join(path, "assets.extra", "keras_transformer_export.json")) as handle:
        info = json.load(handle)
    assert info["warmup_requests"] == 4 and info["ops"]["xla"] == []
    assert set(info["ops"]["tensorflow_text"]) >= {"FastWordpieceTokenizeWithOffsets"}
    assert info["signatures"]["classify"]["outputs"]["label"] == {"dtype": "string", "shape": [None]}
    assert os.path.isfile(os.path.join(path, "assets", "tokenizer", "vocabulary.txt"))
    readme = open(os.path.join(path, "assets.extra", "README.md")).read()
    assert "FastWordpieceTokenizeWithOffsets" in readme and '"signature_name": "classify"' in readme


class _Scaler(tf.Module):
    def __init__(self):
        self.weight = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")], jit_compile=True)
    def compiled(self, x):
        return {"y": x * self.weight}

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def slice_update(self, x):
        return {"y": keras.ops.slice_update(x, [0, 1], tf.ones([tf.shape(x)[0], 2]))}


def test_verify_flags_xla_compiled_functions_and_xla_ops(tmp_path):
    module = _Scaler()
    version = str(tmp_path / "model" / "1")
    tf.saved_model.save(module, version, signatures={"serving_default": module.compiled.get_concrete_function(),
                                                     "update": module.slice_update.get_concrete_function()})
    report = verify(str(tmp_path / "model"))  # the base path: its newest version
    assert report["version_dir"] == version
    assert any("_XlaMustCompile=true" in item for item in report["xla"]), report["xla"]
    assert any(item.startswith("op XlaDynamicUpdateSlice") for item in report["xla"]), report["xla"]
    assert any(p.startswith("XLA:") for p in report["problems"])
    assert "\nPROBLEMS:\n  XLA:" in format_report(report)  # verify() itself prints nothing
    assert problems({"xla": [], "ops": {"unknown": []}}) == []


def test_plain_graph_ops_replace_the_xla_update(tmp_path):
    x = np.arange(12, dtype="float32").reshape(3, 4)

    def update(x, start):
        return keras.ops.slice_update(x, [0, start], tf.ones([3, 2]))

    expected = update(tf.constant(x), 1).numpy()
    with plain_graph_ops():
        function = tf.function(update, autograph=False).get_concrete_function(
            tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([], tf.int32))
    ops = {op.type for op in function.graph.get_operations()}
    assert "TensorStridedSliceUpdate" in ops and not any(op.startswith("Xla") for op in ops)
    np.testing.assert_array_equal(function(tf.constant(x), tf.constant(1)).numpy(), expected)
    np.testing.assert_array_equal(function(tf.constant(x), tf.constant(3)).numpy(),
                                  update(tf.constant(x), 3).numpy())  # clamped start, as XLA does


def test_missing_files_and_a_corrupt_graph_are_problems(gpt_export, tmp_path, capsys):
    import shutil

    from keras_transformer.export.__main__ import main

    _, _, path = gpt_export
    # Without the metadata the folder is not a complete export; the other two are each reported.
    for missing in (("assets.extra/keras_transformer_export.json",),
                    ("assets.extra/keras_transformer_reference.npz", "assets.extra/tf_serving_warmup_requests")):
        copy = tmp_path / f"missing{len(missing)}" / "1"
        shutil.copytree(path, copy)
        for name in missing:
            os.remove(copy / name)
        report = verify(str(copy))
        for name in missing:
            assert any(os.path.basename(name) in problem for problem in report["problems"]), (name, report["problems"])
    corrupt = tmp_path / "corrupt" / "1"
    shutil.copytree(path, corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"not a SavedModel")
    capsys.readouterr()
    assert main(["verify", str(corrupt)]) == 1  # the CLI's exit status
    assert "PROBLEMS:" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "none")]) == 2
    assert "error:" in capsys.readouterr().err
