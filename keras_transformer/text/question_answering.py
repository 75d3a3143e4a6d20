"""Extractive question answering: question + context windows, span labels, and reading the answer back.

    settings = QASettings.for_length(128)                         # doc_stride 64, questions <= 32 tokens
    dataset = question_answering_dataset(examples, tokenizer, settings, batch_size=16)
    answers = predict_answers(model, tokenizer, examples, settings)   # {id: Answer}

Windows (the BERT SQuAD recipe). Each example becomes one or more rows
`[CLS] question [SEP] context window [SEP]` (segment ids 0, then 1 from the
context on) of at most `sequence_length` tokens; the question keeps its
first `max_question_length` tokens. A context longer than the room left
(`sequence_length - 3 - question tokens`) is covered by overlapping windows
whose starts are `doc_stride` context tokens apart (at most the room, so no
token is skipped); the last window ends at the context's end. Every row
carries each position's byte span in the context (`token_starts`,
`token_ends`; -1 outside the context, from `keras_transformer.text.offsets`)
and the index of its example.

Labels: the answer's start token is the first context token ending after the
answer's first byte, its end token the last one starting before the answer's
end. A window that does not hold the whole answer points both labels at
position 0, [CLS].

Reading answers (`best_answer`, the one Python rule; the exported `answer`
signature computes the same in the graph): over all windows of an example,
the span of context tokens start <= end, at most `max_answer_length` tokens,
with the highest start logit + end logit; ties go to the earliest window,
then start, then end. The answer is the context's text from the start
token's first character to the end token's last: original casing and
spacing, with character offsets into the context.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_transformer.text.offsets import check_offsets_support, tokenize_with_offsets
from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.tokenizers import refresh_graph_resources

AUTOTUNE = tf.data.AUTOTUNE
BERT_INPUTS = ("token_ids", "segment_ids", "padding_mask")


@dataclasses.dataclass(frozen=True)
class QASettings:
    """How questions and contexts become rows, and which spans count as answers (see the module docstring)."""

    sequence_length: int = 128
    doc_stride: int = 64
    max_question_length: int = 32
    max_answer_length: int = 30

    def __post_init__(self):
        for name in ("sequence_length", "doc_stride", "max_question_length", "max_answer_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; received {name}={value!r}")
        if self.max_question_length > self.sequence_length - 4:
            raise ValueError(f"max_question_length must leave room for [CLS], [SEP], [SEP] and one context token: "
                             f"at most sequence_length - 4 = {self.sequence_length - 4}; received "
                             f"max_question_length={self.max_question_length}")

    @classmethod
    def for_length(cls, sequence_length, doc_stride=None, max_question_length=None, max_answer_length=None):
        """Settings for rows of `sequence_length`: by default a stride of half of it, questions of a quarter."""
        return cls(sequence_length, doc_stride or max(1, sequence_length // 2),
                   max_question_length or max(1, sequence_length // 4), max_answer_length or 30)

    def to_json(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Answer:
    """An answer span: `context[start:end] == text` (characters); `score` = start logit + end logit."""

    text: str
    start: int
    end: int
    score: float


def question_answer_windows(tokenizer, special, questions, contexts, settings, answer_spans=None,
                            fixed_length=True):
    """The rows of (batch,) questions and contexts, as graph ops (see the module docstring).

    Args:
        special: the tokenizer's `SpecialTokens` ([CLS], [SEP], padding).
        answer_spans: (batch, 2) int64 byte [start, end) of each answer in
            its context; given, the rows get `start_positions`, `end_positions`.
        fixed_length: pad every row to `sequence_length` (training), else to
            the longest row of the batch.

    Returns:
        A dict of (windows, length) tensors `token_ids`, `segment_ids`,
        `padding_mask` (int32), `token_starts`, `token_ends` (int64); (windows,)
        `example` (int32); (batch,) `question_tokens`, `context_tokens` (int64,
        before any cut); and the labels, (windows,) int32.
    """
    batch = tf.shape(questions, out_type=tf.int64)[0]
    ids, starts, ends = tokenize_with_offsets(tokenizer, tf.concat([questions, contexts], axis=0))  # one graph
    question_ids, context_ids = ids[:batch], ids[batch:]
    question_length = tf.minimum(question_ids.row_lengths(), settings.max_question_length)
    room = settings.sequence_length - 3 - question_length  # context tokens per window, >= 1
    step = tf.minimum(tf.constant(settings.doc_stride, tf.int64), room)
    context_length = context_ids.row_lengths()
    count = 1 + (tf.maximum(context_length - room, 0) + step - 1) // step  # windows per example
    window_index = tf.ragged.range(count)  # (batch, [windows])
    example = window_index.value_rowids()  # (windows,)
    first = window_index.flat_values * tf.gather(step, example)  # first context token of each window
    # Dense assembly, position by position: [CLS] question [SEP] context window [SEP] padding.
    q = tf.gather(question_length, example)[:, None]  # (windows, 1)
    c = tf.minimum(tf.gather(room, example), tf.gather(context_length, example) - first)[:, None]
    total = q + c + 3
    length = settings.sequence_length if fixed_length else tf.reduce_max(total)
    position = tf.range(length, dtype=tf.int64)[None, :]  # (1, length)
    in_question = (position >= 1) & (position <= q)
    in_context = (position >= q + 2) & (position < q + 2 + c)
    separator = (position == q + 1) | (position == total - 1)
    questions_dense = tf.cast(question_ids, tf.int64).to_tensor(0, shape=[None, settings.max_question_length])
    question_token = tf.gather(tf.gather(questions_dense, example),
                               tf.clip_by_value(position - 1, 0, settings.max_question_length - 1)
                               + tf.zeros_like(q), batch_dims=1)
    # Index into the batch's flat context tokens (a zero appended: a batch of empty contexts has none).
    flat = tf.gather(ids.row_splits, batch + example)[:, None] + first[:, None] + position - q - 2
    flat = tf.clip_by_value(flat - ids.row_splits[batch], 0, tf.size(context_ids.flat_values, tf.int64))

    def context_values(values, outside):
        padded = tf.concat([tf.cast(values[batch:].flat_values, tf.int64), [outside]], axis=0)
        return tf.where(in_context, tf.gather(padded, flat), outside)

    token_ids = tf.where(position == 0, tf.constant(special.start_id, tf.int64),
                         tf.where(in_question, question_token,
                                  tf.where(separator, tf.constant(special.end_id, tf.int64),
                                           context_values(ids, special.pad_id))))
    dense = {
        "token_ids": token_ids,
        "segment_ids": tf.cast(in_context | (position == total - 1), tf.int64),
        "padding_mask": tf.cast(position < total, tf.int64),
        "token_starts": context_values(starts, -1),
        "token_ends": context_values(ends, -1),
    }
    features = {name: tf.cast(value, tf.int32) for name, value in dense.items() if name in BERT_INPUTS}
    features.update(token_starts=dense["token_starts"], token_ends=dense["token_ends"],
                    example=tf.cast(example, tf.int32), question_tokens=question_ids.row_lengths(),
                    context_tokens=context_length)
    if answer_spans is not None:
        features.update(_labels(dense["token_starts"], dense["token_ends"], tf.gather(answer_spans, example)))
    return features


def _labels(starts, ends, answer):
    """Start/end token positions of each window's answer, or 0 ([CLS]) when the window lacks it."""
    answer_start, answer_end = answer[:, :1], answer[:, 1:]  # (windows, 1) bytes
    context = starts >= 0
    position = tf.range(tf.shape(starts, out_type=tf.int64)[1])[None, :]
    big = tf.int64.max
    first = tf.reduce_min(tf.where(context, starts, big), axis=1, keepdims=True)
    last = tf.reduce_max(tf.where(context, ends, -1), axis=1, keepdims=True)
    inside = (first <= answer_start) & (last >= answer_end)  # the whole answer is in this window
    start = tf.reduce_min(tf.where(context & (ends > answer_start), position, big), axis=1, keepdims=True)
    end = tf.reduce_max(tf.where(context & (starts < answer_end), position, -1), axis=1, keepdims=True)
    zero = tf.zeros_like(start)
    return {"start_positions": tf.cast(tf.where(inside, start, zero)[:, 0], tf.int32),
            "end_positions": tf.cast(tf.where(inside, end, zero)[:, 0], tf.int32)}


