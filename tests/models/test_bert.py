"""BERT family: backbone and task models, presets, parameter counts, bad inputs, MLM training."""

import math

import keras
import numpy as np
import pytest

from keras_transformer.models import get_preset, list_presets
from keras_transformer.models.bert import (
    BertBackbone,
    BertClassifier,
    BertConfig,
    BertMaskedLM,
    BertOutputBias,
    BertQuestionAnswering,
    BertSentenceEmbedding,
    BertTokenClassifier,
)
from tests.test_case import run_layer_test, run_model_saving_test, run_model_test, to_numpy

BATCH, LENGTH, HIDDEN, VOCAB = 2, 8, 16, 260  # the "bert_test" preset: 2 layers, 2 heads
PADDING = np.array([[1] * LENGTH, [1] * 5 + [0] * 3], dtype="int32")


def _inputs(seed=0, length=LENGTH, padding=PADDING):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, VOCAB, size=(BATCH, length)).astype("int32") * padding
    segment_ids = np.zeros((BATCH, length), dtype="int32")
    segment_ids[:, length // 2 :] = 1
    return {"token_ids": token_ids, "segment_ids": segment_ids * padding, "padding_mask": padding}


INPUTS = _inputs()
MASK_POSITIONS = np.array([[1, 3, 6], [0, 2, 0]], dtype="int32")  # row 1: last slot is padding
MASK_WEIGHTS = np.array([[1, 1, 1], [1, 1, 0]], dtype="float32")
MLM_INPUTS = {**INPUTS, "mask_positions": MASK_POSITIONS}


def _backbone(**overrides):
    return BertBackbone.from_preset("bert_test", **overrides)


# ------------------------------------------------------------ generic model checks


def test_backbone():
    def model_fn():
        model = _backbone()
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        return model

    rng = np.random.default_rng(1)
    targets = {
        "sequence_output": rng.normal(size=(BATCH, LENGTH, HIDDEN)).astype("float32"),
        "pooled_output": rng.normal(size=(BATCH, HIDDEN)).astype("float32"),
    }
    run_model_test(
        model_fn,
        INPUTS,
        {"sequence_output": (BATCH, LENGTH, HIDDEN), "pooled_output": (BATCH, HIDDEN)},
        fit_data=(INPUTS, targets, None),
    )


def test_masked_lm():
    def model_fn():
        model = BertMaskedLM(_backbone(), next_sentence_prediction=True)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))  # default losses and metrics
        return model

    labels = {"logits": np.array([[5, 6, 7], [8, 9, 0]]), "next_sentence_logits": np.array([0, 1])}
    weights = {"logits": MASK_WEIGHTS, "next_sentence_logits": np.ones(BATCH, "float32")}
    shapes = {"logits": (BATCH, 3, VOCAB), "next_sentence_logits": (BATCH, 2)}
    model, _ = run_model_test(model_fn, MLM_INPUTS, shapes, fit_data=(MLM_INPUTS, labels, weights))
    assert model.count_params() == model.backbone.model_config.count_params(True, True)


def test_masked_lm_without_next_sentence_head():
    model = BertMaskedLM(_backbone())
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    outputs = model(MLM_INPUTS)
    assert list(outputs) == ["logits"] and tuple(outputs["logits"].shape) == (BATCH, 3, VOCAB)
    assert model.count_params() == model.backbone.model_config.count_params(masked_lm_head=True)
    labels = np.array([[5, 6, 7], [8, 9, 0]])
    before = model.evaluate(MLM_INPUTS, labels, sample_weight=MASK_WEIGHTS, verbose=0, return_dict=True)
    assert set(before) == {"loss", "accuracy", "perplexity"}
    # The weighted loss ignores the padded slot: changing its label changes nothing.
    other = model.evaluate(MLM_INPUTS, labels + np.array([[0, 0, 0], [0, 0, 1]]),
                           sample_weight=MASK_WEIGHTS, verbose=0, return_dict=True)
    np.testing.assert_allclose(other["loss"], before["loss"], rtol=1e-6)
    np.testing.assert_allclose(np.exp(before["loss"]), before["perplexity"], rtol=1e-4)


def test_classifier():
    def model_fn():
        model = BertClassifier(_backbone(), num_classes=3, dropout=0.1)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    run_model_test(model_fn, INPUTS, {"logits": (BATCH, 3)}, fit_data=(INPUTS, np.array([0, 2]), None))


