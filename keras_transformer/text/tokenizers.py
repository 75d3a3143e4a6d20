"""Train, save and load the three tokenizer kinds (all keras-hub tokenizers).

    tokenizer = train_tokenizer("wordpiece", documents, vocabulary_size=8000)
    save_tokenizer(tokenizer, "runs/bert/tokenizer")      # next to the model
    tokenizer = load_tokenizer("runs/bert/tokenizer")      # identical ids

Kinds:
- "wordpiece": `keras_hub.tokenizers.WordPieceTokenizer`, lowercase, vocabulary
  from `compute_word_piece_vocabulary`; ids 0-4 are [PAD] [UNK] [CLS] [SEP]
  [MASK]. For BERT.
- "sentencepiece": `keras_hub.tokenizers.SentencePieceTokenizer` on a unigram
  proto; ids 0-3 are <pad> </s> <unk> <s>, then the user-defined symbols
  <mask> and <extra_id_0> .. <extra_id_99> (T5 sentinels). For T5 (and any).
- "bytes": `SpecialByteTokenizer` (keras-hub's ByteTokenizer, ids 0-255 with 0
  as padding, then </s> <s> [MASK] and the sentinels); nothing to train.

A saved tokenizer is a folder: `tokenizer.json` (kind, options, special ids)
plus `vocabulary.txt` (wordpiece) or `sentencepiece.model` (sentencepiece).
All three export inside a SavedModel (call the tokenizer once before tracking
it). keras-hub's BytePairTokenizer is deliberately not offered: it keeps a
`MutableHashTable` cache that SavedModel export reports as an "untracked
resource" (keras-team/keras-hub#2015), so its text signatures would not
export; WordPiece and SentencePiece export cleanly.
"""

import io
import json
import logging
import os
import re

import keras_hub
import tensorflow as tf

from keras_transformer.text.special_byte_tokenizer import MASK_TOKEN, SpecialByteTokenizer, sentinel_token
from keras_transformer.text.special_tokens import SpecialTokens

logger = logging.getLogger(__name__)

KINDS = ("wordpiece", "sentencepiece", "bytes")
CONFIG_FILE = "tokenizer.json"
VOCABULARY_FILE = "vocabulary.txt"
PROTO_FILE = "sentencepiece.model"
FORMAT_VERSION = 1
WORDPIECE_RESERVED = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", MASK_TOKEN]
DEFAULT_SENTINELS = {"wordpiece": 0, "sentencepiece": 100, "bytes": 100}


def tokenizer_kind(tokenizer):
    """"wordpiece", "sentencepiece" or "bytes" for a tokenizer this module makes."""
    if isinstance(tokenizer, SpecialByteTokenizer):
        return "bytes"
    if isinstance(tokenizer, keras_hub.tokenizers.WordPieceTokenizer):
        return "wordpiece"
    if isinstance(tokenizer, keras_hub.tokenizers.SentencePieceTokenizer):
        return "sentencepiece"
    raise ValueError(
        f"expected a WordPieceTokenizer, SentencePieceTokenizer or SpecialByteTokenizer; "
        f"received {type(tokenizer).__name__}"
    )


def refresh_graph_resources(tokenizer):
    """Re-creates a SentencePiece tokenizer's TensorFlow resource; returns the tokenizer.

    `tf.random.set_seed` (so `keras.utils.set_random_seed`) clears TensorFlow's
    eager kernel cache, which deletes the resource of every tensorflow-text
    SentencePiece model created before it: afterwards the tokenizer fails
    inside tf.data / tf.function with "Resource ..._SentencepieceOp... does
    not exist" (tensorflow/text#570). The pipelines here call this when they
    are built; seed before building them, not in between.
    """
    if isinstance(tokenizer, keras_hub.tokenizers.SentencePieceTokenizer):
        tokenizer.set_proto(tokenizer.proto)
    return tokenizer


def _string_dataset(documents):
    if isinstance(documents, tf.data.Dataset):
        return documents
    documents = list(documents)
    if not documents or not all(isinstance(d, str) for d in documents):
        raise ValueError("documents must be a non-empty list of strings or a tf.data.Dataset of strings")
    return tf.data.Dataset.from_tensor_slices(documents)


def _train_sentencepiece(documents, vocabulary_size, lowercase, num_sentinels):
    # keras_hub.tokenizers.compute_sentence_piece_proto takes no user-defined
    # symbols, so call the same trainer with the same settings plus those.
    import sentencepiece

    writer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=(d.decode("utf-8") for d in _string_dataset(documents).as_numpy_iterator()),
        model_writer=writer,
        vocab_size=vocabulary_size,
        model_type="unigram",
        normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=3,
        user_defined_symbols=["<mask>"] + [sentinel_token(i) for i in range(num_sentinels)],
        hard_vocab_limit=False,  # a small corpus gives a smaller vocabulary, not an error
        max_sentence_length=1 << 16,  # whole documents, not sentences
        minloglevel=1,
    )
    return keras_hub.tokenizers.SentencePieceTokenizer(proto=writer.getvalue())


