import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text.span_corruption import noise_counts, random_spans_noise_mask, span_corruption_lengths


@pytest.mark.parametrize("density, mean_span", [(0.15, 3.0), (0.3, 2.0)])
def test_noise_mask_counts_match_the_planned_lengths(density, mean_span):
    # Lengths are planned in Python (span_corruption_lengths); the graph must round the same way,
    # or an encoder input could outgrow its sequence and be cut.
    lengths = np.arange(2, 400)
    mask = random_spans_noise_mask(tf.constant(lengths), 400, tf.constant([3, 4]), density, mean_span).numpy()
    expected = np.array([noise_counts(int(n), density, mean_span) for n in lengths])
    np.testing.assert_array_equal(mask.sum(axis=1), expected[:, 0])
    span_starts = mask[:, 1:] & ~mask[:, :-1]
    np.testing.assert_array_equal(span_starts.sum(axis=1), expected[:, 1])
    assert not mask[:, 0].any()  # a row starts with non-noise
    assert mask[np.arange(len(lengths)), lengths - 1].all()  # and ends with noise
    assert not (mask & (np.arange(400)[None] >= lengths[:, None])).any()  # padding is never noise


def test_span_corruption_lengths_match_t5():
    assert span_corruption_lengths(512) == (568, 114)  # T5's random_spans_helper for 512
    assert span_corruption_lengths(128) == (141, 29)
    with pytest.raises(ValueError, match="inputs_length=2"):
        span_corruption_lengths(2)
