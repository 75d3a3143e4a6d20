"""Private run-time checks shared by the layers.

Checks that need tensor *values* (not just shapes) can only run when the
tensor is concrete: an eager call, not a trace inside `tf.function`, `jax.jit`
or Keras' symbolic shape inference. `is_concrete` tells the two apart for the
active backend, importing that backend's module lazily so that no other
framework gets imported.
"""

import keras
import numpy as np


def is_concrete(x):
    """True when `x` holds real values that may be read on the host.

    Per backend:
      * tensorflow: eager execution and `x` is not a graph (symbolic) tensor;
      * jax: `x` is not a `jax.core.Tracer` (jit, grad, vmap, eval_shape);
      * torch: not under `torch.compile` and not a "meta" tensor (which Keras
        uses for shape inference);
      * numpy: always.
    `keras.KerasTensor`s are never concrete; unknown backends are treated as
    not concrete, so value checks are skipped rather than failing.
    """
    if x is None or isinstance(x, keras.KerasTensor):
        return False
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly() and not tf.is_symbolic_tensor(x)
    if backend == "jax":
        import jax

        tracer = getattr(jax.core, "Tracer", None)
        if tracer is None:  # pragma: no cover - future JAX layouts
            from jax._src.core import Tracer as tracer
        return not isinstance(x, tracer)
    if backend == "torch":  # pragma: no cover - torch is not in the test environment
        import torch

        if torch.compiler.is_compiling():
            return False
        return not (isinstance(x, torch.Tensor) and x.device.type == "meta")
    return backend == "numpy"


def check_token_ids(ids, vocabulary_size, name):
    """Raises a ValueError if concrete `ids` hold a value outside [0, vocabulary_size).

    Does nothing for traced or symbolic `ids` (their values are unknown), so it
    is free inside compiled functions. `name` is the calling layer's name, used
    in the message.

    Why: JAX clamps out-of-range gathers silently (wrong embeddings, no error)
    and TensorFlow raises an obscure `InvalidArgumentError` from deep inside
    the gather kernel.
    """
    if not is_concrete(ids):
        return
    values = np.asarray(keras.ops.convert_to_numpy(ids))
    if values.size == 0:
        return
    bad = (values < 0) | (values >= vocabulary_size)
    if not np.any(bad):
        return
    position = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(
        f"Layer '{name}' received token id {values[position]} at index {position}, "
        f"outside the vocabulary: ids must lie in [0, {vocabulary_size}) for "
        f"vocabulary_size={vocabulary_size} ({int(np.sum(bad))} id(s) out of range)."
    )