def test_question_answering():
    def model_fn():
        model = BertQuestionAnswering(_backbone())
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    labels = {"start_logits": np.array([4, 2]), "end_logits": np.array([6, 3])}  # spans inside the context
    model, _ = run_model_test(model_fn, INPUTS, {"start_logits": (BATCH, LENGTH), "end_logits": (BATCH, LENGTH)},
                              fit_data=(INPUTS, labels, None))
    # The two logits are the two columns of one dense layer over the sequence output.
    sequence = to_numpy(model.backbone(INPUTS)["sequence_output"]).astype("float64")
    kernel, bias = (to_numpy(w).astype("float64") for w in model.output_dense.weights)
    out = model(INPUTS)
    np.testing.assert_allclose(to_numpy(out["start_logits"]), sequence @ kernel[:, 0] + bias[0], atol=1e-5)
    np.testing.assert_allclose(to_numpy(out["end_logits"]), sequence @ kernel[:, 1] + bias[1], atol=1e-5)


def test_token_classifier():
    def model_fn():
        model = BertTokenClassifier(_backbone(), num_classes=5)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    labels = np.random.default_rng(2).integers(0, 5, size=(BATCH, LENGTH))
    run_model_test(
        model_fn,
        INPUTS,
        {"logits": (BATCH, LENGTH, 5)},
        fit_data=(INPUTS, labels, PADDING.astype("float32")),
    )


def test_token_classifier_loss_ignores_padding():
    """Default loss: labels of -100 and zero sample weights both drop a token entirely."""
    model = BertTokenClassifier(_backbone(), num_classes=5)
    model.compile()
    labels = np.random.default_rng(2).integers(0, 5, size=(BATCH, LENGTH))
    weighted = model.evaluate(INPUTS, labels, sample_weight=PADDING.astype("float32"), verbose=0,
                              return_dict=True)
    ignored = model.evaluate(INPUTS, np.where(PADDING == 1, labels, -100), verbose=0, return_dict=True)
    np.testing.assert_allclose(ignored["loss"], weighted["loss"], rtol=1e-5)
    # Per real token: the mean cross-entropy recomputed in NumPy.
    logits = to_numpy(model(INPUTS)["logits"]).astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = -np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(weighted["loss"], picked[PADDING == 1].mean(), rtol=1e-5)


def test_sentence_embedding():
    def model_fn():
        model = BertSentenceEmbedding(_backbone(), normalize=True)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        return model

    targets = np.random.default_rng(3).normal(size=(BATCH, HIDDEN)).astype("float32") * 0.1
    run_model_test(model_fn, INPUTS, {"embeddings": (BATCH, HIDDEN)}, fit_data=(INPUTS, targets, None))


@pytest.mark.parametrize("normalize", [False, True])
def test_sentence_embedding_is_masked_mean(normalize):
    model = BertSentenceEmbedding(_backbone(), normalize=normalize)
    embeddings = to_numpy(model(INPUTS)["embeddings"])
    # Mean over the real tokens only, recomputed here from the backbone's output.
    sequence = to_numpy(model.backbone(INPUTS)["sequence_output"]).astype("float64")
    mask = PADDING[:, :, None].astype("float64")
    expected = (sequence * mask).sum(1) / mask.sum(1)
    if normalize:
        expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)


TASKS = {
    "masked_lm": lambda b: BertMaskedLM(b, next_sentence_prediction=True),
    "classifier": lambda b: BertClassifier(b, num_classes=3),
    "token_classifier": lambda b: BertTokenClassifier(b, num_classes=4),
    "sentence_embedding": lambda b: BertSentenceEmbedding(b, normalize=True),
    "question_answering": lambda b: BertQuestionAnswering(b),
}


def task_case(name):
    """One BERT task model on the tiny backbone, and inputs it takes."""
    model = TASKS[name](_backbone())
    return model, MLM_INPUTS if isinstance(model, BertMaskedLM) else INPUTS


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_saving(task):
    run_model_saving_test(*task_case(task))


# ------------------------------------------------------------ numerics and wiring


def test_output_bias_layer():
    layer, outputs = run_layer_test(
        BertOutputBias,
        {"bias_initializer": "ones"},
        {"inputs": np.zeros((2, 3, 10), "float32")},
        expected_output_shape=(2, 3, 10),
        expected_num_trainable_weights=1,
    )
    np.testing.assert_allclose(to_numpy(outputs), 1.0)


