"""Images for the ViT family: the built-in image set, the user's class folders, JPEG/PNG decoding.

`import keras_transformer.images` imports NumPy only (the built-in set);
the names that need TensorFlow are loaded on first use, or import them
from their modules:

    from keras_transformer.images.synthetic import synthetic_images, CLASS_NAMES
    from keras_transformer.images.folders import list_image_folder, load_images
    from keras_transformer.images.decoding import decode_image, image_format, format_check

Model inputs are made by `keras_transformer.models.vit.preprocess_images`
(resize to `image_size`, normalise with the config's mean and std), the
one preprocessing that training and the exported `classify_image`
signature share.
"""

from keras_transformer._lazy import lazy_attributes

from keras_transformer.images.synthetic import CLASS_NAMES, draw_image, synthetic_images

# name -> module (under keras_transformer.images) that defines it; these import TensorFlow.
_LAZY = {
    "list_image_folder": "folders",
    "load_images": "folders",
    "IMAGE_SUFFIXES": "folders",
    "decode_image": "decoding",
    "image_format": "decoding",
    "format_check": "decoding",
}

__all__ = ["CLASS_NAMES", "draw_image", "synthetic_images", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
