"""The built-in image set: procedural shapes and textures, drawn deterministically (NumPy only).

Seven classes, each drawn with a random foreground and background colour (at
least a minimum contrast apart), random size and position, a random
brightness gradient and Gaussian pixel noise, so neither the mean colour nor
any single pixel tells the classes apart: a model has to see the shape.

    circle, cross, square, triangle       a filled shape somewhere in the image
    checkerboard, horizontal_stripes,     a texture over the whole image
    vertical_stripes                      (random period and phase)

Every class is closed under left-right flips, so `random_flip` augmentation
keeps labels right. Image `i` of a class depends only on (seed, class, i):
the same call gives the same pixels on every machine.
"""

import hashlib

import numpy as np

CLASS_NAMES = ("checkerboard", "circle", "cross", "horizontal_stripes", "square", "triangle", "vertical_stripes")
MIN_CONTRAST = 90.0  # Euclidean RGB distance between foreground and background, in [0, 255] units
NOISE_STD = 12.0


def _rng(seed, name, index):
    digest = hashlib.sha256(f"{seed}/{name}/{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _colours(rng, channels):
    while True:
        foreground, background = rng.uniform(0, 255, (2, channels))
        if np.linalg.norm(foreground - background) >= MIN_CONTRAST * np.sqrt(channels / 3):
            return foreground, background


def _mask(name, rng, size):
    """(size, size) bool: where the foreground colour goes."""
    y, x = np.mgrid[0:size, 0:size].astype("float64") + 0.5
    if name in ("horizontal_stripes", "vertical_stripes", "checkerboard"):
        period = rng.uniform(0.12, 0.3) * size
        phase_y, phase_x = rng.uniform(0, period, 2)
        rows = ((y + phase_y) // (period / 2)) % 2 == 0
        columns = ((x + phase_x) // (period / 2)) % 2 == 0
        return {"horizontal_stripes": rows, "vertical_stripes": columns, "checkerboard": rows ^ columns}[name]
    extent = rng.uniform(0.35, 0.65) * size  # the shape's bounding box side
    cy, cx = rng.uniform(extent / 2, size - extent / 2, 2)  # fully inside the image
    dy, dx = y - cy, x - cx
    half = extent / 2
    if name == "circle":
        return dy**2 + dx**2 <= half**2
    if name == "square":
        return (np.abs(dy) <= half) & (np.abs(dx) <= half)
    if name == "cross":
        arm = rng.uniform(0.12, 0.22) * extent
        return ((np.abs(dy) <= arm) & (np.abs(dx) <= half)) | ((np.abs(dx) <= arm) & (np.abs(dy) <= half))
    if name == "triangle":  # isosceles, apex up or down
        apex_up = rng.random() < 0.5
        depth = (dy + half) if apex_up else (half - dy)  # 0 at the apex, extent at the base
        return (depth >= 0) & (depth <= extent) & (np.abs(dx) <= depth / 2)
    raise ValueError(f"unknown class {name!r}; the built-in classes are {list(CLASS_NAMES)}")


def draw_image(name, index, size=32, channels=3, seed=0):
    """Image `index` of class `name`: (size, size, channels) uint8."""
    rng = _rng(seed, name, index)
    foreground, background = _colours(rng, channels)
    mask = _mask(name, rng, size)[..., None]
    image = np.where(mask, foreground, background)
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    image = image + rng.uniform(0, 40) * (np.cos(angle) * x + np.sin(angle) * y)[..., None]  # brightness gradient
    image = image + rng.normal(0, NOISE_STD, image.shape)
    return np.clip(np.rint(image), 0, 255).astype("uint8")


def synthetic_images(per_class=400, size=32, channels=3, seed=0, class_names=CLASS_NAMES):
    """The built-in set: (names, images, label ids).

    names are "class/index" (for hash splits and messages), images a
    (count, size, size, channels) uint8 array, label ids int32 indices into
    `class_names`; classes interleaved: circle 0, cross 0, ..., circle 1, ...
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer; received per_class={per_class!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8; received size={size!r}")
    names, images, labels = [], [], []
    for index in range(per_class):
        for label, name in enumerate(class_names):
            names.append(f"{name}/{index:05d}")
            images.append(draw_image(name, index, size, channels, seed))
            labels.append(label)
    return names, np.stack(images), np.array(labels, "int32")
