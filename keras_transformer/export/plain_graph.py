"""Keeps XLA-only ops out of exported graphs.

Keras' TensorFlow backend implements `keras.ops.slice_update` with
`XlaDynamicUpdateSlice` (tensorflow.compiler.tf2xla). Outside a
`jit_compile=True` function TensorFlow runs that op through XLA's
"compile on demand" kernel, which the stock `tensorflow_model_server` GPU
build cannot do ("Could not find compiler for platform CUDA",
tensorflow/serving#2217: a `generate` function's `while/XlaDynamicUpdateSlice`).
The attention cache of our decoding loops uses `slice_update`, so while
export traces its functions it swaps that one backend helper for
`TensorStridedSliceUpdate`, a core op with CPU and GPU kernels and the same
result (start indices clamped so the update fits, as XLA does).
"""

import contextlib

import tensorflow as tf


def plain_dynamic_update_slice(inputs, updates, start_indices, name=None):
    """`inputs` with `updates` written at `start_indices`, with core TensorFlow ops only.

    Args:
        inputs: tensor of rank r.
        updates: tensor of rank r, no larger than `inputs` on any axis.
        start_indices: r ints or scalar int tensors (may be traced).
    """
    del name
    inputs = tf.convert_to_tensor(inputs)
    updates = tf.cast(tf.convert_to_tensor(updates), inputs.dtype)
    start = tf.stack([tf.cast(index, tf.int32) for index in start_indices])  # (rank,)
    room = tf.shape(inputs) - tf.shape(updates)  # largest valid start per axis
    start = tf.clip_by_value(start, tf.zeros_like(room), room)
    end = start + tf.shape(updates)
    return tf.raw_ops.TensorStridedSliceUpdate(input=inputs, begin=start, end=end, strides=tf.ones_like(start), value=updates)


@contextlib.contextmanager
def plain_graph_ops():
    """While active, `keras.ops.slice_update` traces to core ops instead of an XLA op."""
    from keras.src.backend.tensorflow import core

    original = core.dynamic_update_slice
    core.dynamic_update_slice = plain_dynamic_update_slice
    try:
        yield
    finally:
        core.dynamic_update_slice = original
