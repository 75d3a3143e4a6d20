"""Image signatures: encoded JPEG / PNG bytes in, decoding and preprocessing inside the graph.

- `classify_image` (ViTImageClassifier): input `image_bytes`, a (batch,)
  string tensor of whole JPEG or PNG files (the `_bytes` suffix is TF
  Serving's name for binary strings: REST clients send `{"b64": "..."}`).
  Each image is decoded (first frame; grayscale and alpha converted to the
  model's channels) with `keras_transformer.images.decode_image`, resized
  to the model's `image_size` and normalised by `preprocess_images`, the
  code training runs, so any size is accepted. Outputs as BERT `classify`:
  `probabilities` (batch, num_classes) float32, `label_id` (batch,) int32,
  `label` (batch,) string (class names from the run's labels, else "0",
  "1", ...). A row that is not JPEG or PNG data (an empty string included)
  is rejected before decoding: INVALID_ARGUMENT naming `image_bytes` and the
  rows; data that starts like an image but is corrupt gets the decoder's
  INVALID_ARGUMENT.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.export.model_signatures import model_config
from keras_transformer.export.signature_spec import Signature, as_numpy, checked, class_names, class_outputs
from keras_transformer.images.decoding import FORMATS, decode_image, format_check
from keras_transformer.images.synthetic import draw_image
from keras_transformer.models.vit.preprocessing import preprocess_images

IMAGE_INPUT = "image_bytes"


def images_from_bytes(image_bytes, config):
    """(batch,) encoded images -> (batch, image_size, image_size, channels) float32 model inputs, checked."""
    image_bytes = checked({IMAGE_INPUT: image_bytes}, [format_check(image_bytes, IMAGE_INPUT)])[IMAGE_INPUT]
    size, channels = config.image_size, config.num_channels

    def one(data):
        return preprocess_images(decode_image(data, channels)[None], config)[0]

    return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec((size, size, channels), tf.float32))


def sample_images(config):
    """Two encoded images for warm-up, README and verification: a PNG of the model's size and a
    smaller, non-square JPEG (it exercises the resize)."""
    size, channels = config.image_size, config.num_channels
    with tf.init_scope():
        square = tf.io.encode_png(draw_image("circle", 0, size, channels)).numpy()
        other = draw_image("cross", 1, size + size // 2, channels)[: size * 3 // 4]
        wide = tf.io.encode_jpeg(other, quality=90).numpy()
    return np.array([square, wide], dtype=object)


def classify_image(model, labels=None):
    """The `classify_image` signature of a ViTImageClassifier (see the module docstring)."""
    config = model_config(model)
    names = class_names(labels, model.num_classes)
    spec = {IMAGE_INPUT: tf.TensorSpec([None], tf.string, name=IMAGE_INPUT)}

    def preprocess(image_bytes):
        return images_from_bytes(image_bytes, config)

    def postprocess(images):
        return class_outputs(model({"images": images}, training=False)["logits"], names)

    traced_preprocess = tf.function(preprocess, input_signature=[spec[IMAGE_INPUT]], autograph=False)

    def reference(sample):
        # The same decoding graph, then the Keras model eagerly.
        return as_numpy(postprocess(traced_preprocess(tf.constant(sample[IMAGE_INPUT]))))

    return Signature(
        "classify_image", spec, lambda inputs: postprocess(preprocess(inputs[IMAGE_INPUT])),
        f"{IMAGE_INPUT}: {' or '.join(FORMATS)} file bytes (REST: {{\"b64\": ...}}), any size -> probabilities "
        f"over {model.num_classes} classes, label_id, label ({names[:10]}). Each image is decoded to "
        f"{config.num_channels} channels, resized to {config.image_size}x{config.image_size} (bilinear, "
        f"antialiased) and normalised with mean {list(config.image_mean)} and std {list(config.image_std)}, as "
        f"in training; other data is rejected (INVALID_ARGUMENT).",
        {IMAGE_INPUT: sample_images(config)}, reference,
    )
