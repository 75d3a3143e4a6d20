"""Padding layout helpers of the decoding core: left_align / right_align / shift_rows."""

import numpy as np
from keras import ops

from keras_transformer.generation import decoding


def _np(pair):
    return tuple(ops.convert_to_numpy(x) for x in pair)


def test_right_and_left_padded_rows_meet_at_the_end_and_come_back():
    ids = np.array([[5, 6, 7, 0], [8, 9, 0, 0], [1, 2, 3, 4], [0, 0, 3, 2]], "int32")
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1]], bool)
    left, left_mask = _np(decoding.left_align(ids, mask))
    np.testing.assert_array_equal(left, [[0, 5, 6, 7], [0, 0, 8, 9], [1, 2, 3, 4], [0, 0, 3, 2]])
    np.testing.assert_array_equal(left_mask, [[0, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]])
    right, right_mask = _np(decoding.right_align(left, left_mask))
    np.testing.assert_array_equal(right, [[5, 6, 7, 0], [8, 9, 0, 0], [1, 2, 3, 4], [3, 2, 0, 0]])
    np.testing.assert_array_equal(right_mask, right != 0)


def test_shift_rows_fills_vacated_columns_with_invalid_zeros():
    ids = np.arange(1, 9, dtype="int32").reshape(2, 4)
    tokens, valid = _np(decoding.shift_rows(ids, np.ones_like(ids, bool), np.array([2, -1])))
    np.testing.assert_array_equal(tokens, [[3, 4, 0, 0], [0, 5, 6, 7]])
    np.testing.assert_array_equal(valid, tokens != 0)