def train_tokenizer(kind, documents=None, vocabulary_size=None, *, lowercase=None, num_sentinels=None):
    """Trains a tokenizer of `kind` on `documents` (nothing to train for "bytes").

    Args:
        kind: "wordpiece", "sentencepiece" or "bytes".
        documents: list of strings or a `tf.data.Dataset` of strings (unused
            for "bytes").
        vocabulary_size: the largest vocabulary wanted, special tokens
            included; a small corpus may give fewer. Not used for "bytes"
            (256 + 3 + num_sentinels).
        lowercase: fold case first (default: True for wordpiece, else False).
        num_sentinels: `<extra_id_i>` tokens to reserve (default 100 for
            sentencepiece and bytes, 0 for wordpiece).

    Returns:
        A keras-hub tokenizer; `SpecialTokens.from_tokenizer(t)` gives its ids.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}; received kind={kind!r}")
    lowercase = (kind == "wordpiece") if lowercase is None else bool(lowercase)
    num_sentinels = DEFAULT_SENTINELS[kind] if num_sentinels is None else num_sentinels
    if kind == "bytes":
        if vocabulary_size is not None:
            raise ValueError(
                f"the bytes tokenizer has a fixed vocabulary; received vocabulary_size={vocabulary_size}"
            )
        return SpecialByteTokenizer(num_sentinels=num_sentinels, lowercase=lowercase)
    minimum = len(WORDPIECE_RESERVED) + num_sentinels + 1 if kind == "wordpiece" else 5 + num_sentinels + 1
    if not isinstance(vocabulary_size, int) or vocabulary_size < minimum:
        raise ValueError(
            f"vocabulary_size must be an int >= {minimum} for {kind} with {num_sentinels} sentinels; "
            f"received vocabulary_size={vocabulary_size!r}"
        )
    if documents is None:
        raise ValueError(f"training a {kind} tokenizer needs documents; received documents=None")
    if kind == "sentencepiece":
        tokenizer = _train_sentencepiece(documents, vocabulary_size, lowercase, num_sentinels)
    else:
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            _string_dataset(documents).batch(256),
            vocabulary_size,
            lowercase=lowercase,
            reserved_tokens=WORDPIECE_RESERVED + [sentinel_token(i) for i in range(num_sentinels)],
        )
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, lowercase=lowercase)
    logger.info("trained a %s tokenizer: %d ids", kind, tokenizer.vocabulary_size())
    return tokenizer


def save_tokenizer(tokenizer, directory):
    """Writes `tokenizer.json` and the vocabulary / proto into `directory`."""
    kind = tokenizer_kind(tokenizer)
    os.makedirs(directory, exist_ok=True)
    config = {"format_version": FORMAT_VERSION, "kind": kind}
    if kind != "sentencepiece":  # a SentencePiece proto carries its own normalisation
        config["lowercase"] = bool(tokenizer.lowercase)
    config["special_tokens"] = SpecialTokens.from_tokenizer(tokenizer).to_json()
    if kind == "bytes":
        config["num_sentinels"] = tokenizer.num_sentinels
    elif kind == "wordpiece":
        config["file"] = VOCABULARY_FILE
        with open(os.path.join(directory, VOCABULARY_FILE), "w", encoding="utf-8", newline="") as handle:
            handle.write("".join(token + "\n" for token in tokenizer.get_vocabulary()))
    else:
        config["file"] = PROTO_FILE
        with open(os.path.join(directory, PROTO_FILE), "wb") as handle:
            handle.write(tokenizer.proto)
    text = json.dumps(config, indent=2)
    text = re.sub(r"\[[\d,\s]+\]", lambda match: json.dumps(json.loads(match.group(0))), text)  # ids on one line
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


def load_tokenizer(directory):
    """Rebuilds a tokenizer saved by `save_tokenizer`; checks its special ids."""
    path = os.path.join(directory, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the tokenizer description ({error})") from error
    kind = config.get("kind")
    if config.get("format_version") != FORMAT_VERSION or kind not in KINDS:
        raise ValueError(
            f"{path}: expected format_version {FORMAT_VERSION} and kind in {list(KINDS)}; "
            f"received format_version={config.get('format_version')!r}, kind={kind!r}"
        )
    if kind == "bytes":
        tokenizer = SpecialByteTokenizer(num_sentinels=config["num_sentinels"], lowercase=config["lowercase"])
    elif kind == "wordpiece":
        with open(os.path.join(directory, config["file"]), encoding="utf-8", newline="") as handle:
            vocabulary = handle.read().split("\n")[:-1]
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, lowercase=config["lowercase"])
    else:
        with open(os.path.join(directory, config["file"]), "rb") as handle:
            tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=handle.read())
    found = SpecialTokens.from_tokenizer(tokenizer).to_json()
    if found != config["special_tokens"]:
        raise ValueError(
            f"{directory}: the vocabulary does not match {CONFIG_FILE}: it gives special tokens "
            f"{found}, the description says {config['special_tokens']}"
        )
    return tokenizer
