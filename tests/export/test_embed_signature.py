"""The sentence-embedding signature, traced without a SavedModel."""

import numpy as np
import tensorflow as tf

from tests.export.helpers import bert_packed


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
