"""BERT exports: serving_default in a TensorFlow-only process; classify, embed and fill_mask on strings."""

import numpy as np
import pytest
import tensorflow as tf

from tests.export.helpers import bert_packed as _packed, max_abs_diff, run_in_serving_process, text_array

TEXTS = ["The module defines a class.", "Return the value of the named attribute of object", "x"]


def test_classifier_signatures_in_fresh_process(classifier_export, tmp_path):
    model, tokenizer, path = classifier_export
    rng = np.random.default_rng(2)
    batches = []
    for batch, length in ((3, 6), (2, 11)):
        mask = (np.arange(length)[None] < rng.integers(1, length + 1, (batch, 1))).astype("int32")
        batches.append({"token_ids": rng.integers(0, tokenizer.vocabulary_size(), (batch, length)).astype("int32"),
                        "segment_ids": (np.arange(length)[None] >= length // 2).astype("int32").repeat(batch, 0),
                        "padding_mask": mask})
    calls = [("serving_default", batches[0]), ("serving_default", batches[1]),
             ("classify", {"text": text_array(TEXTS)}), ("embed", {"text": text_array(TEXTS)})]
    outputs, modules = run_in_serving_process(path, calls, tmp_path)
    assert "keras_transformer" not in modules
    for inputs, served in zip(batches, outputs):
        assert max_abs_diff(served["logits"], model(inputs, training=False)["logits"]) < 1e-5

    packed = _packed(tokenizer, TEXTS, 32)
    logits = np.asarray(model(packed, training=False)["logits"])
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    classify = outputs[2]
    assert max_abs_diff(classify["probabilities"], probabilities) < 1e-5
    np.testing.assert_array_equal(classify["label_id"], probabilities.argmax(-1))
    assert list(classify["label"]) == [[b"neg", b"neutral", b"pos"][i] for i in probabilities.argmax(-1)]

    sequence = np.asarray(model.backbone(packed, training=False)["sequence_output"])
    mask = packed["padding_mask"][..., None]
    expected = (sequence * mask).sum(1) / mask.sum(1)
    assert max_abs_diff(outputs[3]["embeddings"], expected) < 1e-5


def test_long_texts_are_truncated_for_classify(classifier_export):
    import tensorflow_text  # noqa: F401

    classify = tf.saved_model.load(classifier_export[2]).signatures["classify"]
    long_text = " ".join(["attribute"] * 100)
    out = classify(text=tf.constant([long_text, long_text + " more words here"]))
    # Both truncate to the same 32 tokens, so their probabilities agree.
    np.testing.assert_allclose(out["probabilities"][0], out["probabilities"][1], atol=1e-6)


def test_fill_mask_predicts_each_mask(masked_lm_export):
    import tensorflow_text  # noqa: F401

    model, tokenizer, path = masked_lm_export
    fill_mask = tf.saved_model.load(path).signatures["fill_mask"]
    texts = ["the [MASK] of the object.", "a [MASK] and a [MASK] here"]
    out = {k: v.numpy() for k, v in fill_mask(text=tf.constant(texts)).items()}
    assert out["top_token_ids"].shape == (2, 2, 3) and out["top_tokens"].shape == (2, 2, 3)

    mask_id = tokenizer.token_to_id("[MASK]")
    rows = []
    for text in texts:  # the text around each mask, tokenized piece by piece
        pieces = [list(np.asarray(tokenizer(p))) for p in text.split("[MASK]")]
        rows.append(sum(([*p, mask_id] for p in pieces[:-1]), []) + pieces[-1])
    packed = _packed_ids(tokenizer, rows)
    positions = [list(np.flatnonzero(r == mask_id)) for r in packed["token_ids"]]
    np.testing.assert_array_equal(out["mask_positions"], [positions[0] + [-1], positions[1]])
    packed["mask_positions"] = np.array([positions[0] + [0], positions[1]], "int32")
    logits = np.asarray(model(packed, training=False)["logits"])
    best = logits.argmax(-1)
    assert out["top_token_ids"][0, 0, 0] == best[0, 0]
    np.testing.assert_array_equal(out["top_token_ids"][1, :, 0], best[1])
    assert out["top_tokens"][1, 0, 0] == tokenizer.id_to_token(int(best[1, 0])).encode()
    np.testing.assert_array_equal(out["top_token_ids"][0, 1], [-1, -1, -1])  # unused slot
    assert np.all(np.diff(out["top_scores"][1], axis=-1) <= 0)  # sorted, most likely first

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"needs a \[MASK\] token"):
        fill_mask(text=tf.constant(["no mask here", "one [MASK]"]))


def _packed_ids(tokenizer, rows):
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    rows = [[cls_id] + r + [sep_id] for r in rows]
    length = max(map(len, rows))
    ids = np.array([r + [0] * (length - len(r)) for r in rows], "int32")
    mask = (np.arange(length)[None] < np.array([len(r) for r in rows])[:, None]).astype("int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


def test_empty_texts_are_classified_as_cls_sep(classifier_export):
    import tensorflow_text  # noqa: F401

    model, tokenizer, path = classifier_export
    classify = tf.saved_model.load(path).signatures["classify"]
    out = classify(text=tf.constant(["", "a short example sentence."]))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (2, model.num_classes)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    special = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    alone = model({"token_ids": np.array([special], "int32"), "segment_ids": np.zeros((1, 2), "int32"),
                   "padding_mask": np.ones((1, 2), "int32")})["logits"]
    np.testing.assert_allclose(probabilities[0], tf.nn.softmax(alone)[0].numpy(), atol=1e-5)
    only_empty = classify(text=tf.constant([""]))["probabilities"].numpy()  # no token in the whole batch
    np.testing.assert_allclose(only_empty[0], probabilities[0], atol=1e-6)