def answer_byte_span(context, text, start):
    """The byte [start, end) in UTF-8 `context` of the answer `text` at character `start`."""
    first = len(context[:start].encode("utf-8"))
    return first, first + len(text.encode("utf-8"))


def _example_tensors(examples):
    spans = [answer_byte_span(e.context, *e.answers[0]) for e in examples]
    return ([e.question for e in examples], [e.context for e in examples], np.array(spans, "int64").reshape(-1, 2))


def question_answering_dataset(examples, tokenizer, settings, *, batch_size=32, shuffle=True, seed=0,
                               drop_remainder=True):
    """Training rows of `examples` (each trains on its first answer): (x, y, sample_weight) batches of windows.

    x: `token_ids`, `segment_ids`, `padding_mask` (batch, sequence_length);
    y: {"start_logits": start position, "end_logits": end position}; sample_weight 1.
    """
    if not examples:
        raise ValueError("question_answering_dataset needs at least one example")
    check_offsets_support(tokenizer)
    refresh_graph_resources(tokenizer)
    special = SpecialTokens.from_tokenizer(tokenizer)
    special.require("question_answering_dataset", "start_id", "end_id")
    dataset = tf.data.Dataset.from_tensor_slices(_example_tensors(examples))
    if shuffle:
        dataset = dataset.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)

    def to_rows(questions, contexts, spans):
        features = question_answer_windows(tokenizer, special, questions, contexts, settings, spans)
        x = {name: features[name] for name in BERT_INPUTS}
        y = {"start_logits": features["start_positions"], "end_logits": features["end_positions"]}
        return x, y, tf.ones_like(features["example"], tf.float32)

    to_rows = tf.autograph.experimental.do_not_convert(to_rows)  # plain graph ops: nothing to convert
    rows = dataset.batch(256).map(to_rows, num_parallel_calls=AUTOTUNE).unbatch()
    return rows.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)


