"""The keras-hub tokenizer of a Hugging Face folder's tokenizer files (no `transformers` needed).

    tokenizer = tokenizer_from_huggingface("hf/bert-base-uncased")

- `vocab.txt` (BERT): `WordPieceTokenizer`; lowercasing and accent stripping
  from `tokenizer_config.json` (`do_lower_case`, default True, and
  `strip_accents`, default: as `do_lower_case`), as `BertTokenizer` does.
- `spiece.model` (T5): `SentencePieceTokenizer` on that proto.
- `vocab.json` + `merges.txt` (GPT-2): `BytePairTokenizer` (byte-level BPE).

The ids are the checkpoint's; no special tokens are added (callers pack
`[CLS]`/`[SEP]` or `</s>` themselves). A folder with none of these files (a
fast `tokenizer.json` alone) is a ValueError naming what is needed.
"""

import json
import os

HUGGINGFACE_TOKENIZER_FILES = ("vocab.txt", "spiece.model", "vocab.json + merges.txt")


def _tokenizer_config(path):
    config_path = os.path.join(path, "tokenizer_config.json")
    if not os.path.isfile(config_path):
        return {}
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"{config_path!r} is not readable JSON: {error}") from None
    return config if isinstance(config, dict) else {}


def has_huggingface_tokenizer(path):
    """Whether `path` holds one of the tokenizer file sets this module reads."""
    names = set(os.listdir(path)) if os.path.isdir(path) else set()
    return bool({"vocab.txt", "spiece.model"} & names) or {"vocab.json", "merges.txt"} <= names


def tokenizer_from_huggingface(path):
    """A keras-hub tokenizer from the tokenizer files in `path` (see the module docstring)."""
    if not has_huggingface_tokenizer(path):
        found = sorted(os.listdir(path)) if os.path.isdir(path) else []
        raise ValueError(f"{path!r} has no tokenizer files this package reads (one of "
                         f"{', '.join(HUGGINGFACE_TOKENIZER_FILES)}); it has {found[:20]}")
    try:
        return _build(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r}: cannot read its tokenizer files: {error}") from None
    except Exception as error:  # noqa: BLE001  (keras-hub and the tokenizers library raise plain Exceptions)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path!r}: its tokenizer files do not make a tokenizer: {first_line}") from None


def _build(path):
    import keras_hub

    def file(name):
        return os.path.join(path, name)

    if os.path.isfile(file("vocab.txt")):
        config = _tokenizer_config(path)
        lowercase = bool(config.get("do_lower_case", True))
        strip_accents = config.get("strip_accents")
        with open(file("vocab.txt"), encoding="utf-8") as handle:
            vocabulary = [line.rstrip("\r\n") for line in handle]
        while vocabulary and not vocabulary[-1]:
            vocabulary.pop()
        return keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocabulary, lowercase=lowercase,
            strip_accents=lowercase if strip_accents is None else bool(strip_accents))
    if os.path.isfile(file("spiece.model")):
        with open(file("spiece.model"), "rb") as handle:
            return keras_hub.tokenizers.SentencePieceTokenizer(proto=handle.read())
    with open(file("vocab.json"), encoding="utf-8") as handle:
        vocabulary = json.load(handle)
    with open(file("merges.txt"), encoding="utf-8") as handle:
        merges = [line.rstrip("\r\n") for line in handle if line.strip() and not line.startswith("#version")]
    _check_merges(vocabulary, merges)
    return keras_hub.tokenizers.BytePairTokenizer(vocabulary=vocabulary, merges=merges)


def _check_merges(vocabulary, merges):
    """Each merge "a b" needs a, b and ab in the vocabulary (the BPE library would crash, not raise)."""
    if not isinstance(vocabulary, dict):
        raise ValueError("vocab.json must be an object {token: id}")
    for number, merge in enumerate(merges, start=1):
        parts = merge.split(" ")
        if len(parts) != 2 or not all(p in vocabulary for p in (*parts, "".join(parts))):
            raise ValueError(f"merges.txt line {number} ({merge!r}) must be two tokens whose parts and merge are all "
                             "in vocab.json")
