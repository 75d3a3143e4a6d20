"""Image patches as tokens: a strided convolution, a class token, learned positions (ViT)."""

import keras
from keras import ops

from keras_transformer.layers._checks import check_positive_int
from keras_transformer.registration import register

_CUBIC_A = -0.75  # the cubic convolution constant of PyTorch's (and so transformers') bicubic


def bicubic_matrix(input_size, output_size):
    """(output_size, input_size) float32 weights of 1-D bicubic resampling.

    Torch's `interpolate(mode="bicubic", align_corners=False)`: source
    coordinate `(i + 0.5) * input_size / output_size - 0.5`, four taps with
    a = -0.75, taps beyond the border clamped to the edge row. Equal sizes
    give the identity exactly. `output_size` may be a traced scalar.
    """
    a = _CUBIC_A
    destination = ops.cast(ops.arange(output_size), "float32")
    scale = ops.cast(input_size, "float32") / ops.cast(output_size, "float32")
    source = (destination + 0.5) * scale - 0.5
    base = ops.floor(source)
    t = source - base

    def near(x):  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    taps = (far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t))  # offsets -1, 0, 1, 2
    base = ops.cast(base, "int32")
    matrix = 0.0
    for offset, weight in zip((-1, 0, 1, 2), taps):
        index = ops.clip(base + offset, 0, input_size - 1)
        matrix = matrix + ops.one_hot(index, input_size, dtype="float32") * weight[:, None]
    return matrix


@register
class PatchEmbedding(keras.layers.Layer):
    """Cuts images into patches and embeds each one, as the Vision Transformer does.

    A `patch_size` x `patch_size` convolution with stride `patch_size` turns
    (batch, height, width, channels) images into a (height // patch_size) x
    (width // patch_size) grid of `hidden_dim` vectors, flattened row by row
    into tokens; an optional learned class token is put first; learned
    position embeddings (one per grid cell of an `image_size` image, plus one
    for the class token) are added.

    Another image size: the grid of position embeddings is resampled
    bicubically to the new grid (transformers' `interpolate_pos_encoding`,
    bit for bit up to float rounding); the class token's position is kept.
    Remainder pixels (sizes not divisible by `patch_size`) are dropped, as a
    valid convolution does.

    Masking: none; every patch is a real token.

    Weights: `projection` (a Conv2D, kernel (patch, patch, channels,
    hidden_dim)), `class_token` (1, 1, hidden_dim) when used,
    `position_embeddings` (num_positions, hidden_dim).

    Args:
        image_size: int, the (square) image side the position table is made for.
        patch_size: int, side of a patch; must not exceed `image_size`.
        hidden_dim: int, embedding width.
        num_channels: int, image channels (3 for RGB).
        use_class_token: prepend a learned class token.
        kernel_initializer: of the projection.
        embeddings_initializer: of the class token and position table.

    Call: `layer(images)` with images (batch, height, width, num_channels)
    -> (batch, tokens, hidden_dim), tokens = grid cells (+ 1).

    Example:
    >>> layer = PatchEmbedding(image_size=8, patch_size=4, hidden_dim=6)
    >>> layer(keras.ops.ones((2, 8, 8, 3))).shape      # 4 patches + class token
    (2, 5, 6)
    >>> layer(keras.ops.ones((2, 12, 8, 3))).shape     # a 3 x 2 grid, positions resampled
    (2, 7, 6)
    """

    def __init__(
        self,
        image_size,
        patch_size,
        hidden_dim,
        num_channels=3,
        use_class_token=True,
        kernel_initializer="glorot_uniform",
        embeddings_initializer="truncated_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("image_size", image_size),
            ("patch_size", patch_size),
            ("hidden_dim", hidden_dim),
            ("num_channels", num_channels),
        ):
            check_positive_int(value, name)
        if patch_size > image_size:
            raise ValueError(
                "`patch_size` must not exceed `image_size`; received "
                f"image_size={image_size}, patch_size={patch_size}"
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.num_channels = num_channels
        self.use_class_token = bool(use_class_token)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.grid_size = image_size // patch_size
        self.num_positions = self.grid_size**2 + int(self.use_class_token)
        self.projection = keras.layers.Conv2D(
            hidden_dim,
            patch_size,
            strides=patch_size,
            padding="valid",
            data_format="channels_last",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="projection",
        )

    def build(self, images_shape):
        if len(images_shape) != 4 or images_shape[-1] != self.num_channels:
            raise ValueError(
                "`images` must have shape (batch, height, width, "
                f"{self.num_channels}) (channels last); received shape {tuple(images_shape)}"
            )
        self.projection.build(images_shape)
        clone = lambda: keras.initializers.get(  # noqa: E731  (fresh object per weight)
            keras.initializers.serialize(self.embeddings_initializer)
        )
        self.class_token = None
        if self.use_class_token:
            self.class_token = self.add_weight(
                shape=(1, 1, self.hidden_dim), initializer=clone(), name="class_token"
            )
        self.position_embeddings = self.add_weight(
            shape=(self.num_positions, self.hidden_dim), initializer=clone(), name="position_embeddings"
        )
        self.built = True

    def call(self, images):
        self._check_size(images.shape)
        patches = self.projection(images)  # (batch, grid_h, grid_w, hidden)
        shape = ops.shape(patches)
        batch, grid_h, grid_w = shape[0], shape[1], shape[2]
        x = ops.reshape(patches, (batch, grid_h * grid_w, self.hidden_dim))  # row-major cells
        positions = self.grid_positions(grid_h, grid_w)  # (grid_h * grid_w, hidden)
        if self.use_class_token:
            token = ops.broadcast_to(
                ops.cast(self.class_token, x.dtype), (batch, 1, self.hidden_dim)
            )
            x = ops.concatenate([token, x], axis=1)
            positions = ops.concatenate(
                [ops.cast(self.position_embeddings[:1], positions.dtype), positions], axis=0
            )
        return x + ops.cast(positions, x.dtype)[None]

    def grid_positions(self, grid_h, grid_w):
        """Position embeddings of a grid_h x grid_w patch grid: the table, bicubically resampled."""
        table = ops.cast(self.position_embeddings[int(self.use_class_token):], "float32")
        grid = ops.reshape(table, (self.grid_size, self.grid_size, self.hidden_dim))
        rows = bicubic_matrix(self.grid_size, grid_h)  # (grid_h, grid_size)
        cols = bicubic_matrix(self.grid_size, grid_w)  # (grid_w, grid_size)
        resized = ops.einsum("ai,ijd,bj->abd", rows, grid, cols)  # (grid_h, grid_w, hidden)
        return ops.cast(ops.reshape(resized, (-1, self.hidden_dim)), self.compute_dtype)

    def _check_size(self, shape):
        for axis, name in ((1, "height"), (2, "width")):
            if shape[axis] is not None and shape[axis] < self.patch_size:
                raise ValueError(
                    f"image {name} {shape[axis]} is smaller than patch_size={self.patch_size}; "
                    f"received images of shape {tuple(shape)}"
                )

    def compute_output_shape(self, images_shape):
        h, w = images_shape[1], images_shape[2]
        tokens = None
        if h is not None and w is not None:
            tokens = (h // self.patch_size) * (w // self.patch_size) + int(self.use_class_token)
        return (images_shape[0], tokens, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "num_channels": self.num_channels,
                "use_class_token": self.use_class_token,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config