# ------------------------------------------------------------------ reading answers


def best_answer(context, start_logits, end_logits, token_starts, token_ends, max_answer_length):
    """The `Answer` of one example from its windows' (windows, length) logits and byte spans (the rule in
    the module docstring); ValueError when the context has no token."""
    start_logits, end_logits = np.asarray(start_logits, "float32"), np.asarray(end_logits, "float32")
    token_starts, token_ends = np.asarray(token_starts), np.asarray(token_ends)
    length = start_logits.shape[1]
    context_token = token_starts >= 0  # (windows, length)
    i, j = np.arange(length)[:, None], np.arange(length)[None, :]
    allowed = (j >= i) & (j - i < max_answer_length)  # (length, length)
    valid = context_token[:, :, None] & context_token[:, None, :] & allowed[None]
    scores = np.where(valid, start_logits[:, :, None] + end_logits[:, None, :], -np.inf)  # float32
    best = int(np.argmax(scores))  # the first of equal maxima: window, then start, then end
    if not np.isfinite(scores.reshape(-1)[best]):
        raise ValueError("the context has no token to answer with")
    window, start, end = np.unravel_index(best, scores.shape)
    encoded = context.encode("utf-8")
    first, last = int(token_starts[window, start]), int(token_ends[window, end])
    return Answer(encoded[first:last].decode("utf-8"), len(encoded[:first].decode("utf-8")),
                  len(encoded[:last].decode("utf-8")), float(scores[window, start, end]))


def window_builder(tokenizer, settings, fixed_length=True):
    """A function (questions, contexts) -> `question_answer_windows` as NumPy arrays, traced once."""
    refresh_graph_resources(tokenizer)
    special = SpecialTokens.from_tokenizer(tokenizer)
    strings = tf.TensorSpec([None], tf.string)

    @tf.function(input_signature=[strings, strings], autograph=False)
    def build(questions, contexts):
        return question_answer_windows(tokenizer, special, questions, contexts, settings, fixed_length=fixed_length)

    def windows(questions, contexts):
        return {name: value.numpy() for name, value in build(tf.constant(questions), tf.constant(contexts)).items()}

    return windows


def predict_answers(model, tokenizer, examples, settings, batch_size=64, windows=None):
    """{example id: Answer} from a question-answering model (a callable on the BERT inputs dict that
    returns `start_logits` and `end_logits`), windows built as in training (by `windows`, a
    `window_builder`, when given: it is traced once)."""
    windows, answers = windows or window_builder(tokenizer, settings), {}
    for begin in range(0, len(examples), batch_size):
        chunk = examples[begin:begin + batch_size]
        features = windows([e.question for e in chunk], [e.context for e in chunk])
        outputs = model({name: features[name] for name in BERT_INPUTS}, training=False)
        start_logits, end_logits = (np.asarray(outputs[name], "float32") for name in ("start_logits", "end_logits"))
        for index, example in enumerate(chunk):
            rows = features["example"] == index
            answers[example.id] = best_answer(example.context, start_logits[rows], end_logits[rows],
                                              features["token_starts"][rows], features["token_ends"][rows],
                                              settings.max_answer_length)
    return answers