def test_padding_does_not_change_real_tokens():
    """A padded row gives the same real-token outputs as the row cut to its real length."""
    backbone = _backbone()
    full = to_numpy(backbone(INPUTS))
    cut = {key: value[1:, :5] for key, value in INPUTS.items()}
    short = to_numpy(backbone(cut))
    np.testing.assert_allclose(full["sequence_output"][1, :5], short["sequence_output"][0], atol=1e-5)
    np.testing.assert_allclose(full["pooled_output"][1], short["pooled_output"][0], atol=1e-5)
    # ...and the padding actually matters to the attention: unmasked, row 1 changes.
    unmasked = to_numpy(backbone({**INPUTS, "padding_mask": np.ones_like(PADDING)}))
    assert np.abs(unmasked["sequence_output"][1, :5] - full["sequence_output"][1, :5]).max() > 1e-3


def test_masked_lm_gathers_positions_and_ties_embeddings():
    model = BertMaskedLM(_backbone())
    token_table = model.backbone.token_embedding.token_embedding.embeddings
    assert not any(w is not token_table and tuple(w.shape) == (VOCAB, HIDDEN) for w in model.weights)
    everything = {**INPUTS, "mask_positions": np.tile(np.arange(LENGTH, dtype="int32"), (BATCH, 1))}
    all_logits = to_numpy(model(everything)["logits"])  # (batch, length, vocab)
    logits = to_numpy(model(MLM_INPUTS)["logits"])
    expected = np.take_along_axis(all_logits, MASK_POSITIONS[:, :, None], axis=1)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    # Tied: zeroing token 7's embedding row zeroes its logit (output bias is 0 at init).
    table = to_numpy(token_table.value)
    table[7] = 0.0
    token_table.assign(table)
    zeroed = to_numpy(model(MLM_INPUTS)["logits"])
    np.testing.assert_allclose(zeroed[..., 7], 0.0, atol=1e-6)
    assert np.abs(logits[..., 7]).max() > 1e-3
    # The output bias adds one value per token.
    model.mlm_output_bias.bias.assign(np.arange(VOCAB, dtype="float32"))
    shifted = to_numpy(model(MLM_INPUTS)["logits"])
    np.testing.assert_allclose(shifted - zeroed, np.broadcast_to(np.arange(VOCAB), zeroed.shape), atol=1e-4)


# ------------------------------------------------------------ presets and sizes

PUBLISHED = {  # name: (num_layers, hidden, heads, ffn, published parameter count)
    "bert_tiny": (2, 128, 2, 512, 4.4e6),
    "bert_mini": (4, 256, 4, 1024, 11.3e6),
    "bert_small": (4, 512, 8, 2048, 29.1e6),
    "bert_medium": (8, 512, 8, 2048, 41.7e6),
    "bert_base": (12, 768, 12, 3072, 110e6),
    "bert_large": (24, 1024, 16, 4096, 340e6),
}


def test_presets():
    assert list_presets("bert") == sorted([*PUBLISHED, "bert_test"])
    for name, (layers, hidden, heads, ffn, _) in PUBLISHED.items():
        config = get_preset(name, "bert")
        assert isinstance(config, BertConfig)
        assert (config.num_layers, config.hidden_dim, config.num_heads, config.intermediate_dim) == (
            layers, hidden, heads, ffn,
        )
        assert (config.vocabulary_size, config.max_sequence_length, config.num_segments) == (30522, 512, 2)
        assert config.layer_norm_epsilon == 1e-12 and config.activation == "gelu"
    with pytest.raises(ValueError, match="unknown preset 'bert_huge'; valid presets: bert_base, bert_large"):
        BertBackbone.from_preset("bert_huge")
    with pytest.raises(ValueError, match="bert_tiny"):
        BertClassifier.from_preset("gpt2_base", num_classes=2)
    model = BertClassifier.from_preset("bert_test", backbone_overrides={"num_layers": 1}, num_classes=2)
    assert len(model.backbone.encoder_blocks) == 1


