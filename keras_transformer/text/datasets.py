"""tf.data pipelines for the pre-training objectives, one function each.

    from keras_transformer.text.datasets import causal_lm_dataset
    dataset = causal_lm_dataset(documents, tokenizer, sequence_length=128, batch_size=32)
    model.fit(dataset.repeat(), steps_per_epoch=...)

Each yields `(x, y, sample_weight)` batches with static shapes (batches of
exactly `batch_size`, `drop_remainder=True`), int32 ids and masks, float32
weights, and `x` keyed as the models expect:

    masked_lm_dataset        BertMaskedLM     x: token_ids segment_ids padding_mask mask_positions
                                              y: original ids at mask_positions (batch, num_masked)
    causal_lm_dataset        GPTCausalLM      x: token_ids padding_mask   y: ids shifted by one
    span_corruption_dataset  T5Seq2SeqLM      x: encoder_/decoder_ token_ids, padding_mask
                                              y: target ids

Throughput: documents are tokenized 256 at a time in parallel maps, packed
into full rows (`pack=True`, the default: short documents separated by the
end id fill rows instead of padding), shuffled with `seed` (documents, then
rows), batched and prefetched. Padding never counts: `sample_weight` is 0
wherever the target is padding. `pack=False` gives one (truncated) document
per row instead.
"""

import math

import keras_hub
import tensorflow as tf

from keras_transformer.text.packing import AUTOTUNE, strip_padding, token_sequences
from keras_transformer.text.span_corruption import noise_counts, span_corrupt, span_corruption_lengths
from keras_transformer.text.special_tokens import SpecialTokens


def _check(batch_size, minimum_length=2, **lengths):
    for name, value, minimum in [("batch_size", batch_size, 1)] + [(k, v, minimum_length) for k, v in lengths.items()]:
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}; received {name}={value!r}")


def _finish(dataset, shapes):
    """Sets static shapes (`shapes`: the (x, y, w) structure of `tf.TensorShape`s), prefetches."""
    dataset = dataset.map(lambda *batch: tf.nest.map_structure(tf.ensure_shape, batch, shapes))
    return dataset.prefetch(AUTOTUNE)


