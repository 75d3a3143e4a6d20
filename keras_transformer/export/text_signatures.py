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

`answer` (BertQuestionAnswering) takes two inputs, `question` and `context`,
(batch,) strings, and returns `answer` (batch,) string, `answer_start`,
`answer_end` (batch,) int32 character offsets (`context[answer_start:answer_end]
== answer`) and `score` (batch,) float32 (start logit + end logit). The
windows, document stride and span rule are those of training
(`keras_transformer.text.question_answering`): every window of a long
context is read, and the best span over all of them wins. A question or
context without a token (empty or blank), or inputs of different batch sizes,
are rejected (INVALID_ARGUMENT naming the input).
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
from keras_transformer.text.offsets import check_offsets_support
from keras_transformer.text.question_answering import QASettings, question_answer_windows

DEFAULT_QA_LENGTH = 384  # window length of the answer signature when the model's run does not give one

def _text_signature(name, description, samples, preprocess, forward, postprocess):
    """A signature `postprocess(pre, forward(pre))` with `pre = preprocess(inputs)`.

    `samples` maps each input name (a (batch,) string tensor) to its sample
    texts. The reference runs the same preprocessing graph, then the Keras
    model eagerly, then the same postprocessing: it differs from the export
    only where the export could go wrong (tracing, saving, reloading).
    """
    specs = {key: tf.TensorSpec([None], tf.string, name=key) for key in samples}

    def function(inputs):
        pre = preprocess(inputs)
        return postprocess(pre, forward(pre))

    traced_preprocess = tf.function(preprocess, input_signature=[specs], autograph=False)

    def reference(sample):
        pre = traced_preprocess({key: tf.constant(value) for key, value in sample.items()})
        return as_numpy(postprocess(pre, forward(pre)))

    sample = {key: np.array([t.encode("utf-8") for t in texts], dtype=object) for key, texts in samples.items()}
    return Signature(name, specs, function, description, sample, reference, uses_tokenizer=True)


def _bert_inputs(pre):
    return {key: pre[key] for key in ("token_ids", "segment_ids", "padding_mask")}


def classify(model, tokenizer, special, labels=None):
    num_classes = model.num_classes
    labels = class_names(labels, num_classes)
    limit = model_config(model).max_sequence_length

    def preprocess(inputs):
        return text_graph.pack_bert(text_graph.tokenize(tokenizer, inputs["text"]), special, limit)

    def postprocess(pre, outputs):
        return class_outputs(outputs["logits"], labels)

    return _text_signature(
        "classify", f"text -> probabilities over {num_classes} classes, label_id, label ({labels[:10]}); "
        f"texts truncated to {limit} tokens with [CLS] and [SEP].",
        {"text": ["a short example sentence.", "another one"]},
        preprocess, lambda pre: model(_bert_inputs(pre), training=False), postprocess,
    )


def embed(model, tokenizer, special):
    from keras_transformer.models import BertSentenceEmbedding

    limit = model_config(model).max_sequence_length
    own = isinstance(model, BertSentenceEmbedding)
    backbone = getattr(model, "backbone", model)

    def preprocess(inputs):
        return text_graph.pack_bert(text_graph.tokenize(tokenizer, inputs["text"]), special, limit)

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
        {"text": ["a short example sentence.", "another one"]},
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

    def preprocess(inputs):
        ids = text_graph.tokenize_with_mask(tokenizer, inputs["text"], mask_token, special.mask_id)
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
        {"text": [f"the {mask_token} of the file.", f"a {mask_token} and a {mask_token}"]},
        preprocess, forward, postprocess,
    )


def qa_settings(model, given=None):
    """The `QASettings` of `answer`: `given` (a run's `question_answering` dict, or part of one), the rest
    by default for windows of min(384, max_sequence_length) tokens."""
    given = dict(given or {})
    limit = model_config(model).max_sequence_length
    length = given.pop("sequence_length", None) or min(DEFAULT_QA_LENGTH, limit)
    unknown = sorted(set(given) - {"doc_stride", "max_question_length", "max_answer_length"})
    if unknown:
        raise ValueError(f"unknown question-answering setting(s) {unknown}")
    if length > limit:
        raise ValueError(f"question-answering windows of {length} tokens exceed the model's max_sequence_length "
                         f"{limit}")
    return QASettings.for_length(length, **given)


