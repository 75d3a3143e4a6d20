"""Version folders, atomic publishing and clear errors for bad export requests."""

import hashlib
import os

import keras
import numpy as np
import pytest

from keras_transformer.export import export, versions


def _tiny_model():
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(10, 4, name="embedding")(ids)
    return keras.Model(ids, keras.layers.Dense(3, name="scores")(x))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _digest(folder):
    hashes = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                hashes[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return hashes


def test_versions_are_numbered_and_never_rewritten(tmp_path):
    base = tmp_path / "model"
    (tmp_path / "model").mkdir()
    (base / "notes").mkdir()  # a non-version child is ignored
    model = _tiny_model()
    first = export(model, str(base), warmup=False)
    assert first == str(base / "1")
    before = _digest(first)
    second = export(model, str(base))
    assert second == str(base / "2")
    assert _digest(first) == before  # version 1 is byte-identical after the second export
    assert export(model, str(base), version=10, signatures=["serving_default"]).endswith("10")
    assert versions.existing_versions(str(base)) == [1, 2, 10]
    assert export(model, str(base)).endswith("11")
    assert not [n for n in os.listdir(base) if n.startswith(versions.STAGING_PREFIX)]
    assert os.stat(first).st_mode & 0o055 == 0o055 & ~_umask()  # readable by a server of another user
    # The generic model's signature uses its own input and output names.
    import tensorflow as tf

    served = tf.saved_model.load(first).signatures["serving_default"](token_ids=tf.constant([[1, 2]]))
    np.testing.assert_allclose(served["scores"], model(np.array([[1, 2]])), atol=1e-6)


def test_staging_folder_is_ignored_by_tf_serving_and_removed_on_failure(tmp_path, monkeypatch):
    base = str(tmp_path / "model")
    staging = versions.make_staging_dir(base)
    assert not os.path.basename(staging).isdigit()
    assert versions.existing_versions(base) == []

    from keras_transformer.export import requests

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(requests, "write_warmup", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export(_tiny_model(), base)
    assert sorted(os.listdir(base)) == [os.path.basename(staging)]  # only the earlier, manual one


def test_staging_folders_of_killed_exports_are_cleaned_up_by_the_next_export(tmp_path):
    import subprocess
    import sys

    base = tmp_path / "model"
    base.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = base / f"{versions.STAGING_PREFIX}{int(dead.stdout)}-abc"  # its process has exited
    (abandoned / "variables").mkdir(parents=True)
    running = base / f"{versions.STAGING_PREFIX}{os.getpid()}-def"  # an export still in progress
    running.mkdir()
    assert versions.existing_versions(str(base)) == []  # never mistaken for versions
    path = export(_tiny_model(), str(base))
    assert sorted(os.listdir(base)) == sorted([os.path.basename(path), running.name])


def test_leading_zeros_count_as_the_same_version(tmp_path):
    (tmp_path / "0003").mkdir()
    assert versions.existing_versions(str(tmp_path)) == [3]
    assert versions.resolve_version(str(tmp_path), None) == 4
    with pytest.raises(ValueError, match="version 3 already exists"):
        versions.resolve_version(str(tmp_path), 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"version": 1}, r"version 1 already exists .* never overwritten"),
    ({"version": -2}, "non-negative integer"),
    ({"version": True}, "non-negative integer"),
    ({"signatures": ["generate"]}, r"unknown signature\(s\) \['generate'\] for Functional; it supports"),
    ({"model_name": ""}, "model_name must be a non-empty string"),
])
def test_bad_requests_raise_clear_errors(tmp_path, kwargs, message):
    base = tmp_path / "model"
    (base / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match=message):
        export(_tiny_model(), str(base), **kwargs)
    assert sorted(os.listdir(base)) == ["1"]  # nothing written


def test_bad_sources_and_tokenizers_raise_clear_errors(tmp_path, wordpiece):
    from keras_transformer.models import BertBackbone, BertClassifier, GPTCausalLM

    file_path = tmp_path / "a_file"
    file_path.write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        export(_tiny_model(), str(file_path))
    with pytest.raises(ValueError, match="does not exist"):
        export(str(tmp_path / "missing.keras"), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="must be a keras.Model"):
        export(object(), str(tmp_path / "out"))
    classifier = BertClassifier(BertBackbone.from_preset("bert_test", vocabulary_size=wordpiece.vocabulary_size()), 2)
    with pytest.raises(ValueError, match=r"signature\(s\) \['classify'\] take strings and need the tokenizer"):
        export(classifier, str(tmp_path / "out"), signatures=["classify"])
    with pytest.raises(ValueError, match="labels has 3 names but the classifier has num_classes=2"):
        export(classifier, str(tmp_path / "out"), tokenizer=wordpiece, labels=["a", "b", "c"])
    small = GPTCausalLM.from_preset("gpt2_tiny", backbone_overrides={"vocabulary_size": 50})
    with pytest.raises(ValueError, match=f"the tokenizer has {wordpiece.vocabulary_size()} ids but the model.s vocabulary_size is 50"):
        export(small, str(tmp_path / "out"), tokenizer=wordpiece)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
