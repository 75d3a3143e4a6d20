"""classify-images: a ViT on the built-in images or on a class-folder tree; the stream; the CLI."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.images import CLASS_NAMES, synthetic_images
from tests.training.conftest import SMALL
from tests.training.test_cli import run_main
from training import data
from training.cli import format_summary
from training.config import TrainConfig
from training.run import train

FEW = dict(SMALL, batch_size=16)
del FEW["sequence_length"]  # text only


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A finished 6-step classify-images run on the built-in images: (config, summary)."""
    config = TrainConfig(task="classify-images", output=str(tmp_path_factory.mktemp("vit")), **FEW)
    return config, train(config)


def test_a_run_on_the_built_in_images_has_what_export_needs(image_run):
    config, summary = image_run
    output = config.output
    assert sorted(os.listdir(output)) == ["checkpoints", "config.json", "logs", "model.keras", "run_config.json",
                                          "summary.json"]  # no tokenizer/
    described = json.load(open(os.path.join(output, "config.json")))
    assert (described["family"], described["task"], described["model_class"]) == ("vit", "classify-images",
                                                                                   "ViTImageClassifier")
    assert described["labels"] == list(CLASS_NAMES) and described["backbone_config"]["image_size"] == 32
    assert json.load(open(os.path.join(output, "run_config.json")))["learning_rate"] == 1e-3  # the task's default
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert type(model).__name__ == "ViTImageClassifier" and model.num_classes == len(CLASS_NAMES)
    # Six steps are too few to learn (test_a_tiny_vit_learns_the_built_in_images does): the plumbing only.
    assert set(summary["final_validation"]) == {"loss", "accuracy"} and np.isfinite(summary["final_validation"]["loss"])
    assert summary["initial_validation"]["loss"] == pytest.approx(np.log(7), abs=0.15)  # near uniform at first
    assert (summary["image_size"], summary["tokens_per_step"], summary["vocabulary_size"]) == (32, 16 * 17, None)
    assert summary["images_per_second"] > 0 and summary["reload_difference"] < 1e-5
    text = format_summary(summary)
    assert "accuracy" in text and "(7 classes, chance 0.143)" in text and "images (32x32)" in text
    assert "images/s" in text and "nats/token" not in text and "tokenizer/" not in text


def test_the_run_folder_exports_with_its_class_names(image_run, tmp_path, capsys):
    from keras_transformer.export.__main__ import main
    from keras_transformer.images import draw_image
    from keras_transformer.models.vit import preprocess_images

    config, _ = image_run
    assert main(["export", config.output, str(tmp_path / "vit"), "--model-name", "vit"]) == 0
    version = capsys.readouterr().out.strip()
    assert version == str(tmp_path / "vit" / "1")
    signatures = tf.saved_model.load(version).signatures
    assert sorted(signatures) == ["classify_image", "serving_default"]
    pixels = draw_image("square", 5, 32)
    out = signatures["classify_image"](image_bytes=tf.constant([tf.io.encode_png(pixels).numpy()]))
    model = keras.saving.load_model(os.path.join(config.output, "model.keras"))
    logits = model(preprocess_images(pixels[None], model.backbone.model_config))["logits"]
    np.testing.assert_allclose(out["probabilities"].numpy(), tf.nn.softmax(logits).numpy(), atol=1e-5)
    assert out["label"].numpy()[0].decode() == CLASS_NAMES[int(np.argmax(logits))]


def test_a_rerun_resumes_at_its_last_step(image_run):
    config, summary = image_run
    again = train(config)
    assert (again["resumed_from"], again["steps"]) == (6, 6)
    assert again["final_validation"] == summary["final_validation"]
    assert "nothing to train" in format_summary(again)


