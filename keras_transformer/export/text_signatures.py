"""BERT text signatures: strings in, tokenizer inside the graph.

Every input is `text`, a (batch,) string tensor. Each text becomes
`[CLS] text [SEP]` (segment 0) and is truncated to the model's
`max_sequence_length` (the end of a long text is dropped; [SEP] is kept).

- `classify` (BertClassifier): `probabilities` (batch, num_classes) float32,
  `label_id` (batch,) int32 (argmax), `label` (batch,) string (its name;
  the class index as a string unless `labels` were given at export).
- `embed` (any BERT model): `embeddings` (batch, hidden_dim) float32; a
  BertSentenceEmbedding's own output (normalised if it was built so), else
  the backbone's sequence output averaged over the real tokens.
- `fill_mask` (BertMaskedLM): every literal mask token of the tokenizer
  ("[MASK]" for WordPiece and bytes, "<mask>" for SentencePiece) is
  predicted. Outputs, with M the most masks in a row of the batch:
  `mask_positions` (batch, M) int32 position in the packed sequence, -1 for
  unused slots; `top_token_ids` (batch, M, k) int32, `top_tokens` (batch, M, k)
  string, `top_scores` (batch, M, k) float32 probabilities (-1 / "" / 0 in
  unused slots). A text without a mask token after truncation is rejected
  (INVALID_ARGUMENT). Only ids the tokenizer has are predicted.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.export import text_graph
from keras_transformer.export.model_signatures import model_config
from keras_transformer.export.signature_spec import (
    Signature,
    as_numpy,
    assert_all,
    checked,
    class_names,
    class_outputs,
)

TEXT_INPUT = {"text": tf.TensorSpec([None], tf.string, name="text")}


def _text_signature(name, description, sample_texts, preprocess, forward, postprocess):
    """A signature `postprocess(pre, forward(pre))` with `pre = preprocess(text)`.

    The reference runs the same preprocessing graph, then the Keras model
    eagerly, then the same postprocessing: it differs from the export only
    where the export could go wrong (tracing, saving, reloading).
    """

    def function(inputs):
        pre = preprocess(inputs["text"])
        return postprocess(pre, forward(pre))

    traced_preprocess = tf.function(preprocess, input_signature=[TEXT_INPUT["text"]], autograph=False)

    def reference(sample):
        pre = traced_preprocess(tf.constant(sample["text"]))
        return as_numpy(postprocess(pre, forward(pre)))

    sample = {"text": np.array([t.encode("utf-8") for t in sample_texts], dtype=object)}
    return Signature(name, dict(TEXT_INPUT), function, description, sample, reference, uses_tokenizer=True)


def _bert_inputs(pre):
    return {key: pre[key] for key in ("token_ids", "segment_ids", "padding_mask")}


def classify(model, tokenizer, special, labels=None):
    num_classes = model.num_classes
    labels = class_names(labels, num_classes)
    limit = model_config(model).max_sequence_length

    def preprocess(text):
        return text_graph.pack_bert(text_graph.tokenize(tokenizer, text), special, limit)

    def postprocess(pre, outputs):
        return class_outputs(outputs["logits"], labels)

    return _text_signature(
        "classify", f"text -> probabilities over {num_classes} classes, label_id, label ({labels[:10]}); "
        f"texts truncated to {limit} tokens with [CLS] and [SEP].",
        ["a short example sentence.", "another one"],
        preprocess, lambda pre: model(_bert_inputs(pre), training=False), postprocess,
    )


def embed(model, tokenizer, special):
    from keras_transformer.models import BertSentenceEmbedding

    limit = model_config(model).max_sequence_length
    own = isinstance(model, BertSentenceEmbedding)
    backbone = getattr(model, "backbone", model)

    def preprocess(text):
        return text_graph.pack_bert(text_graph.tokenize(tokenizer, text), special, limit)

    def forward(pre):
        if own:
            return {"embeddings": model(_bert_inputs(pre), training=False)["embeddings"]}
        sequence = backbone(_bert_inputs(pre), training=False)["sequence_output"]  # (batch, length, hidden)
        mask = keras.ops.expand_dims(keras.ops.cast(pre["padding_mask"], sequence.dtype), -1)
        total = keras.ops.sum(sequence * mask, axis=1)
        return {"embeddings": total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)}

    how = "the model's own embeddings" if own else "the backbone's sequence output averaged over real tokens"
    return _text_signature(
        "embed", f"text -> embeddings (batch, hidden_dim): {how}; texts truncated to {limit} tokens.",
        ["a short example sentence.", "another one"],
        preprocess, forward, lambda pre, outputs: {"embeddings": tf.cast(outputs["embeddings"], tf.float32)},
    )


def fill_mask(model, tokenizer, special, top_k=5):
    special.require("fill_mask", "mask_id", "start_id", "end_id")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"fill_mask_top_k must be a positive integer; received {top_k!r}")
    config = model_config(model)
    limit, vocabulary = config.max_sequence_length, config.vocabulary_size
    top_k = min(top_k, tokenizer.vocabulary_size())
    mask_token = text_graph.vocabulary_strings(tokenizer, vocabulary)[special.mask_id]
    strings = tf.constant(text_graph.vocabulary_strings(tokenizer, vocabulary))
    decodable = np.arange(vocabulary) < tokenizer.vocabulary_size()

    def preprocess(text):
        ids = text_graph.tokenize_with_mask(tokenizer, text, mask_token, special.mask_id)
        inputs = text_graph.pack_bert(ids, special, limit)
        is_mask = tf.equal(inputs["token_ids"], special.mask_id) & (inputs["padding_mask"] > 0)
        positions = tf.ragged.boolean_mask(tf.broadcast_to(tf.range(tf.shape(is_mask)[1]), tf.shape(is_mask)),
                                           is_mask)  # (batch, [masks])
        counts = positions.row_lengths()
        check = assert_all(counts > 0, f"fill_mask: every text needs a {mask_token} token within the first "
                           f"{limit - 2} tokens; masks per row:", counts)
        inputs["slot_valid"] = tf.sequence_mask(counts, tf.reduce_max(counts))
        inputs["mask_positions"] = positions.to_tensor(default_value=0)  # padded slots read position 0
        return checked(inputs, [check])

    def forward(pre):
        keys = ("token_ids", "segment_ids", "padding_mask", "mask_positions")
        return model({key: pre[key] for key in keys}, training=False)

    def postprocess(pre, outputs):
        logits = tf.cast(outputs["logits"], tf.float32)  # (batch, M, vocab)
        logits = tf.where(tf.constant(decodable)[None, None, :], logits, -float("inf"))
        scores, ids = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=top_k)  # (batch, M, k)
        valid = pre["slot_valid"]
        ids = tf.where(valid[:, :, None], ids, -1)
        return {
            "mask_positions": tf.where(valid, pre["mask_positions"], -1),
            "top_token_ids": ids,
            "top_tokens": tf.where(valid[:, :, None], tf.gather(strings, tf.maximum(ids, 0)), ""),
            "top_scores": tf.where(valid[:, :, None], scores, 0.0),
        }

    return _text_signature(
        "fill_mask", f"text with {mask_token} tokens -> for each mask the top {top_k} tokens and their "
        f"probabilities; texts truncated to {limit} tokens, a text without {mask_token} is rejected.",
        [f"the {mask_token} of the file.", f"a {mask_token} and a {mask_token}"],
        preprocess, forward, postprocess,
    )
