"""Encoded images (JPEG, PNG) to model inputs: one path for training files and served requests.

    image = decode_image(data, channels=3)               # (height, width, 3) uint8, any size
    x = preprocess_images(image[None], config)           # the ViT's (1, size, size, 3) input

`decode_image` is TensorFlow (`tf.io.decode_image`, first frame only,
grayscale and alpha converted to `channels`); it runs eagerly on training
files and as graph ops inside the exported `classify_image` signature, and
`keras_transformer.models.vit.preprocess_images` resizes and normalises in
both, so a served image gets exactly the pixels training saw.

`image_format(data)` names the format from the first bytes (Python);
`format_check(batch, name)` is the same test as a graph assertion that names
the input and the rows that are not JPEG or PNG (empty strings included), so
a server answers INVALID_ARGUMENT with that message instead of a decoder
error.
"""

import tensorflow as tf

# Format -> the bytes every file of it starts with.
SIGNATURES = {"JPEG": b"\xff\xd8\xff", "PNG": b"\x89PNG\r\n\x1a\n"}
FORMATS = tuple(SIGNATURES)


def image_format(data):
    """"JPEG" or "PNG" for encoded image bytes of that format, else None."""
    return next((name for name, start in SIGNATURES.items() if data.startswith(start)), None)


def format_check(images, name):
    """An assertion that every string of the (batch,) tensor `images` starts like a JPEG or PNG file."""
    known = tf.zeros_like(images, dtype=tf.bool)
    for start in SIGNATURES.values():
        known |= tf.equal(tf.strings.substr(images, 0, len(start)), start)
    bad = tf.where(~known)[:, 0]
    return tf.debugging.Assert(
        tf.reduce_all(known),
        [f"{name} must hold {' or '.join(FORMATS)} images (encoded file bytes); rows that are not:", bad,
         "their lengths in bytes:", tf.strings.length(tf.gather(images, bad))],
        summarize=16,
    )


def decode_image(data, channels=3):
    """One encoded JPEG / PNG (a scalar string) -> (height, width, channels) uint8.

    Callers check the format first (`image_format` / `format_check`);
    data that starts right but is corrupt gets the decoder's own error.
    """
    image = tf.io.decode_image(data, channels=channels, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, channels])
    return image
