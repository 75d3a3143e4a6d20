"""Training data: text (or images) in, a tokenizer, and the tf.data pipelines of each task.

Every check on the user's files happens here, before a model exists: an
empty, binary or non-UTF-8 file stops the run with a `ValueError` naming it
(or, with `skip_bad_files`, is skipped and counted), and every labelled line
is parsed up front, so a bad label names its file and line instead of
failing mid-epoch. Images (classify-images) are decoded, resized and
normalised up front (`keras_transformer.images`), and held in memory as
model inputs: a file that is not a JPEG or PNG image stops the run the same
way. Without --data the built-in synthetic shapes are drawn.

The training stream is a deterministic function of the step
(`training_stream`): stateless per-epoch document permutations and
fixed-seed row shuffles, so `stream.skip(step)` is exactly where an
uninterrupted run would be at `step`, however many iterators Keras or a
strategy makes. (The pipelines' own `shuffle=True` reshuffles per iterator
and would not be.) Random flips of images are drawn statelessly from the
seed and the row's position in the stream, so they repeat too. Masked-LM
masks are the exception: keras-hub draws them from stateful random ops, so a
resumed BERT run sees the same rows in the same order but different masks.
"""

import dataclasses
import gzip
import math
import os

import numpy as np
import tensorflow as tf

from keras_transformer.images.synthetic import CLASS_NAMES, synthetic_images
from keras_transformer.models.vit.preprocessing import preprocess_images
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
BUILTIN_IMAGES_PER_CLASS = 600  # the built-in image set: 7 classes (keras_transformer.images.synthetic)


@dataclasses.dataclass
class Corpus:
    """Training and validation text: documents (pretrain), tab-separated lines (classify, text-to-text)
    or `QAExample`s (qa)."""

    train: list
    validation: list
    source: str  # for people: where the text came from
    skipped: list = dataclasses.field(default_factory=list)  # (path, reason) of skipped files
    labels: list = dataclasses.field(default_factory=list)  # classify: class names in id order
    task: str = "pretrain"

    @property
    def unit(self):
        """What one training example is, for people."""
        return {"pretrain": "documents", "classify-images": "images", "qa": "questions"}.get(self.task, "lines")


@dataclasses.dataclass
class LabelledImages:
    """Images as model inputs and their class ids: a `Corpus` side of the classify-images task."""

    names: list  # the files' paths relative to --data (built-in: "class/index"): hash split, messages
    images: np.ndarray  # (count, image_size, image_size, channels) float32, preprocessed
    label_ids: np.ndarray  # (count,) int32

    def __len__(self):
        return len(self.names)


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


def load_corpus(config, labels=None, model_config=None):
    """The `Corpus` of `config.task`; `labels` (from an --init classifier) fixes the classes;
    classify-images: `model_config` (a ViTConfig) sets how images are resized and normalised."""
    if config.task == "classify-images":
        return _image_corpus(config, labels, model_config)
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
        labels = _class_names(config.labels, labels, _found_labels(files))
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
    return Corpus(train, validation, source, skipped, labels or [], config.task)


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
    return Corpus(train, validation, source, task="qa")


def _class_names(requested, from_init, found):
    if from_init and requested and list(requested) != list(from_init):
        raise ValueError(f"--labels {requested} differ from the --init classifier's classes {from_init}")
    labels = list(requested or from_init or found)
    if len(labels) < 2:
        raise ValueError(f"classification needs at least 2 classes; found {labels} in --data")
    return labels


# ------------------------------------------------------------------ images


def _split(names, fraction):
    """(train indices, validation indices): the hash split of `split_documents` on the names."""
    train, validation = split_documents(names, fraction)
    index = {name: i for i, name in enumerate(names)}
    return [index[name] for name in train], [index[name] for name in validation]


def _builtin_images(config, labels, model_config):
    if sorted(labels) != sorted(CLASS_NAMES):
        raise ValueError(f"the built-in images have the classes {list(CLASS_NAMES)}; received {labels} "
                         f"(give --data FOLDER for other classes)")
    names, pixels, label_ids = synthetic_images(BUILTIN_IMAGES_PER_CLASS, model_config.image_size,
                                                model_config.num_channels, seed=0, class_names=labels)
    images = np.concatenate([np.asarray(preprocess_images(pixels[i: i + 256], model_config))
                             for i in range(0, len(pixels), 256)])
    train, validation = _split(names, config.validation_fraction)
    sides = [LabelledImages([names[i] for i in side], images[side], label_ids[side]) for side in (train, validation)]
    source = (f"the built-in images ({len(labels)} classes of synthetic shapes and textures, "
              f"{BUILTIN_IMAGES_PER_CLASS} each, {model_config.image_size} pixels)")
    return sides, source, []