def _best_spans(start_logits, end_logits, starts, example, batch, max_answer_length):
    """(window, start position, end position, score) per example: `best_answer`'s rule as graph ops
    (highest start + end logit over context spans; ties: first window, start, end)."""
    length = tf.shape(start_logits)[1]
    scores = start_logits[:, :, None] + end_logits[:, None, :]  # (windows, start, end)
    position = tf.range(length)
    allowed = (position[None, :] >= position[:, None]) & (position[None, :] - position[:, None] < max_answer_length)
    context = starts >= 0
    valid = context[:, :, None] & context[:, None, :] & allowed[None]
    flat = tf.reshape(tf.where(valid, scores, -np.inf), [tf.shape(scores)[0], -1])  # (windows, length * length)
    best = tf.reduce_max(flat, axis=1)
    index = tf.range(tf.shape(flat)[1])
    first = tf.reduce_min(tf.where(flat == best[:, None], index[None, :], tf.int32.max), axis=1)
    example_best = tf.math.unsorted_segment_max(best, example, batch)
    windows = tf.range(tf.shape(best)[0])
    window = tf.math.unsorted_segment_min(tf.where(best == tf.gather(example_best, example), windows,
                                                   tf.int32.max), example, batch)
    chosen = tf.gather(first, window)
    return window, chosen // length, chosen % length, example_best


def answer(model, tokenizer, special, settings):
    special.require("answer", "start_id", "end_id")
    check_offsets_support(tokenizer)
    if not isinstance(settings, QASettings):
        settings = qa_settings(model, settings)

    def preprocess(inputs):
        question, context = inputs["question"], inputs["context"]
        rows, other = tf.shape(question)[0], tf.shape(context)[0]
        sizes = [assert_all((rows == other) & (rows > 0), "answer: `question` and `context` need the same "
                            "number of rows, at least one; rows of question, context:", rows, other)]
        with tf.control_dependencies(sizes):
            question, context = tf.identity(question), tf.identity(context)
        pre = question_answer_windows(tokenizer, special, question, context, settings, fixed_length=False)
        checks = [assert_all(pre[f"{name}_tokens"] > 0, f"answer: every `{name}` needs text (at least one token); "
                             f"tokens per row of `{name}`:", pre[f"{name}_tokens"]) for name in ("question", "context")]
        return checked(dict(pre, context=context), checks)

    def forward(pre):
        return model(_bert_inputs(pre), training=False)

    def postprocess(pre, outputs):
        context, starts, ends = pre["context"], pre["token_starts"], pre["token_ends"]
        window, start, end, score = _best_spans(
            tf.cast(outputs["start_logits"], tf.float32), tf.cast(outputs["end_logits"], tf.float32), starts,
            pre["example"], tf.shape(context)[0], settings.max_answer_length)
        first = tf.gather_nd(starts, tf.stack([window, start], axis=1))  # bytes
        last = tf.gather_nd(ends, tf.stack([window, end], axis=1))
        text = tf.strings.substr(context, first, last - first)
        answer_start = tf.strings.length(tf.strings.substr(context, tf.zeros_like(first), first),
                                             unit="UTF8_CHAR")
        return {"answer": text, "answer_start": answer_start,
                "answer_end": answer_start + tf.strings.length(text, unit="UTF8_CHAR"), "score": score}

    return _text_signature(
        "answer", f"question, context -> answer (a span of the context), answer_start, answer_end (character "
        f"offsets), score (start + end logit). Windows of {settings.sequence_length} tokens, {settings.doc_stride} "
        f"context tokens apart, cover a long context; questions cut to {settings.max_question_length} tokens; "
        f"answers of at most {settings.max_answer_length} tokens. An empty question or context is rejected.",
        {"question": ["Which module reads JSON?", "What does it return?"],
         "context": ["The json module reads and writes JSON text.", "The function returns a list of names."]},
        preprocess, forward, postprocess,
    )
