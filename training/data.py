"""Training data: text in, a tokenizer, and the tf.data pipelines of each task.

Every check on the user's files happens here, before a model exists: an
empty, binary or non-UTF-8 file stops the run with a `ValueError` naming it
(or, with `skip_bad_files`, is skipped and counted), and every labelled line
is parsed up front, so a bad label names its file and line instead of
failing mid-epoch.

The training stream is a deterministic function of the step
(`training_stream`): stateless per-epoch document permutations and
fixed-seed row shuffles, so `stream.skip(step)` is exactly where an
uninterrupted run would be at `step`, however many iterators Keras or a
strategy makes. (The pipelines' own `shuffle=True` reshuffles per iterator
and would not be.) Masked-LM masks are the exception: keras-hub draws them
from stateful random ops, so a resumed BERT run sees the same rows in the
same order but different masks.
"""

import dataclasses
import gzip
import math

import numpy as np
import tensorflow as tf

from keras_transformer.text.corpus import read_text_files, split_documents, stdlib_documents
from keras_transformer.text.datasets import causal_lm_dataset, masked_lm_dataset, span_corruption_dataset
from keras_transformer.text.question_answering import QASettings, question_answering_dataset
from keras_transformer.text.span_corruption import noise_counts, span_corruption_lengths
from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.squad import read_squad, sample_paths
from keras_transformer.text.supervised import (
    classification_dataset,
    parse_labelled_lines,
    parse_text_pairs,
    text_to_text_dataset,
)
from keras_transformer.text.tokenizers import load_tokenizer, refresh_graph_resources, train_tokenizer

ENTROPY_SAMPLE = 20_000  # documents tokenized for the unigram entropy
ROW_SHUFFLE_BUFFER = 4096  # rows mixed across documents (packed rows of one document are adjacent)


@dataclasses.dataclass
class Corpus:
    """Training and validation text: documents (pretrain), tab-separated lines (classify, text-to-text)
    or `QAExample`s (qa)."""

    train: list
    validation: list
    source: str  # for people: where the text came from
    skipped: list = dataclasses.field(default_factory=list)  # (path, reason) of skipped files
    labels: list = dataclasses.field(default_factory=list)  # classify: class names in id order


# ------------------------------------------------------------------ reading


def _read(patterns, config, one_document_per):
    documents, stats = read_text_files(
        patterns, one_document_per=one_document_per, on_error="skip" if config.skip_bad_files else "raise"
    )
    return documents, stats