def _folder_images(folder, indices, paths, label_ids, config, model_config):
    from keras_transformer.images.folders import load_images

    chosen = [paths[i] for i in indices]
    images, kept, skipped = load_images(chosen, model_config, "skip" if config.skip_bad_files else "raise")
    names = [os.path.relpath(chosen[i], folder) for i in kept]
    return LabelledImages(names, images, label_ids[np.asarray(indices, "int64")[kept]]), skipped


def _image_corpus(config, from_init, model_config):
    from keras_transformer.images.folders import list_image_folder

    if not config.data:
        labels = _class_names(config.labels, from_init, list(CLASS_NAMES))
        (train, validation), source, skipped = _builtin_images(config, labels, model_config)
    else:
        folder = config.data[0]
        paths, label_ids, found = list_image_folder(folder, config.labels or from_init or None)
        labels = _class_names(config.labels, from_init, found)  # label_ids follow this order too
        if config.validation_data:
            train_indices = list(range(len(paths)))
        else:
            relative = [os.path.relpath(path, folder) for path in paths]
            train_indices, validation_indices = _split(relative, config.validation_fraction)
        train, skipped = _folder_images(folder, train_indices, paths, label_ids, config, model_config)
        if config.validation_data:
            other = config.validation_data[0]
            other_paths, other_ids, _ = list_image_folder(other, labels, all_classes=False)
            validation, more = _folder_images(other, range(len(other_paths)), other_paths, other_ids, config,
                                              model_config)
        else:
            validation, more = _folder_images(folder, validation_indices, paths, label_ids, config, model_config)
        skipped += more
        source = f"{len(train) + len(validation)} images in {len(labels)} classes from {folder}" + (
            f" and {config.validation_data[0]}" if config.validation_data else "")
    if not len(train) or not len(validation):
        raise ValueError(f"{source}: {len(train)} training and {len(validation)} validation images; both need "
                         f"some (give --validation-data or change --validation-fraction)")
    return Corpus(train, validation, source, skipped, labels, config.task)


def image_rows(images):
    """(x, y, sample_weight) rows of `LabelledImages`, in order."""
    return tf.data.Dataset.from_tensor_slices(({"images": images.images}, images.label_ids,
                                               np.ones(len(images), "float32")))


def image_stream(images, seed, random_flip):
    """Endless (x, y, sample_weight) rows of `LabelledImages`: a fresh stateless permutation every epoch
    (`document_stream` over the indices), and with `random_flip` row k flipped left-right or not by a
    stateless draw from (seed, k): a function of the position in the stream only."""
    pixels, label_ids = tf.constant(images.images), tf.constant(images.label_ids)

    def row(position, index):
        x = tf.gather(pixels, index)  # (size, size, channels)
        if random_flip:
            x = tf.image.stateless_random_flip_left_right(x, tf.stack([tf.constant(seed, tf.int64), position]))
        return {"images": x}, tf.gather(label_ids, index), tf.constant(1.0)

    indices = document_stream(np.arange(len(images)), seed)
    return tf.data.Dataset.zip(tf.data.Dataset.counter(), indices).map(row, num_parallel_calls=tf.data.AUTOTUNE,
                                                                       deterministic=True)


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
    """The run's tokenizer: `saved_dir` (a resumed run / --init), --tokenizer, else trained on the data;
    None for images."""
    if config.task == "classify-images":
        return None
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
    """Row lengths of a run. `tokens_per_row` counts every position the model computes
    (ViT: the patches and the class token of an `image_size` image)."""

    sequence_length: int
    target_length: int = None
    image_size: int = None

    @property
    def tokens_per_row(self):
        return self.sequence_length + (self.target_length or 0)


def shapes_for(config, family, max_sequence_length, image_size=None):
    """Row lengths: --sequence-length (default 64, qa 128, at most the model's) and T5's target length;
    ViT: the tokens of an `image_size` image."""
    if family == "vit":
        return Shapes(max_sequence_length, image_size=image_size)
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
    """The task's pipeline over `texts` (a list, or for pretraining also a dataset of documents;
    classify-images: `LabelledImages`), in order: (x, y, sample_weight) batches of `batch_size`."""
    common = dict(batch_size=batch_size, shuffle=False)
    if config.task == "classify-images":
        return image_rows(texts).batch(batch_size)
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
    it too is a function of the position in the stream only. Images: `image_stream`.
    """
    if config.task == "classify-images":
        rows = image_stream(corpus.train, config.seed, config.random_flip)
        return rows.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE).skip(start_step)
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
