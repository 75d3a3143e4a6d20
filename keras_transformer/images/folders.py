"""The user's images: one sub-folder per class, the layout `keras.utils.image_dataset_from_directory` reads.

    data/
      cat/  a.jpg  b.png  more/c.jpeg        class "cat" (sub-folders of a class belong to it)
      dog/  d.jpg ...                        class "dog"

    paths, label_ids, class_names = list_image_folder("data")
    images, kept, skipped = load_images(paths, vit_config)

Class names are the sub-folder names, sorted, unless `class_names` fixes
them and their order. Files with a `.jpg`, `.jpeg` or `.png` suffix (any
case) are images; other files, hidden files and files beside the class
folders are ignored, as Keras ignores them. Every image is decoded when
loaded, so a file that is empty, not a JPEG or PNG, or corrupt is reported
by name before training starts (or skipped and listed, `on_error="skip"`).
Loaded images are model inputs held in memory: resized to the model's
`image_size` and normalised (`preprocess_images`), float32.
"""

import logging
import os

import numpy as np
import tensorflow as tf

from keras_transformer.images.decoding import FORMATS, decode_image, image_format
from keras_transformer.models.vit.preprocessing import preprocess_images

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _visible(names):
    return sorted(name for name in names if not name.startswith("."))


def _class_files(folder):
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = _visible(dirs)
        found.extend(os.path.join(root, name) for name in _visible(files) if name.lower().endswith(IMAGE_SUFFIXES))
    return sorted(found)


def list_image_folder(folder, class_names=None, all_classes=True):
    """(paths, label ids, class names) of the images under `folder` (see the module docstring).

    Args:
        class_names: the classes in id order; default: the sorted sub-folder names.
        all_classes: every class needs a sub-folder with images (a training
            folder); False accepts a subset of `class_names` (a validation folder).

    Raises:
        ValueError: naming the folder, when it is missing, has no class
        sub-folders, a class folder without images, or sub-folders that are
        not among `class_names`.
    """
    if not os.path.isdir(folder):
        raise ValueError(f"image folder {folder!r} does not exist or is not a folder")
    folders = [name for name in _visible(os.listdir(folder)) if os.path.isdir(os.path.join(folder, name))]
    if not folders:
        raise ValueError(f"image folder {folder!r} has no sub-folders: put each class's images in a sub-folder "
                         f"named after the class ({folder}/CLASS/IMAGE.jpg)")
    if class_names is None:
        class_names = folders
    class_names = [str(name) for name in class_names]
    unknown = sorted(set(folders) - set(class_names))
    missing = sorted(set(class_names) - set(folders)) if all_classes else []
    if unknown or missing:
        raise ValueError(f"image folder {folder!r}: its class sub-folders {folders} do not match the classes "
                         f"{class_names}" + (f"; not a class: {unknown}" if unknown else "")
                         + (f"; no folder: {missing}" if missing else ""))
    paths, label_ids = [], []
    for name in folders:
        files = _class_files(os.path.join(folder, name))
        if not files:
            raise ValueError(f"class folder {os.path.join(folder, name)!r} holds no images "
                             f"({', '.join(IMAGE_SUFFIXES)})")
        paths.extend(files)
        label_ids.extend([class_names.index(name)] * len(files))
    return paths, np.array(label_ids, "int32"), class_names


def _read_image(path, channels):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ValueError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not data:
        raise ValueError(f"{path}: empty file")
    if image_format(data) is None:
        raise ValueError(f"{path}: not a {' or '.join(FORMATS)} image (it starts with {data[:8]!r})")
    try:
        return decode_image(data, channels)
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(f"{path}: corrupt {image_format(data)} data ({error.message.strip()})") from None


def load_images(paths, config, on_error="raise"):
    """Decodes, resizes and normalises the images at `paths` for a ViT of `config`.

    Returns:
        (images, kept, skipped): (count, image_size, image_size, channels)
        float32 model inputs; the indices into `paths` that were loaded;
        `(path, reason)` for each file skipped with `on_error="skip"`.
    Raises:
        ValueError: naming the first bad file, with `on_error="raise"`.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f'on_error must be "raise" or "skip"; received on_error={on_error!r}')
    size, channels = config.image_size, config.num_channels
    images = np.zeros((len(paths), size, size, channels), "float32")
    kept, skipped = [], []
    for index, path in enumerate(paths):
        try:
            image = _read_image(path, channels)
        except ValueError as error:
            if on_error == "raise":
                raise
            logger.warning("skipping %s", error)
            skipped.append((path, str(error).removeprefix(f"{path}: ")))
            continue
        images[len(kept)] = np.asarray(preprocess_images(image[None], config))[0]
        kept.append(index)
    return images[: len(kept)], kept, skipped
