"""tf.data pipelines for supervised data in tab-separated lines.

    from keras_transformer.text.supervised import classification_dataset
    lines, _ = read_text_files("data/train.txt")            # "label<TAB>text" lines
    dataset = classification_dataset(lines, tokenizer, labels=["negative", "positive"])

- `classification_dataset`: "label<TAB>text" lines -> BERT-style batches
  x {"token_ids", "segment_ids", "padding_mask"} (`[CLS] text [SEP]`), y the
  label's index in `labels`, sample_weight 1.
- `text_to_text_dataset`: "source<TAB>target" lines -> T5 batches, as
  `span_corruption_dataset` gives them.

Lines are checked in Python before anything is built: a line without the
tab, with an empty field or (classification) with a label not in `labels`
raises a `ValueError` that names the line (its number, from 1, and text).
Texts longer than the sequence length are truncated (keras-hub packers).
"""

import keras_hub
import tensorflow as tf

from keras_transformer.text.packing import AUTOTUNE
from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.tokenizers import refresh_graph_resources


def _fields(lines, what, source):
    """Yields (line number, first field, second field) of "a<TAB>b" lines; ValueError naming bad lines."""
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        first, tab, second = line.partition("\t")
        if not tab or not first.strip() or not second.strip():
            raise ValueError(f"{source} line {number} is not {what}: {line[:200]!r}")
        yield number, first.strip(), second


def parse_labelled_lines(lines, labels, source="input"):
    """("label<TAB>text" lines, label names) -> (texts, label indices); ValueError naming bad lines."""
    index = {label: i for i, label in enumerate(labels)}
    if not index or len(index) != len(labels):
        raise ValueError(f"labels must be a non-empty list of distinct names; received labels={labels!r}")
    texts, ids = [], []
    for number, label, text in _fields(lines, '"label<TAB>text"', source):
        if label not in index:
            raise ValueError(
                f"{source} line {number} has the unknown label {label!r} (expected one of {list(labels)}): "
                f"{text[:200]!r}"
            )
        texts.append(text)
        ids.append(index[label])
    if not texts:
        raise ValueError(f"{source} has no labelled lines")
    return texts, ids


def parse_text_pairs(lines, source="input"):
    """"source<TAB>target" lines -> (sources, targets); a target may contain further tabs."""
    pairs = [(first, second) for _, first, second in _fields(lines, '"source<TAB>target"', source)]
    if not pairs:
        raise ValueError(f"{source} has no source<TAB>target lines")
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _batched(tensors, batch_size, shuffle, seed, drop_remainder):
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        dataset = dataset.shuffle(len(tensors[0]), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder)


def classification_dataset(lines, tokenizer, labels, *, sequence_length=128, batch_size=32, shuffle=True,
                           seed=0, drop_remainder=True, source="input"):
    """Sequence-classification batches from "label<TAB>text" lines (see the module docstring).

    Args:
        labels: the label names; a label's class id is its index here.
        source: how error messages name `lines` (e.g. the file name).
    """
    texts, ids = parse_labelled_lines(lines, labels, source)
    refresh_graph_resources(tokenizer)
    special = SpecialTokens.from_tokenizer(tokenizer)
    special.require("classification_dataset", "start_id", "end_id")
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length, start_value=special.start_id, end_value=special.end_id, pad_value=special.pad_id
    )

    def to_example(text, label):
        token_ids, segment_ids = packer(tf.cast(tokenizer(text), tf.int32))
        x = {
            "token_ids": tf.cast(token_ids, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(token_ids != special.pad_id, tf.int32),
        }
        return x, tf.cast(label, tf.int32), tf.ones_like(label, tf.float32)

    dataset = _batched((texts, ids), batch_size, shuffle, seed, drop_remainder)
    return dataset.map(to_example, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def text_to_text_dataset(lines, tokenizer, *, encoder_sequence_length=128, decoder_sequence_length=64,
                         batch_size=32, shuffle=True, seed=0, drop_remainder=True, source="input"):
    """T5 batches from "source<TAB>target" lines: encoder `source </s>`, target `target </s>`,
    decoder input the target shifted right after the decoder start id 0; sample_weight is
    the target padding mask."""
    sources, targets = parse_text_pairs(lines, source)
    refresh_graph_resources(tokenizer)
    special = SpecialTokens.from_tokenizer(tokenizer)
    special.require("text_to_text_dataset", "end_id")
    encoder_packer = keras_hub.layers.StartEndPacker(
        encoder_sequence_length, end_value=special.end_id, pad_value=special.pad_id
    )
    decoder_packer = keras_hub.layers.StartEndPacker(
        decoder_sequence_length, end_value=special.end_id, pad_value=special.pad_id
    )

    def to_example(source_text, target_text):
        encoder_ids = tf.cast(encoder_packer(tf.cast(tokenizer(source_text), tf.int32)), tf.int32)
        target_ids = tf.cast(decoder_packer(tf.cast(tokenizer(target_text), tf.int32)), tf.int32)
        target_mask = tf.cast(target_ids != special.pad_id, tf.int32)
        x = {
            "encoder_token_ids": encoder_ids,
            "encoder_padding_mask": tf.cast(encoder_ids != special.pad_id, tf.int32),
            "decoder_token_ids": tf.pad(target_ids[:, :-1], [[0, 0], [1, 0]]),  # decoder start id 0
            "decoder_padding_mask": target_mask,
        }
        return x, target_ids, tf.cast(target_mask, tf.float32)

    dataset = _batched((sources, targets), batch_size, shuffle, seed, drop_remainder)
    return dataset.map(to_example, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
