"""The built-in image set, class folders and JPEG/PNG decoding (TensorFlow)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.images import CLASS_NAMES, synthetic_images
from keras_transformer.images.decoding import format_check, image_format
from keras_transformer.images.folders import list_image_folder, load_images
from keras_transformer.models import get_preset
from keras_transformer.models.vit import preprocess_images

CONFIG = get_preset("vit_tiny", "vit")  # 32 x 32, 3 channels, mean = std = 0.5


def test_the_built_in_set_is_deterministic_balanced_and_not_separable_by_colour():
    names, images, labels = synthetic_images(per_class=40, size=32)
    again = synthetic_images(per_class=40, size=32)[1]
    np.testing.assert_array_equal(images, again)
    assert images.shape == (280, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [40] * len(CLASS_NAMES)
    assert names[:2] == [f"{CLASS_NAMES[0]}/00000", f"{CLASS_NAMES[1]}/00000"]
    assert not np.array_equal(images, synthetic_images(per_class=40, size=32, seed=1)[1])
    # Nearest class-mean colour, fitted on even images, tested on odd ones: close to chance (1/7).
    colour = images.reshape(len(images), -1, 3).mean(1)
    fit, test = np.arange(len(images)) % 2 == 0, np.arange(len(images)) % 2 == 1
    centroids = np.stack([colour[fit & (labels == c)].mean(0) for c in range(len(CLASS_NAMES))])
    guess = np.argmin(((colour[test, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (guess == labels[test]).mean() < 0.3


def test_a_class_order_can_be_given():
    order = list(reversed(CLASS_NAMES))
    names, images, labels = synthetic_images(per_class=2, size=16, class_names=order)
    assert [name.split("/")[0] for name in names[:7]] == order and labels[:7].tolist() == list(range(7))
    with pytest.raises(ValueError, match="unknown class 'hexagon'"):
        synthetic_images(per_class=1, class_names=["hexagon"])


def _write(path, pixels, kind):
    path.parent.mkdir(parents=True, exist_ok=True)
    encode = tf.io.encode_png if kind == "png" else tf.io.encode_jpeg
    path.write_bytes(encode(pixels).numpy())


def test_a_class_folder_tree_is_listed_like_keras_lists_it(tmp_path):
    _, images, _ = synthetic_images(per_class=2, size=20)
    _write(tmp_path / "dog" / "b.PNG", images[0], "png")
    _write(tmp_path / "dog" / "more" / "c.jpeg", images[1], "jpeg")
    _write(tmp_path / "cat" / "a.jpg", images[2], "jpeg")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"")
    (tmp_path / "top.png").write_bytes(b"")
    paths, label_ids, classes = list_image_folder(str(tmp_path))
    assert classes == ["cat", "dog"]
    assert [p.removeprefix(str(tmp_path) + "/") for p in paths] == ["cat/a.jpg", "dog/b.PNG", "dog/more/c.jpeg"]
    assert label_ids.tolist() == [0, 1, 1]
    assert list_image_folder(str(tmp_path), ["dog", "cat"])[1].tolist() == [1, 0, 0]
    assert list_image_folder(str(tmp_path), ["bird", "cat", "dog"], all_classes=False)[1].tolist() == [1, 2, 2]
    with pytest.raises(ValueError, match=r"do not match the classes \['bird', 'cat', 'dog'\]; no folder: \['bird'\]"):
        list_image_folder(str(tmp_path), ["bird", "cat", "dog"])
    with pytest.raises(ValueError, match=r"not a class: \['dog'\]"):
        list_image_folder(str(tmp_path), ["cat", "fox"], all_classes=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty' holds no images"):
        list_image_folder(str(tmp_path))
    with pytest.raises(ValueError, match="has no sub-folders"):
        list_image_folder(str(tmp_path / "dog" / "more"))
    with pytest.raises(ValueError, match="does not exist"):
        list_image_folder(str(tmp_path / "nowhere"))


def test_loaded_images_are_the_preprocessed_pixels_and_bad_files_are_named(tmp_path):
    _, images, _ = synthetic_images(per_class=1, size=32)
    gray = images[1].mean(-1, keepdims=True).astype("uint8")
    _write(tmp_path / "same.png", images[0], "png")  # lossless, the model's size
    _write(tmp_path / "gray.png", gray, "png")  # one channel -> three
    _write(tmp_path / "wide.png", images[2][:20], "png")  # 20 x 32 -> resized
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes((tmp_path / "same.png").read_bytes()[:60])
    good = [str(tmp_path / name) for name in ("same.png", "gray.png", "wide.png")]
    loaded, kept, skipped = load_images(good, CONFIG)
    assert loaded.shape == (3, 32, 32, 3) and kept == [0, 1, 2] and skipped == []
    np.testing.assert_allclose(loaded[0], images[0] / 127.5 - 1.0, atol=1e-6)  # (x / 255 - 0.5) / 0.5
    np.testing.assert_allclose(loaded[1], np.repeat(gray, 3, -1) / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(loaded[2], np.asarray(preprocess_images(images[2][None, :20], CONFIG))[0], atol=1e-6)
    for name, reason in (("text.png", "not a JPEG or PNG image"), ("empty.jpg", "empty file"),
                         ("cut.png", "corrupt PNG data")):
        with pytest.raises(ValueError, match=f"{name}: {reason}"):
            load_images([good[0], str(tmp_path / name)], CONFIG)
    bad = [str(tmp_path / name) for name in ("text.png", "empty.jpg", "cut.png")]
    loaded, kept, skipped = load_images([bad[0], good[0], bad[1], bad[2]], CONFIG, on_error="skip")
    assert kept == [1] and loaded.shape == (1, 32, 32, 3)
    assert [path for path, _ in skipped] == bad and skipped[1][1] == "empty file"


def test_the_format_check_names_the_input_and_the_rows():
    png = tf.io.encode_png(np.zeros((2, 2, 3), "uint8")).numpy()
    jpeg = tf.io.encode_jpeg(np.zeros((2, 2, 3), "uint8")).numpy()
    assert (image_format(png), image_format(jpeg), image_format(b"GIF89a"), image_format(b"")) == ("PNG", "JPEG",
                                                                                                 None, None)
    from keras_transformer.export.signature_spec import checked

    check = tf.function(lambda x: checked({"x": x}, [format_check(x, "image_bytes")])["x"], autograph=False)
    check(tf.constant([png, jpeg]))
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        check(tf.constant([png, b"", jpeg, b"GIF89a..."]))
    message = caught.value.message
    assert "image_bytes must hold JPEG or PNG images (encoded file bytes); rows that are not:" in message
    assert "[1 3]" in message and "their lengths in bytes:" in message and "[0 9]" in message