def test_parameter_count_formula_matches_built_models():
    for overrides in ({}, {"num_layers": 3, "intermediate_dim": 24, "num_segments": 3}):
        backbone = _backbone(**overrides)
        assert backbone.count_params() == backbone.model_config.count_params()
    # BERT-base is Hugging Face BertModel (with pooler): 109,482,240, "110M" in the paper.
    assert get_preset("bert_base").count_params() == 109_482_240
    assert get_preset("bert_large").count_params() == 335_141_888
    for name, (*_, published) in PUBLISHED.items():
        count = get_preset(name).count_params()
        # Published figures are rounded (the paper's 340M for large counts differently);
        # 2% covers every one.
        assert abs(count - published) / published < 0.02, (name, count, published)


# ------------------------------------------------------------ bad inputs


def test_bad_inputs_raise_clear_errors():
    backbone = _backbone()
    missing = {k: v for k, v in INPUTS.items() if k != "padding_mask"}
    with pytest.raises(ValueError, match="padding_mask"):
        backbone(missing)
    with pytest.raises(ValueError, match=r"token_ids holds id 260 at index \(0, 0\), outside \[0, 260\) for vocabulary_size=260"):
        backbone({**INPUTS, "token_ids": np.full((BATCH, LENGTH), VOCAB, dtype="int32")})
    with pytest.raises(ValueError, match=r"segment_ids holds id 2 .*num_segments=2"):
        backbone({**INPUTS, "segment_ids": np.full((BATCH, LENGTH), 2, dtype="int32")})
    too_long = _inputs(length=33, padding=np.ones((BATCH, 33), dtype="int32"))
    with pytest.raises(ValueError, match="length 33, which exceeds max_sequence_length=32"):
        backbone(too_long)
    with pytest.raises(ValueError, match="mask_positions"):
        BertMaskedLM(backbone)(INPUTS)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="hidden_dim=30, num_heads=4"):
        BertConfig(hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="num_layers=0"):
        _backbone(num_layers=0)
    with pytest.raises(ValueError, match="activation"):
        _backbone(activation="no_such_activation")
    with pytest.raises(ValueError, match="num_classes=0"):
        BertClassifier(_backbone(), num_classes=0)


# ------------------------------------------------------------ training on real text

MASK_ID, SEQUENCE, STEPS, BATCH_SIZE, MASKED = 257, 64, 200, 16, 10  # 10 of 64 ~ 15%


def _byte_rows(documents):
    ids = np.frombuffer("\n".join(documents).encode("utf-8"), dtype=np.uint8).astype("int32") + 1
    rows = len(ids) // SEQUENCE
    return ids[: rows * SEQUENCE].reshape(rows, SEQUENCE)


def _mask_rows(rows, rng):
    """BERT masking in NumPy: ~15% of positions; 80% [MASK], 10% random byte, 10% kept."""
    n = len(rows)
    positions = np.argsort(rng.random((n, SEQUENCE)), axis=1)[:, :MASKED].astype("int32")
    labels = np.take_along_axis(rows, positions, axis=1)
    draw = rng.random((n, MASKED))
    random_bytes = rng.integers(1, 257, size=(n, MASKED))
    replaced = np.where(draw < 0.8, MASK_ID, np.where(draw < 0.9, random_bytes, labels))
    token_ids = rows.copy()
    np.put_along_axis(token_ids, positions, replaced, axis=1)
    x = {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": np.ones_like(token_ids),
        "mask_positions": positions,
    }
    return x, labels


@pytest.mark.slow  # ~25 s on 2 CPU cores (TensorFlow)
def test_masked_lm_learns_english_bytes():
    from keras_transformer.text.corpus import split_documents, stdlib_documents

    train_docs, validation_docs = split_documents(stdlib_documents(max_files=400))
    train, validation = _byte_rows(train_docs), _byte_rows(validation_docs)[:128]
    rng = np.random.default_rng(0)
    x_train, y_train = _mask_rows(train[rng.choice(len(train), STEPS * BATCH_SIZE)], rng)
    x_val, y_val = _mask_rows(validation, np.random.default_rng(1))

    backbone = _backbone(hidden_dim=64, intermediate_dim=128, num_heads=4, max_sequence_length=SEQUENCE)
    model = BertMaskedLM(backbone)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.01, clipnorm=1.0))
    before = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=1, verbose=0)
    after = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    # Starts near uniform (ln 260 = 5.56 nats); 200 steps reach ~3.4 (unigram entropy ~3.3).
    assert before["loss"] > math.log(VOCAB) - 0.2
    assert after["loss"] < before["loss"] - 1.5, (before, after)
    assert after["perplexity"] < before["perplexity"] / 4
    assert after["accuracy"] > 0.1
