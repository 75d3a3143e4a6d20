"""Private argument and run-time checks shared by the layers.

Every layer validates its constructor arguments with the `check_*` helpers
below, so one kind of mistake gets one message everywhere:
`<name> must be a positive integer; received <name>=<value>`.

Checks that need tensor *values* (not just shapes) can only run when the
tensor is concrete: an eager call, not a trace inside `tf.function`, `jax.jit`
or Keras' symbolic shape inference. `is_concrete` tells the two apart for the
active backend, importing that backend's module lazily so that no other
framework gets imported.
"""

import numbers
import warnings

import keras
import numpy as np


def _fail(name, requirement, value):
    raise ValueError(f"{name} must be {requirement}; received {name}={value!r}")


def is_int(value):
    """True for Python/NumPy integers (bools excluded)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value, name):
    if not is_int(value):
        _fail(name, "an integer", value)


def check_positive_int(value, name, allow_none=False):
    """`value` must be an integer > 0 (or None when `allow_none`)."""
    if allow_none and value is None:
        return
    if not is_int(value) or value <= 0:
        _fail(name, "None or a positive integer" if allow_none else "a positive integer", value)


def check_positive_number(value, name):
    """`value` must be a real number > 0 (int or float, bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
        _fail(name, "a positive number", value)


def check_rate(value, name="dropout"):
    """`value` must be a real number in [0, 1) (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        _fail(name, "in [0, 1)", value)


def check_bool(value, name):
    if not isinstance(value, bool):
        _fail(name, "a bool", value)


def check_one_of(value, name, choices):
    if value not in choices:
        _fail(name, f"one of {tuple(choices)}", value)


def check_start_index(start_index):
    """A Python-int `start_index` must be >= 0 (tensors, maybe traced, pass)."""
    if is_int(start_index) and start_index < 0:
        _fail("start_index", "non-negative", start_index)


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
    with warnings.catch_warnings():
        # NumPy 2 deprecates `__array__` without `copy=`, as some backend tensors still define it.
        warnings.simplefilter("ignore", DeprecationWarning)
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
