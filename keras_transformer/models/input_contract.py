"""The input contract every backbone and task model enforces (one message per kind of mistake).

Three mistakes get the same ValueError in every family:
  * a missing input key (or inputs that are not a dict);
  * a sequence longer than the config's `max_sequence_length` (checked on
    static shapes, so it also fires when a functional graph is built);
  * an id outside its table (token ids against `vocabulary_size`, BERT's
    segment ids against `num_segments`); values are only known in eager
    calls, so this one is skipped inside `tf.function` / `jax.jit` traces.
"""

import keras
import numpy as np

from keras_transformer.layers._checks import is_concrete


def check_keys(inputs, keys, owner, exact=False):
    """Raises a ValueError unless `inputs` is a dict holding every name in `keys` (only those if `exact`)."""
    if not isinstance(inputs, dict):
        raise ValueError(
            f"{owner} takes a dict with keys {list(keys)}; received {type(inputs).__name__}"
        )
    missing = [key for key in keys if key not in inputs]
    unexpected = sorted(set(inputs) - set(keys)) if exact else []
    if missing or unexpected:
        problems = ([f"lack {missing}"] if missing else []) + ([f"unexpected {unexpected}"] if unexpected else [])
        raise ValueError(
            f"{owner} inputs {', '.join(problems)}; expected keys {list(keys)}, received keys {sorted(inputs)}"
        )


def check_length(inputs, keys, max_sequence_length, owner):
    """Raises a ValueError when a (static) length of `inputs[key]` exceeds the limit."""
    for key in keys:
        if key not in inputs:
            continue
        shape = tuple(inputs[key].shape)
        length = shape[-1] if shape else None
        if length is not None and length > max_sequence_length:
            raise ValueError(
                f"{owner}: {key} has length {length}, which exceeds max_sequence_length="
                f"{max_sequence_length}; truncate the inputs (received shape {shape})"
            )


def check_id_range(inputs, limits, owner):
    """Raises a ValueError when a concrete id lies outside [0, limit).

    `limits` maps an input key to `(config field name, limit)`.
    """
    for key, (field, limit) in limits.items():
        ids = inputs.get(key)
        if ids is None or not is_concrete(ids):
            continue
        values = np.asarray(keras.ops.convert_to_numpy(ids))
        bad = (values < 0) | (values >= limit)
        if values.size and np.any(bad):
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{owner}: {key} holds id {values[index]} at index {index}, outside "
                f"[0, {limit}) for {field}={limit} ({int(np.sum(bad))} id(s) out of range)"
            )
