"""TensorFlow's saved_model_cli on our exports: `show --all` lists every signature, `run` runs them."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
# saved_model_cli itself, in a process that first loads the tensorflow-text ops.
WITH_TF_TEXT = [sys.executable, "-c", "import sys, tensorflow_text; from tensorflow.python.tools.saved_model_cli "
                "import main; sys.argv[0] = 'saved_model_cli'; sys.exit(main())"]
GENERATE = 'prompt=["hello", "x"];max_new_tokens=[4];temperature=[0.0];top_k=[0];top_p=[1.0];seed=[0]'


def _cli(args, command=(SAVED_MODEL_CLI,)):
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _results(stdout):
    """{output key: printed value} from `saved_model_cli run`."""
    parts = re.split(r"Result for output key (\w+):\n", stdout)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def _run(path, signature, exprs, command=(SAVED_MODEL_CLI,)):
    return _results(_cli(["run", "--dir", path, "--tag_set", "serve", "--signature_def", signature,
                          "--input_exprs", exprs], command))


def test_show_all_lists_signatures_and_run_generates(gpt_export):
    _, _, path = gpt_export
    shown = _cli(["show", "--all", "--dir", path])
    for signature, inputs in {"serving_default": {"token_ids": "DT_INT32", "padding_mask": "DT_INT32"},
                              "serving_default_int64": {"token_ids": "DT_INT64", "padding_mask": "DT_INT64"},
                              "generate": {"prompt": "DT_STRING", "max_new_tokens": "DT_INT32", "seed": "DT_INT64"}}.items():
        block = shown.split(f"signature_def['{signature}']:")[1].split("signature_def[")[0]
        for name, dtype in inputs.items():
            assert re.search(rf"inputs\['{name}'\] tensor_info:\s+dtype: {dtype}\s+shape: \(-1", block), (name, block)
    assert re.search(r"outputs\['generated_text'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)", shown)
    assert re.search(r"outputs\['logits'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, -1, 259\)", shown)

    import tensorflow_text  # noqa: F401

    served = _run(path, "generate", GENERATE)
    expected = tf.saved_model.load(path).signatures["generate"](
        prompt=tf.constant(["hello", "x"]), max_new_tokens=tf.constant([4]), temperature=tf.constant([0.0]),
        top_k=tf.constant([0]), top_p=tf.constant([1.0]), seed=tf.constant([0], tf.int64))
    assert served["token_ids"] == str(expected["token_ids"].numpy())
    assert served["generated_text"] == str(expected["generated_text"].numpy())


@pytest.mark.slow
def test_run_every_signature(gpt_export, classifier_export):
    ids = "token_ids=[[5, 6, 7]];padding_mask=[[1, 1, 0]]"
    logits = _run(gpt_export[2], "serving_default_int64", ids)["logits"]  # the int32 one: as BERT's below
    assert logits.startswith("[[[") and "nan" not in logits
    model, _, path = classifier_export
    bert_ids = "token_ids=[[2, 40, 3]];segment_ids=[[0, 0, 0]];padding_mask=[[1, 1, 1]]"
    expected = model({"token_ids": np.array([[2, 40, 3]]), "segment_ids": np.zeros([1, 3], "int32"),
                      "padding_mask": np.ones([1, 3], "int32")})["logits"]
    # The graph holds tf-text ops: load them first.
    printed = _run(path, "serving_default", bert_ids, WITH_TF_TEXT)["logits"]
    numbers = np.array(re.findall(r"-?\d+\.\d*(?:e[-+]?\d+)?", printed), "float64")
    np.testing.assert_allclose(numbers, np.ravel(expected), atol=1e-5)
    classify = _run(path, "classify", 'text=["hello world", "x"]', WITH_TF_TEXT)
    assert classify["label_id"].startswith("[") and "label" in classify
    assert "embeddings" in _run(path, "embed", 'text=["hello world"]', WITH_TF_TEXT)
