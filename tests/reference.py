"""Independent NumPy float64 re-derivations of every formula the layers implement.

Nothing here imports Keras or the package: each function is written from the
published formula, so agreement with a layer is evidence, not tautology.
"""

import math

import numpy as np


def softmax(x, axis=-1):
    x = np.asarray(x, dtype="float64")
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


# --- attention ---

# --- positions ---

# --- embeddings, feed-forward, norms ---
