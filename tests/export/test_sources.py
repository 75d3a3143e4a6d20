"""Exporting from files: a `.keras` file with a tokenizer folder, and a run folder through the CLI."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.export import export
from keras_transformer.text.tokenizers import save_tokenizer


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, byte_tokenizer):
    from keras_transformer.models import GPTCausalLM

    folder = tmp_path_factory.mktemp("run")
    model = GPTCausalLM.from_preset("gpt2_tiny", backbone_overrides={
        "vocabulary_size": byte_tokenizer.vocabulary_size(), "num_layers": 1})
    model.save(str(folder / "model.keras"))
    save_tokenizer(byte_tokenizer, str(folder / "tokenizer"))
    return folder, model


def test_export_from_a_keras_file_and_tokenizer_folder(run_folder, tmp_path):
    folder, model = run_folder
    path = export(str(folder / "model.keras"), str(tmp_path / "gpt"), tokenizer=str(folder / "tokenizer"),
                  signatures=["serving_default", "generate"])
    loaded = tf.saved_model.load(path).signatures
    ids = np.array([[5, 6, 7]], "int32")
    served = loaded["serving_default"](token_ids=tf.constant(ids), padding_mask=tf.ones_like(ids))["logits"]
    np.testing.assert_allclose(served, model({"token_ids": ids, "padding_mask": np.ones_like(ids)})["logits"],
                               atol=1e-5)
    assert sorted(loaded) == ["generate", "generate_next", "generate_start", "serving_default"]
    with pytest.raises(ValueError, match="not a .keras file"):
        export(str(folder / "tokenizer" / "tokenizer.json"), str(tmp_path / "other"))


@pytest.mark.slow
def test_cli_exports_a_run_folder(run_folder, tmp_path):
    folder, _ = run_folder
    base = tmp_path / "served"
    command = [sys.executable, "-m", "keras_transformer.export", "export", str(folder), str(base),
               "--signatures", "generate", "--model-name", "tiny", "--version", "7"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(base / "7")
    assert sorted(os.listdir(base / "7" / "assets.extra")) == [
        "README.md", "keras_transformer_export.json", "keras_transformer_reference.npz", "tf_serving_warmup_requests"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)  # the version exists now
    assert again.returncode == 2 and "version 7 already exists" in again.stderr


def test_export_from_a_training_checkpoint(tmp_path, wordpiece):
    """A run folder still training (no model.keras): the newest checkpoint that verifies is exported."""
    import json

    from keras_transformer.models import BertBackbone, BertClassifier
    from training.checkpoints import CheckpointManager

    output = tmp_path / "run"
    model = BertClassifier(BertBackbone.from_preset("bert_test", vocabulary_size=wordpiece.vocabulary_size()), 2)
    model.compile()
    x = {"token_ids": np.array([[2, 50, 3]]), "segment_ids": np.zeros([1, 3], "int32"),
         "padding_mask": np.ones([1, 3], "int32")}
    keras_config = {k: v for k, v in keras.saving.serialize_keras_object(model).items()
                    if k not in ("compile_config", "build_config")}
    output.mkdir()
    (output / "config.json").write_text(json.dumps({"keras_config": keras_config, "labels": ["no", "yes"]}))
    save_tokenizer(wordpiece, str(output / "tokenizer"))
    manager = CheckpointManager(str(output / "checkpoints"), keep=3)
    manager.save(model, 5, {})
    expected = np.asarray(model(x)["logits"])
    model.fit(x, np.array([1]), verbose=0)  # later weights, in the checkpoint that gets damaged
    damaged = manager.save(model, 9, {})
    with open(os.path.join(damaged, "model.weights.h5"), "r+b") as handle:  # a torn write
        handle.truncate(100)

    path = export(str(output), str(tmp_path / "served"), signatures=["serving_default", "classify"])
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(path).signatures
    logits = loaded["serving_default"](**{k: tf.constant(v, tf.int32) for k, v in x.items()})["logits"]
    np.testing.assert_allclose(logits, expected, atol=1e-5)  # ckpt-5's weights: ckpt-9 fails its SHA-256
    assert np.abs(expected - np.asarray(model(x)["logits"])).max() > 1e-4
    labels = loaded["classify"](text=tf.constant(["some text"]))["label"].numpy()
    assert labels[0] in (b"no", b"yes")
    with pytest.raises(ValueError, match="no weights matching the SHA-256"):
        export(damaged, str(tmp_path / "other"))
