"""RowChooser: per-row tensor settings, as exported `generate` signatures pass them (every backend)."""

import numpy as np
from keras import ops

from keras_transformer.generation.choosers import RowChooser, filtered_scores


def _kept(logits, temperature=1.0, top_k=0, top_p=1.0):
    rows = len(logits)
    filtered = filtered_scores(ops.convert_to_tensor(logits, "float32"), ops.full((rows,), temperature),
                               ops.full((rows,), top_k, "int32"), ops.full((rows,), top_p))
    return [sorted(np.flatnonzero(np.isfinite(row)).tolist()) for row in ops.convert_to_numpy(filtered)]


def _chooser(temperature, seed, top_k=0, top_p=1.0):
    rows = len(seed)
    return RowChooser(ops.convert_to_tensor(temperature, "float32"), ops.full((rows,), top_k, "int32"),
                      ops.full((rows,), top_p), ops.convert_to_tensor(seed, "int32"))


def test_top_k_and_top_p_keep_the_likeliest_tokens():
    logits = np.log([[0.5, 0.05, 0.3, 0.15]])  # probabilities 0.5, 0.05, 0.3, 0.15
    assert _kept(logits) == [[0, 1, 2, 3]]
    assert _kept(logits, top_k=2) == [[0, 2]]
    assert _kept(logits, top_p=0.5) == [[0]]  # 0.5 alone reaches p
    assert _kept(logits, top_p=0.6) == [[0, 2]]
    assert _kept(logits, top_p=0.9) == [[0, 2, 3]]
    assert _kept(logits, top_k=1) == [[0]]
    assert _kept(logits, top_p=1e-6) == [[0]]  # at least one token survives
    scaled = filtered_scores(ops.convert_to_tensor(logits, "float32"), ops.convert_to_tensor([2.0]),
                             ops.convert_to_tensor([0], "int32"), ops.convert_to_tensor([1.0]))
    np.testing.assert_allclose(ops.convert_to_numpy(scaled), logits / 2.0, rtol=1e-6)


def test_greedy_rows_seeded_draws_and_log_probs():
    logits = np.random.default_rng(0).normal(size=(4, 50)).astype("float32")
    chooser = _chooser([0.0, 1.0, 1.0, 1.0], [0, 5, 5, 6])
    tokens, log_probs = (ops.convert_to_numpy(x) for x in chooser(ops.convert_to_tensor(logits), 3))
    assert tokens[0] == np.argmax(logits[0])
    assert tokens[1] == tokens[2]  # same seed and step, same logits
    again, _ = chooser(ops.convert_to_tensor(logits), 3)
    np.testing.assert_array_equal(ops.convert_to_numpy(again), tokens)
    reference = logits - np.log(np.exp(logits.astype("float64")).sum(axis=1, keepdims=True))  # log-softmax
    np.testing.assert_allclose(log_probs, reference[np.arange(4), tokens], atol=1e-5)


def test_draws_follow_the_softmax():
    rows = 600
    logits = ops.convert_to_tensor(np.tile([[0.0, 1.0, 2.0]], (rows, 1)), "float32")
    tokens, _ = _chooser(np.ones(rows), np.arange(rows))(logits, 1)  # one row per seed
    frequencies = np.bincount(ops.convert_to_numpy(tokens), minlength=3) / rows
    expected = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(frequencies, expected, atol=0.06)
    # Temperature flattens the distribution: at 100 the three ids come out about equally often.
    hot, _ = _chooser(np.full(rows, 100.0), np.arange(rows))(logits, 1)
    np.testing.assert_allclose(np.bincount(ops.convert_to_numpy(hot), minlength=3) / rows, 1 / 3, atol=0.07)