def masked_lm_dataset(documents, tokenizer, *, sequence_length=128, batch_size=32, mask_rate=0.15,
                      pack=True, shuffle=True, seed=0, shuffle_buffer=None):
    """BERT masked-LM batches: `[CLS] text [SEP]` rows, 15% of text tokens selected.

    Selection and replacement are keras-hub's `MaskedLMMaskGenerator`:
    ceil(mask_rate * selectable tokens) per row, of which 80% become [MASK],
    10% a random id and 10% stay; special ids and padding are never selected.
    `mask_positions` has ceil(mask_rate * (sequence_length - 2)) slots; unused
    slots hold position 0 with weight 0.
    The order of the data is seeded; the masks are not repeatable: keras-hub's
    generator (tensorflow-text underneath) draws from stateful random ops in
    parallel calls, even after `keras.utils.set_random_seed`.
    """
    _check(batch_size, 3, sequence_length=sequence_length)
    if not 0.0 < mask_rate < 1.0:
        raise ValueError(f"mask_rate must be in (0, 1); received mask_rate={mask_rate}")
    special = SpecialTokens.from_tokenizer(tokenizer)
    special.require("masked_lm_dataset", "start_id", "end_id", "mask_id")
    num_masked = math.ceil(mask_rate * (sequence_length - 2))
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length, start_value=special.start_id, end_value=special.end_id, pad_value=special.pad_id
    )
    masker = keras_hub.layers.MaskedLMMaskGenerator(
        special.vocabulary_size,
        mask_rate,
        special.mask_id,
        mask_selection_length=num_masked,
        unselectable_token_ids=list(special.all_ids),
    )

    def to_example(rows):
        token_ids, segment_ids = packer(strip_padding(rows, special.pad_id))
        masked = masker(token_ids)
        x = {
            "token_ids": tf.cast(masked["token_ids"], tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(token_ids != special.pad_id, tf.int32),
            "mask_positions": tf.cast(masked["mask_positions"], tf.int32),
        }
        return x, tf.cast(masked["mask_ids"], tf.int32), tf.cast(masked["mask_weights"], tf.float32)

    rows = token_sequences(documents, tokenizer, sequence_length - 2, pack=pack, separator_id=special.end_id,
                           pad_id=special.pad_id, seed=seed, shuffle=shuffle, shuffle_buffer=shuffle_buffer)
    dataset = rows.batch(batch_size, drop_remainder=True).map(to_example, num_parallel_calls=AUTOTUNE)
    full, masked = tf.TensorShape([batch_size, sequence_length]), tf.TensorShape([batch_size, num_masked])
    x = {"token_ids": full, "segment_ids": full, "padding_mask": full, "mask_positions": masked}
    return _finish(dataset, (x, masked, masked))


def causal_lm_dataset(documents, tokenizer, *, sequence_length=128, batch_size=32, pack=True,
                      shuffle=True, seed=0, shuffle_buffer=None):
    """GPT next-token batches: rows of sequence_length + 1 ids, x = row[:-1], y = row[1:].

    Packed documents are separated by the end id (`[SEP]` / `</s>`); with
    `pack=False` each document ends with it. `sample_weight` = padding mask of
    the targets.
    """
    _check(batch_size, sequence_length=sequence_length)
    special = SpecialTokens.from_tokenizer(tokenizer)
    special.require("causal_lm_dataset", "end_id")
    length = sequence_length + 1
    packer = keras_hub.layers.StartEndPacker(length, end_value=special.end_id, pad_value=special.pad_id)

    def to_example(rows):
        # (batch, sequence_length + 1); packed rows are complete, single documents get the end id.
        ids = rows if pack else tf.cast(packer(strip_padding(rows, special.pad_id)), tf.int32)
        inputs, targets = ids[:, :-1], ids[:, 1:]
        x = {"token_ids": inputs, "padding_mask": tf.cast(inputs != special.pad_id, tf.int32)}
        return x, targets, tf.cast(targets != special.pad_id, tf.float32)

    rows = token_sequences(documents, tokenizer, length, pack=pack, separator_id=special.end_id,
                           pad_id=special.pad_id, seed=seed, shuffle=shuffle, shuffle_buffer=shuffle_buffer)
    dataset = rows.batch(batch_size, drop_remainder=True).map(to_example, num_parallel_calls=AUTOTUNE)
    shape = tf.TensorShape([batch_size, sequence_length])
    return _finish(dataset, ({"token_ids": shape, "padding_mask": shape}, shape, shape))


def span_corruption_dataset(documents, tokenizer, *, encoder_sequence_length=128, decoder_sequence_length=None,
                            batch_size=32, noise_density=0.15, mean_noise_span_length=3.0, pack=True,
                            shuffle=True, seed=0, shuffle_buffer=None):
    """T5 span-corruption batches (noise density 0.15, mean span length 3).

    Rows hold as many raw tokens as fit `encoder_sequence_length` once
    corrupted (T5's `random_spans_helper`, e.g. 141 for 128). Encoder input:
    non-noise tokens with one sentinel per noise span, then `</s>`; target:
    each sentinel followed by its span, then `</s>`; decoder input: the
    target shifted right after the decoder start id 0. The noise is seeded
    per batch from `seed` (stateless), so it repeats exactly.

    Args:
        decoder_sequence_length: default: the longest target a full row gives.
    """
    _check(batch_size, 3, encoder_sequence_length=encoder_sequence_length)
    special = SpecialTokens.from_tokenizer(tokenizer)
    special.require("span_corruption_dataset", "end_id")
    tokens_length, targets_length = span_corruption_lengths(
        encoder_sequence_length, noise_density, mean_noise_span_length
    )
    decoder_sequence_length = decoder_sequence_length or targets_length
    if decoder_sequence_length < targets_length:
        raise ValueError(
            f"decoder_sequence_length must be at least {targets_length} for encoder_sequence_length="
            f"{encoder_sequence_length}; received decoder_sequence_length={decoder_sequence_length}"
        )
    num_spans = noise_counts(tokens_length, noise_density, mean_noise_span_length)[1]
    if len(special.sentinel_ids) < num_spans:
        raise ValueError(
            f"span corruption of {tokens_length}-token rows needs {num_spans} sentinel tokens; the tokenizer "
            f"has {len(special.sentinel_ids)} (train it with num_sentinels >= {num_spans})"
        )
    sentinel_ids = tf.constant(special.sentinel_ids, tf.int32)
    encoder_packer = keras_hub.layers.StartEndPacker(
        encoder_sequence_length, end_value=special.end_id, pad_value=special.pad_id
    )
    decoder_packer = keras_hub.layers.StartEndPacker(
        decoder_sequence_length, end_value=special.end_id, pad_value=special.pad_id
    )

    def to_example(index, rows):
        lengths = tf.reduce_sum(tf.cast(rows != special.pad_id, tf.int32), axis=1)  # padding is at the end only
        batch_seed = tf.stack([tf.constant(seed, tf.int64), index])
        inputs, targets = span_corrupt(rows, lengths, sentinel_ids, batch_seed, noise_density, mean_noise_span_length)
        encoder_ids = tf.cast(encoder_packer(inputs), tf.int32)
        target_ids = tf.cast(decoder_packer(targets), tf.int32)
        target_mask = tf.cast(target_ids != special.pad_id, tf.int32)
        decoder_ids = tf.pad(target_ids[:, :-1], [[0, 0], [1, 0]])  # decoder start id 0
        x = {
            "encoder_token_ids": encoder_ids,
            "encoder_padding_mask": tf.cast(encoder_ids != special.pad_id, tf.int32),
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": target_mask,
        }
        return x, target_ids, tf.cast(target_mask, tf.float32)

    rows = token_sequences(documents, tokenizer, tokens_length, pack=pack, separator_id=special.end_id,
                           pad_id=special.pad_id, seed=seed, shuffle=shuffle, shuffle_buffer=shuffle_buffer)
    rows = rows.filter(lambda row: row[1] != special.pad_id)  # a noise span needs a token before it
    dataset = rows.batch(batch_size, drop_remainder=True).enumerate().map(to_example, num_parallel_calls=AUTOTUNE)
    encoder = tf.TensorShape([batch_size, encoder_sequence_length])
    decoder = tf.TensorShape([batch_size, decoder_sequence_length])
    x = {"encoder_token_ids": encoder, "encoder_padding_mask": encoder,
         "decoder_token_ids": decoder, "decoder_padding_mask": decoder}
    return _finish(dataset, (x, decoder, decoder))