def _raw_lines(path):
    """The lines of a file `read_text_files` accepted, numbered as in the file (blank lines kept)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        text = handle.read().decode("utf-8").removeprefix("\ufeff")
    return text.split("\n")


def _labelled_files(patterns, config):
    """[(path, lines)] of tab-separated files, each checked by `read_text_files` first."""
    _, stats = _read(patterns, config, "file")
    return [(path, _raw_lines(path)) for path in stats.files_read], stats.skipped


def _found_labels(files):
    labels = set()
    for _, lines in files:
        for line in lines:
            label, tab, _ = line.strip("\r").partition("\t")
            if tab and label.strip():
                labels.add(label.strip())
    return sorted(labels)


def load_corpus(config, labels=None):
    """The `Corpus` of `config.task`; `labels` (from an --init classifier) fixes the classes."""
    if config.task == "pretrain":
        if config.data:
            train, stats = _read(config.data, config, config.document_per)
            source, skipped = f"{stats.documents} documents from {len(stats.files_read)} file(s)", stats.skipped
        else:
            train, source, skipped = stdlib_documents(), "the built-in corpus (standard-library docstrings)", []
        if config.validation_data:
            validation, stats = _read(config.validation_data, config, config.document_per)
            skipped = skipped + stats.skipped
        else:
            train, validation = split_documents(train, config.validation_fraction)
        if not validation or not train:
            raise ValueError(f"{source}: {len(train)} training and {len(validation)} validation documents; "
                             f"both need some (give --validation-data or change --validation-fraction)")
        return Corpus(train, validation, source, skipped)

    if config.task == "qa":
        return _qa_corpus(config)
    files, skipped = _labelled_files(config.data, config)
    validation_files = []
    if config.validation_data:
        validation_files, more = _labelled_files(config.validation_data, config)
        skipped = skipped + more
    if config.task == "classify":
        labels = _class_names(config.labels, labels, files)
        for path, lines in files + validation_files:
            parse_labelled_lines(lines, labels, source=path)  # ValueError naming the file and line
    else:
        for path, lines in files + validation_files:
            parse_text_pairs(lines, source=path)
    train = [line for _, lines in files for line in lines if line.strip()]
    if validation_files:
        validation = [line for _, lines in validation_files for line in lines if line.strip()]
    else:
        train, validation = split_documents(train, config.validation_fraction)
    if not validation:
        raise ValueError(f"no validation lines: --data has {len(train)} lines; pass --validation-data "
                         f"or raise --validation-fraction")
    source = f"{len(train) + (0 if validation_files else len(validation))} lines from {len(files)} file(s)"
    return Corpus(train, validation, source, skipped, labels or [])


def _qa_corpus(config):
    """SQuAD examples: --data (default: the built-in sample's training file) and --validation-data (default:
    the sample's validation file, or with --data a hash-split share of its paragraphs)."""
    train = read_squad(config.data or [sample_paths("train")])
    source = (f"{len(train)} questions from {len(config.data)} SQuAD file pattern(s)" if config.data
              else "the built-in question-answering sample (standard-library modules)")
    if config.validation_data or not config.data:
        validation = read_squad(config.validation_data or [sample_paths("validation")])
    else:
        contexts = sorted({example.context for example in train})
        _, held_out = split_documents(contexts, config.validation_fraction)
        held_out = set(held_out)
        train, validation = ([e for e in train if e.context not in held_out],
                             [e for e in train if e.context in held_out])
    if not train or not validation:
        raise ValueError(f"{source}: {len(train)} training and {len(validation)} validation questions; both need "
                         f"some (give --validation-data or raise --validation-fraction)")
    return Corpus(train, validation, source)


def _class_names(requested, from_init, files):
    if from_init and requested and list(requested) != list(from_init):
        raise ValueError(f"--labels {requested} differ from the --init classifier's classes {from_init}")
    labels = list(requested or from_init or _found_labels(files))
    if len(labels) < 2:
        raise ValueError(f"classification needs at least 2 classes; found {labels} in --data")
    return labels


# ------------------------------------------------------------------ tokenizer


def num_sentinels(config, family):
    """Sentinel tokens the objective needs: T5 span corruption only."""
    return 100 if (config.task == "pretrain" and family == "t5") else 0


def tokenizer_texts(corpus, task):
    """The text a tokenizer is trained on: documents, the text fields of labelled lines, or the contexts and
    questions of qa examples."""
    if task == "pretrain":
        return corpus.train
    if task == "qa":
        return sorted({example.context for example in corpus.train}) + [example.question for example in corpus.train]
    fields = [line.partition("\t") for line in corpus.train]
    return [f[2] for f in fields] if task == "classify" else [f[0] for f in fields] + [f[2] for f in fields]


def make_tokenizer(config, family, corpus, saved_dir=None):
    """The run's tokenizer: `saved_dir` (a resumed run / --init), --tokenizer, else trained on the data."""
    path = saved_dir or config.tokenizer
    if path:
        return load_tokenizer(path)
    sentinels = num_sentinels(config, family)
    kind = config.resolved_tokenizer_kind
    if kind == "bytes":
        return train_tokenizer("bytes", num_sentinels=sentinels)
    if config.strategy == "multi_worker":
        raise ValueError(
            f"a {kind} tokenizer must be trained once, not on every worker: run "
            f"`python -m training tokenizer --tokenizer-kind {kind} ...` first and pass "
            f"its folder with --tokenizer"
        )
    return train_tokenizer(kind, tokenizer_texts(corpus, config.task), config.vocabulary_size,
                           num_sentinels=sentinels)


def unigram_entropy(documents, tokenizer):
    """Entropy (nats) of the corpus' token distribution, document ends included: the loss of a
    model that knows token frequencies but no context. Tokenizes at most ENTROPY_SAMPLE documents;
    ValueError when they give no token at all (the endless training stream would never fill a row)."""
    special = SpecialTokens.from_tokenizer(refresh_graph_resources(tokenizer))
    counts = np.zeros(special.vocabulary_size, "float64")
    dataset = tf.data.Dataset.from_tensor_slices(documents[:ENTROPY_SAMPLE]).batch(256)
    for ids in dataset.map(lambda texts: tokenizer(texts).flat_values, num_parallel_calls=tf.data.AUTOTUNE):
        counts += np.bincount(ids.numpy(), minlength=len(counts))[: len(counts)]
    if not counts.any():
        raise ValueError(f"the training documents give no tokens with this tokenizer "
                         f"(first {min(len(documents), ENTROPY_SAMPLE)} documents checked)")
    if special.end_id is not None:
        counts[special.end_id] += min(len(documents), ENTROPY_SAMPLE)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


# ------------------------------------------------------------------ pipelines


@dataclasses.dataclass
class Shapes:
    """Row lengths of a run. `tokens_per_row` counts every position the model computes."""

    sequence_length: int
    target_length: int = None

    @property
    def tokens_per_row(self):
        return self.sequence_length + (self.target_length or 0)


def shapes_for(config, family, max_sequence_length):
    """Row lengths: --sequence-length (default 64, qa 128, at most the model's) and T5's target length."""
    length = config.sequence_length or min(128 if config.task == "qa" else 64, max_sequence_length)
    if family in ("gpt", "bert") and length > max_sequence_length:
        raise ValueError(f"--sequence-length {length} exceeds the model's max_sequence_length "
                         f"{max_sequence_length}")
    if family != "t5":
        if config.target_length:
            raise ValueError("--target-length is for T5 only")
        return Shapes(length)
    if config.task == "pretrain":
        needed = span_corruption_lengths(length)[1]
        if config.target_length and config.target_length < needed:
            raise ValueError(f"--target-length must be at least {needed} for span corruption of "
                             f"--sequence-length {length}; received {config.target_length}")
        return Shapes(length, config.target_length or needed)
    return Shapes(length, config.target_length or length)


def qa_settings(config, shapes):
    """The windows and answer reading of a qa run (`QASettings`), from its options and row length."""
    return QASettings.for_length(shapes.sequence_length, config.doc_stride, config.max_question_length,
                                 config.max_answer_length)


def check_sentinels(tokenizer, shapes):
    tokens_length, _ = span_corruption_lengths(shapes.sequence_length)
    spans = noise_counts(tokens_length)[1]
    have = len(SpecialTokens.from_tokenizer(tokenizer).sentinel_ids)
    if have < spans:
        raise ValueError(f"span corruption of --sequence-length {shapes.sequence_length} needs {spans} "
                         f"sentinel tokens; the tokenizer has {have}")


def pipeline(config, family, tokenizer, texts, shapes, batch_size, labels=()):
    """The task's pipeline over `texts` (a list, or for pretraining also a dataset of documents), in
    order: (x, y, sample_weight) batches of `batch_size`."""
    common = dict(batch_size=batch_size, shuffle=False)
    if config.task == "classify":
        return classification_dataset(texts, tokenizer, labels, sequence_length=shapes.sequence_length,
                                      drop_remainder=False, **common)
    if config.task == "qa":
        return question_answering_dataset(texts, tokenizer, qa_settings(config, shapes), drop_remainder=False,
                                          **common)
    if config.task == "text-to-text":
        return text_to_text_dataset(texts, tokenizer, encoder_sequence_length=shapes.sequence_length,
                                    decoder_sequence_length=shapes.target_length, drop_remainder=False, **common)
    if family == "gpt":
        return causal_lm_dataset(texts, tokenizer, sequence_length=shapes.sequence_length, **common)
    if family == "bert":
        return masked_lm_dataset(texts, tokenizer, sequence_length=shapes.sequence_length, **common)
    check_sentinels(tokenizer, shapes)
    return span_corruption_dataset(texts, tokenizer, encoder_sequence_length=shapes.sequence_length,
                                   decoder_sequence_length=shapes.target_length, **common)


def document_stream(documents, seed):
    """Endless documents: epoch e is a permutation of `documents` that depends on (seed, e) only
    (stateless `index_shuffle`, no shuffle buffer whose state depends on how often it was iterated).
    The documents are held in memory, as the pipelines' own `from_tensor_slices` holds them."""
    count = len(documents)
    table = tf.constant(documents)

    def document(position):
        epoch, index = position // count, position % count
        seed_pair = tf.stack([tf.constant(seed, tf.int64), epoch])
        return tf.gather(table, tf.random.experimental.index_shuffle(index, seed_pair, count - 1))

    return tf.data.Dataset.counter().map(document, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def training_stream(config, family, tokenizer, corpus, shapes, start_step):
    """The endless training batches from step `start_step` on; the same batches at the same step in
    every run with this config (resume), whatever the strategy or number of iterators made.

    Pretraining: documents in a fresh stateless permutation every epoch, then the objective's
    pipeline (packing), then a row shuffle. Labelled lines: the lines repeated, then the row
    shuffle. The row shuffle has a fixed seed per iterator (`reshuffle_each_iteration=False`), so
    it too is a function of the position in the stream only.
    """
    if config.task == "pretrain":
        rows = pipeline(config, family, tokenizer, document_stream(corpus.train, config.seed), shapes,
                        config.batch_size)
        buffer = ROW_SHUFFLE_BUFFER
    else:
        rows = pipeline(config, family, tokenizer, corpus.train, shapes, config.batch_size, corpus.labels).repeat()
        buffer = min(len(corpus.train), ROW_SHUFFLE_BUFFER)
    rows = rows.unbatch().shuffle(buffer, seed=config.seed, reshuffle_each_iteration=False)
    batches = rows.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return batches.skip(start_step)


def count_batches(dataset, limit=None):
    """Batches in one pass (iterates it: the pipelines' cardinality is unknown after packing)."""
    if limit is not None:
        dataset = dataset.take(limit)
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1).numpy())


