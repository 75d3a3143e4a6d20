"""Streaming signatures: generate_start + generate_next give exactly what `generate` gives, a few tokens a call."""

import numpy as np
import pytest
import tensorflow as tf

from tests.export.helpers import text_array


def _inputs(text_name, texts, max_new_tokens, temperature, seed):
    n = len(texts)
    return {text_name: text_array(texts), "max_new_tokens": np.asarray(max_new_tokens, "int32"),
            "temperature": np.full([n], temperature, "float32"), "top_k": np.zeros([n], "int32"),
            "top_p": np.full([n], 0.95, "float32"), "seed": np.asarray(seed, "int64")}


def _call(signature, inputs):
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def _stream(signatures, inputs, steps):
    state = _call(signatures["generate_start"], inputs)
    windows, calls = [], 0
    while True:
        out = _call(signatures["generate_next"], dict(state, steps=np.array([steps], "int32")))
        calls += 1
        assert out["token_ids"].shape[1] <= steps
        windows.append(out)
        state = {k: v for k, v in out.items() if k.startswith("state_")}
        if out["done"].all():
            return windows, calls


def _new_tokens(served, row, start):
    mask = served["padding_mask"][row].astype(bool)
    return served["token_ids"][row][mask][start:]


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_streamed_tokens_equal_generate(family, gpt_export, t5_export):
    import tensorflow_text  # noqa: F401

    _, _, path = gpt_export if family == "gpt" else t5_export
    signatures = tf.saved_model.load(path).signatures
    text_name = "prompt" if family == "gpt" else "text"
    inputs = _inputs(text_name, ["def main(", "x", "The standard library"], [9, 4, 7], 0.8, [1, 2, 3])
    whole = _call(signatures["generate"], inputs)
    windows, calls = _stream(signatures, inputs, steps=3)
    assert calls >= 3  # nine tokens three at a time
    for row in range(3):
        starts = whole["prompt_length"][row] if family == "gpt" else 1
        expected = _new_tokens(whole, row, starts)
        streamed = np.concatenate([w["token_ids"][row][w["padding_mask"][row].astype(bool)] for w in windows])
        np.testing.assert_array_equal(streamed, expected)
        log_probs = np.concatenate([w["log_probs"][row][w["padding_mask"][row].astype(bool)] for w in windows])
        np.testing.assert_allclose(log_probs, whole["log_probs"][row][: len(expected)], atol=1e-5)
        assert windows[-1]["generated_text"][row] == whole["generated_text"][row]
        assert np.all(log_probs <= 0)
    # Each token's own text, joined, is the row's text (the byte tokenizer and SentencePiece pieces both join).
    if family == "gpt":
        joined = b"".join(t for w in windows for t, m in zip(w["token_texts"][0], w["padding_mask"][0]) if m)
        assert joined == whole["generated_text"][0] or joined.startswith(whole["generated_text"][0])


def test_steps_must_be_one_positive_integer(gpt_export):
    import tensorflow_text  # noqa: F401

    signatures = tf.saved_model.load(gpt_export[2]).signatures
    state = _call(signatures["generate_start"], _inputs("prompt", ["a"], [2], 0.0, [0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="steps must be one integer >= 1"):
        _call(signatures["generate_next"], dict(state, steps=np.array([0], "int32")))