def test_the_image_stream_is_a_function_of_the_step_and_flips_at_random():
    size, count = 4, 10
    images = np.random.default_rng(0).normal(size=(count, size, size, 3)).astype("float32")
    labelled = data.LabelledImages([str(i) for i in range(count)], images, np.arange(count, dtype="int32"))
    corpus = data.Corpus(labelled, labelled, "test", task="classify-images")
    config = TrainConfig(task="classify-images", batch_size=5, random_flip=True)

    def batches(start, steps):
        stream = data.training_stream(config, "vit", None, corpus, data.Shapes(5, image_size=size), start)
        return [(x["images"].numpy(), y.numpy()) for x, y, _ in stream.take(steps)]

    first, resumed = batches(0, 6), batches(3, 3)
    for (x, y), (x2, y2) in zip(first[3:], resumed):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    ids = np.concatenate([y for _, y in first])
    for epoch in range(3):  # every epoch is a permutation, a new one each time
        assert sorted(ids[epoch * count:(epoch + 1) * count]) == list(range(count))
    assert not np.array_equal(ids[:count], ids[count:2 * count])
    rows = [(x[i], y[i]) for x, y in first for i in range(len(y))]
    flipped = [np.array_equal(x, images[y][:, ::-1]) for x, y in rows]
    assert all(flip or np.array_equal(x, images[y]) for (x, y), flip in zip(rows, flipped))
    assert 0 < sum(flipped) < len(rows)


def test_options_of_the_other_kind_of_task_are_refused():
    with pytest.raises(ValueError, match="for the classify-images task only: --image-size, --random-flip"):
        TrainConfig(image_size=48, random_flip=True)
    with pytest.raises(ValueError, match=r"text tasks only \(classify-images reads images\): --tokenizer, --seq"):
        TrainConfig(task="classify-images", tokenizer="tok/", sequence_length=16)
    with pytest.raises(ValueError, match="--image-size 48 and --model-option image_size=64 disagree"):
        TrainConfig(task="classify-images", image_size=48, model_options={"image_size": 64})
    with pytest.raises(ValueError, match="--validation-data needs --data"):
        TrainConfig(task="classify-images", validation_data=["val/"])
    assert TrainConfig(task="classify-images").learning_rate == 1e-3 and TrainConfig().learning_rate == 5e-3


def _image_folder(root, per_class, bad=()):
    _, images, labels = synthetic_images(per_class=per_class, size=24, class_names=["circle", "vertical_stripes"])
    for index, (image, label) in enumerate(zip(images, labels)):
        name = ["circle", "stripes"][label]
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        encoded = tf.io.encode_png(image) if index % 2 else tf.io.encode_jpeg(image)
        (folder / f"{index:03d}.{'png' if index % 2 else 'jpg'}").write_bytes(encoded.numpy())
    for path in bad:
        (root / path).write_bytes(b"GIF89a not what the name says")
    return root


def test_a_folder_with_a_bad_image_stops_the_run_or_is_skipped(tmp_path, capsys):
    folder = _image_folder(tmp_path / "images", 12, bad=["stripes/fake.png"])
    argv = ["classify-images", "--data", str(folder), "--output", str(tmp_path / "run"), "--steps", "4",
            "--checkpoint-every", "2", "--batch-size", "8", "--validation-fraction", "0.25", "--verbose", "0"]
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "fake.png: not a JPEG or PNG image (it starts with b'GIF89a n')" in err
    assert err.startswith("error: ") and "Traceback" not in err
    status, out, _ = run_main(argv + ["--skip-bad-files", "--image-size", "16", "--random-flip"], capsys)
    assert status in (0, 1), out  # 1: four steps did not lower the validation loss
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert summary["labels"] == ["circle", "stripes"] and summary["image_size"] == 16
    assert [os.path.basename(path) for path, _ in summary["skipped_files"]] == ["fake.png"]
    assert "data: 24 images in 2 classes from" in out and "skipped 1 bad file(s)" in out
    status, _, err = run_main(["classify-images", "--data", str(tmp_path / "nowhere")], capsys)
    assert status == 2 and "image folder" in err and "does not exist" in err


@pytest.mark.slow
def test_a_tiny_vit_learns_the_built_in_images(tmp_path):
    config = TrainConfig(task="classify-images", steps=400, checkpoint_every=400, output=str(tmp_path), verbose=0)
    summary = train(config)
    # 7 classes: chance is 0.143; the held-out images are never trained on.
    assert summary["final_validation"]["accuracy"] > 0.3 > summary["initial_validation"]["accuracy"]