def validation_set(config, family, tokenizer, corpus, shapes, batch_size, replicas):
    """(dataset, batches) for validation, in order. When the validation text has fewer rows than
    a global batch, the batch shrinks to the largest multiple of the replicas that fits."""

    def build(size):
        dataset = pipeline(config, family, tokenizer, corpus.validation, shapes, size, corpus.labels)
        if config.task != "pretrain":  # the supervised pipelines keep a partial last batch
            dataset = dataset.unbatch().batch(size, drop_remainder=True)
        return dataset, count_batches(dataset, config.validation_steps)

    dataset, batches = build(batch_size)
    if batches == 0:  # rare: count the rows, then build it again with a batch that fits
        rows = count_batches(pipeline(config, family, tokenizer, corpus.validation, shapes, 1, corpus.labels))
        if rows < replicas:
            raise ValueError(f"the validation text gives {rows} row(s) of {shapes.sequence_length} tokens, "
                             f"fewer than the {replicas} replicas; give more --validation-data or raise "
                             f"--validation-fraction")
        dataset, batches = build(rows // replicas * replicas)
    # A known cardinality makes Keras start a fresh pass at every validation (with an unknown
    # one it keeps the exhausted iterator of the previous pass).
    return dataset.take(batches).apply(tf.data.experimental.assert_cardinality(batches)), batches


def one_pass(config, family, tokenizer, corpus, shapes):
    """One pass over the training text in order, in global batches (for counting)."""
    dataset = pipeline(config, family, tokenizer, corpus.train, shapes, config.batch_size, corpus.labels)
    return dataset if config.task == "pretrain" else dataset.unbatch().batch(config.batch_size, drop_remainder=True)


def steps_for_epochs(config, one_pass):
    """--epochs as optimizer steps: rounded down to a multiple of --steps-per-execution, at least one."""
    unit = config.steps_per_execution
    return max(unit, math.floor(config.epochs * count_batches(one_pass)) // unit * unit)
