"""Running exported signatures the way a server does: a fresh process with TensorFlow and tensorflow-text only."""

import json
import os

import numpy as np

from tests.test_case import run_in_fresh_process


def storable(array):
    array = np.asarray(array)
    return array.astype(bytes) if array.dtype == object else array


def run_in_serving_process(version_dir, calls, work_dir):
    """Runs `calls` [(signature name, inputs dict)] on the reloaded SavedModel in a fresh process.

    The process imports tensorflow and tensorflow_text only and fails if
    anything of keras_transformer got imported. Returns (list of output dicts,
    top-level modules the process had loaded).
    """
    paths = []
    for index, (_, inputs) in enumerate(calls):
        path = os.path.join(work_dir, f"call_{index}.npz")
        np.savez(path, **{name: storable(value) for name, value in inputs.items()})
        paths.append(path)
    jobs = [(name, path, path.replace(".npz", "_out.npz")) for (name, _), path in zip(calls, paths)]
    script = f"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the tf-text ops, as the server has them)
loaded = tf.saved_model.load({os.fspath(version_dir)!r})
for name, source, target in {jobs!r}:
    with np.load(source) as data:
        outputs = loaded.signatures[name](**{{k: tf.constant(data[k]) for k in data.files}})
    arrays = {{}}
    for key, value in outputs.items():
        value = value.numpy()
        arrays[key] = value.astype(bytes) if value.dtype == object else value
    np.savez(target, **arrays)
modules = sorted({{m.split(".")[0] for m in sys.modules}})
assert "keras_transformer" not in modules, modules
print(json.dumps(modules))
"""
    stdout = run_in_fresh_process(script)
    results = []
    for _, _, target in jobs:
        with np.load(target) as data:
            results.append({key: data[key] for key in data.files})
    return results, json.loads(stdout.strip().splitlines()[-1])


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, "float64") - np.asarray(b, "float64"))))


def text_array(texts):
    return np.array([t.encode("utf-8") for t in texts], dtype=object)


def bert_packed(tokenizer, texts, max_length=32):
    """`[CLS] text [SEP]` ids as training packs them (keras_transformer.text.supervised)."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    rows = [[cls_id] + list(np.asarray(tokenizer(t)))[: max_length - 2] + [sep_id] for t in texts]
    length = max(map(len, rows))
    ids = np.array([r + [0] * (length - len(r)) for r in rows], "int32")
    mask = (np.arange(length)[None] < np.array([len(r) for r in rows])[:, None]).astype("int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
