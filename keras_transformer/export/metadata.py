"""Files written beside the SavedModel, in `assets.extra/` (TF Serving reads only its warm-up file there).

- `keras_transformer_export.json`: versions, model, tokenizer, signatures
  (inputs/outputs with dtype and shape, description) and the ops the graph
  needs beyond core TensorFlow (tensorflow-text), for tools.
- `README.md`: the same for people, with serving commands and one REST
  example per signature.
- `keras_transformer_reference.npz`: one request per signature and the
  outputs the Keras model gave for it (read by the verifier).
"""

import json
import os

import numpy as np

from serving.layout import METADATA_FILE, README_FILE, REFERENCE_FILE  # noqa: F401  (the version folder's names)

FORMAT_VERSION = 1


def library_versions():
    import keras
    import keras_hub
    import tensorflow as tf
    import tensorflow_text

    import keras_transformer

    return {"keras_transformer": keras_transformer.__version__, "tensorflow": tf.__version__,
            "tensorflow_text": tensorflow_text.__version__, "keras": keras.__version__,
            "keras_hub": keras_hub.__version__}


def _storable(value):
    value = np.asarray(value)
    if value.dtype == object:  # strings: fixed-width bytes load without pickle
        return np.array([v if isinstance(v, bytes) else str(v).encode("utf-8") for v in value.reshape(-1)],
                        dtype=bytes).reshape(value.shape)
    return value


def write_reference(version_dir, cases):
    """cases: {signature: (inputs dict, expected dict, atol)}."""
    arrays = {}
    for signature, (inputs, expected, atol) in cases.items():
        arrays.update({f"{signature}::in::{k}": _storable(v) for k, v in inputs.items()})
        arrays.update({f"{signature}::out::{k}": _storable(v) for k, v in expected.items()})
        arrays[f"{signature}::atol::"] = np.float64(atol)
    np.savez(os.path.join(version_dir, REFERENCE_FILE), **arrays)


def write_metadata(version_dir, metadata):
    with open(os.path.join(version_dir, METADATA_FILE), "w", encoding="utf-8") as handle:
        json.dump(metadata, handle, indent=2, sort_keys=True)
        handle.write("\n")


def _table(specs):
    return "<br>".join(f"`{name}` {spec['dtype']} {spec['shape']}" for name, spec in specs.items())


def write_readme(version_dir, metadata, rest_examples):
    """A short human description; rest_examples: {signature: curl command}."""
    name = metadata["model_name"]
    ops = metadata["ops"]
    lines = [
        f"# {name}: {metadata['model']['class']} exported by keras_transformer.export",
        "",
        "Serve the model base path (the folder holding this version folder) with the stock server:",
        "",
        "```sh",
        f"docker run -p 8500:8500 -p 8501:8501 -v \"$BASE_PATH:/models/{name}\" -e MODEL_NAME={name} tensorflow/serving",
        f"tensorflow_model_server --rest_api_port=8501 --model_name={name} --model_base_path=$BASE_PATH",
        "```",
        "",
        "## Ops beyond core TensorFlow",
        "",
        ("tensorflow-text ops (in the official tensorflow_model_server builds): "
         + ", ".join(f"`{op}`" for op in ops["tensorflow_text"])
         + f". Exported with tensorflow-text {metadata['versions']['tensorflow_text']}; the server's "
           "pinned tensorflow-text must be at least as new.") if ops["tensorflow_text"] else "None.",
        "",
        "No XLA-compiled functions and no XLA-only ops: the graphs run on the stock CPU and GPU servers.",
        "",
        "Inspect or run it with TensorFlow's `saved_model_cli show --all --dir VERSION_DIR` and `saved_model_cli "
        "run --dir VERSION_DIR --tag_set serve --signature_def NAME --input_exprs 'text=[\"hello\"]'`"
        + (("; with tensorflow-text ops, load them first: `python -c \"import sys, tensorflow_text; from "
            "tensorflow.python.tools.saved_model_cli import main; sys.argv[0] = 'saved_model_cli'; "
            "sys.exit(main())\" run ...`.") if ops["tensorflow_text"] else "."),
        "",
        "## Signatures",
        "",
        "| signature | inputs | outputs | what it does |",
        "|---|---|---|---|",
    ]
    for signature, spec in metadata["signatures"].items():
        lines.append(f"| `{signature}` | {_table(spec['inputs'])} | {_table(spec['outputs'])} | "
                     f"{spec['description']} |")
    lines += ["", "Every input's first axis is the batch. `generate` settings may also be given once "
              "(shape (1,)) for all rows.", "", "## Example requests (REST)", ""]
    for signature, command in rest_examples.items():
        lines += [f"`{signature}`:", "", "```sh", command, "```", ""]
    with open(os.path.join(version_dir, README_FILE), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
