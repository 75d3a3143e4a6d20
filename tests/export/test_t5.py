"""T5 export: the four-input serving_default in a TensorFlow-only process, and greedy `generate`."""

import numpy as np
import tensorflow as tf

from keras_transformer.text.tokenizers import refresh_graph_resources
from tests.export.helpers import max_abs_diff, run_in_serving_process, text_array


def _batch(rng, batch, source, target, vocabulary):
    def part(length, lengths):
        mask = (np.arange(length)[None] < np.asarray(lengths)[:, None]).astype("int32")
        return rng.integers(1, vocabulary, (batch, length)).astype("int32") * mask, mask

    encoder_ids, encoder_mask = part(source, rng.integers(1, source + 1, batch))
    decoder_ids, decoder_mask = part(target, rng.integers(1, target + 1, batch))
    return {"encoder_token_ids": encoder_ids, "encoder_padding_mask": encoder_mask,
            "decoder_token_ids": decoder_ids, "decoder_padding_mask": decoder_mask}


def test_t5_serving_default_and_generate_in_fresh_process(t5_export, tmp_path):
    model, tokenizer, path = t5_export
    rng = np.random.default_rng(1)
    vocabulary = tokenizer.vocabulary_size()
    first, second = _batch(rng, 2, 9, 5, vocabulary), _batch(rng, 4, 3, 7, vocabulary)
    texts = ["summarize: the module defines functions", "a"]
    generate = {"text": text_array(texts), "max_new_tokens": np.array([6], "int32"),
                "temperature": np.array([0.0], "float32"), "top_k": np.array([0], "int32"),
                "top_p": np.array([1.0], "float32"), "seed": np.array([0], "int64")}
    calls = [("serving_default", first), ("serving_default", second), ("generate", generate)]
    outputs, modules = run_in_serving_process(path, calls, tmp_path)
    assert "keras_transformer" not in modules
    for (_, inputs), served in zip(calls[:2], outputs):
        expected = model(inputs, training=False)["logits"]
        assert served["logits"].shape == tuple(expected.shape)
        assert max_abs_diff(served["logits"], expected) < 1e-5

    # Greedy generate == model.generate on the same encoder ids (`text </s>`).
    refresh_graph_resources(tokenizer)  # the seeding fixture clears tf-text's SentencePiece resource
    end_id = tokenizer.token_to_id("</s>")
    rows = [list(tokenizer(t)) + [end_id] for t in texts]
    length = max(map(len, rows))
    encoder_ids = np.array([r + [0] * (length - len(r)) for r in rows], "int32")
    encoder_mask = (np.arange(length)[None] < np.array([len(r) for r in rows])[:, None]).astype("int32")
    expected = model.generate({"encoder_token_ids": encoder_ids, "encoder_padding_mask": encoder_mask},
                              max_new_tokens=6, stop_token_ids=[end_id])
    served = outputs[2]
    np.testing.assert_array_equal(served["padding_mask"], expected["padding_mask"].astype("int32"))
    np.testing.assert_array_equal(served["token_ids"], expected["token_ids"] * expected["padding_mask"])
    for row in range(len(texts)):
        new = [int(i) for i, m in zip(expected["token_ids"][row][1:], expected["padding_mask"][row][1:])
               if m and i != end_id]
        assert served["generated_text"][row] == tf.constant(tokenizer.detokenize([new])[0]).numpy()
