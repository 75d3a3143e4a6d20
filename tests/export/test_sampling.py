"""In-graph sampling settings (per-row tensors) and the sentence-embedding signature, without a SavedModel."""

import numpy as np
import tensorflow as tf

from keras_transformer.export.sampling import filtered_logits, next_tokens
from tests.export.helpers import bert_packed


def _kept(logits, temperature=1.0, top_k=0, top_p=1.0):
    rows = len(logits)
    filtered = filtered_logits(tf.constant(logits, tf.float32), tf.fill([rows], temperature),
                               tf.fill([rows], top_k), tf.fill([rows], top_p))
    return [sorted(np.flatnonzero(np.isfinite(row)).tolist()) for row in filtered.numpy()]


def test_top_k_and_top_p_keep_the_likeliest_tokens():
    logits = np.log([[0.5, 0.05, 0.3, 0.15]])  # probabilities 0.5, 0.05, 0.3, 0.15
    assert _kept(logits) == [[0, 1, 2, 3]]
    assert _kept(logits, top_k=2) == [[0, 2]]
    assert _kept(logits, top_p=0.5) == [[0]]  # 0.5 alone reaches p
    assert _kept(logits, top_p=0.6) == [[0, 2]]
    assert _kept(logits, top_p=0.9) == [[0, 2, 3]]
    assert _kept(logits, top_k=1, top_p=1.0) == [[0]]
    assert _kept(logits, top_p=1e-6) == [[0]]  # at least one token survives
    scaled = filtered_logits(tf.constant(logits, tf.float32), tf.constant([2.0]), tf.constant([0]), tf.constant([1.0]))
    np.testing.assert_allclose(scaled.numpy(), logits / 2.0, rtol=1e-6)


def test_next_tokens_greedy_rows_and_seeded_draws():
    logits = tf.constant(np.random.default_rng(0).normal(size=(4, 50)), tf.float32)
    settings = {"temperature": tf.constant([0.0, 1.0, 1.0, 1.0]), "top_k": tf.constant([0, 0, 0, 0]),
                "top_p": tf.constant([1.0, 1.0, 1.0, 1.0]), "seed": tf.constant([0, 5, 5, 6], tf.int64)}
    tokens = next_tokens(logits, settings, 3).numpy()
    assert tokens[0] == np.argmax(logits[0])
    assert tokens[1] == tokens[2]  # same seed and step, same logits
    np.testing.assert_array_equal(next_tokens(logits, settings, 3).numpy(), tokens)
    # The draw follows the softmax: over many seeds the frequencies match it.
    row = tf.constant([[0.0, 1.0, 2.0]])
    draws = [int(next_tokens(row, {"temperature": tf.constant([1.0]), "top_k": tf.constant([0]),
                                   "top_p": tf.constant([1.0]), "seed": tf.constant([s], tf.int64)}, 1)[0])
             for s in range(600)]
    frequencies = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(frequencies, tf.nn.softmax(row)[0].numpy(), atol=0.06)


def test_sentence_embedding_signature_uses_the_models_output(wordpiece):
    from keras_transformer.export.signatures import build_signatures
    from keras_transformer.models import BertBackbone, BertSentenceEmbedding

    model = BertSentenceEmbedding(BertBackbone.from_preset("bert_test", vocabulary_size=wordpiece.vocabulary_size()),
                                  normalize=True)
    (embed,) = build_signatures(model, wordpiece, ["embed"])
    function = tf.function(embed.function, input_signature=embed.input_signature(), autograph=False)
    texts = ["the value of the object", "a"]
    out = function({"text": tf.constant(texts)})["embeddings"].numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)
    expected = model(bert_packed(wordpiece, texts), training=False)["embeddings"]
    np.testing.assert_allclose(out, expected, atol=1e-6)
