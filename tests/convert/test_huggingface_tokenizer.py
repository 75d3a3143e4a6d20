"""Tokenizers from Hugging Face tokenizer files: vocab.txt, spiece.model, vocab.json + merges.txt."""

import json

import numpy as np
import pytest

from keras_transformer.convert.huggingface_tokenizer import tokenizer_from_huggingface


def _ids(tokenizer, text):
    return np.asarray(tokenizer(text)).tolist()


def test_vocab_txt_follows_do_lower_case_and_strip_accents(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\nHello\ncafe\ncafé\n##s\n")
    assert _ids(tokenizer_from_huggingface(str(tmp_path)), "Hello CAFÉS") == [2, 4, 6]  # BertTokenizer's default
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    assert _ids(tokenizer_from_huggingface(str(tmp_path)), "Hello café") == [3, 5]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "strip_accents": False}))
    assert _ids(tokenizer_from_huggingface(str(tmp_path)), "CAFÉ") == [5]


def test_spiece_model_and_byte_level_bpe(tmp_path):
    from keras_transformer.text.tokenizers import train_tokenizer

    trained = train_tokenizer("sentencepiece", ["the cat sat on the mat"] * 20, vocabulary_size=30, num_sentinels=0)
    (tmp_path / "spiece.model").write_bytes(trained.proto)
    assert _ids(tokenizer_from_huggingface(str(tmp_path)), "the cat") == _ids(trained, "the cat")
    bpe = tmp_path / "bpe"
    bpe.mkdir()
    (bpe / "vocab.json").write_text(json.dumps({"h": 0, "i": 1, "Ġ": 2, "hi": 3, "Ġh": 4, "Ġhi": 5}))
    (bpe / "merges.txt").write_text("#version: 0.2\nĠ h\nĠh i\nh i\n")  # by rank: " hi" is Ġh + i
    tokenizer = tokenizer_from_huggingface(str(bpe))
    assert _ids(tokenizer, "hi hi") == [3, 5] and tokenizer.id_to_token(5) == "Ġhi"


def test_missing_or_inconsistent_files_are_one_line_errors(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")  # a fast tokenizer alone is not read
    with pytest.raises(ValueError, match=r"no tokenizer files this package reads .*vocab.txt.*'tokenizer.json'"):
        tokenizer_from_huggingface(str(tmp_path))
    (tmp_path / "vocab.json").write_text(json.dumps({"h": 0, "i": 1}))
    (tmp_path / "merges.txt").write_text("h i\n")  # "hi" is not in the vocabulary
    with pytest.raises(ValueError, match=r"merges.txt line 1 \('h i'\) must be two tokens") as error:
        tokenizer_from_huggingface(str(tmp_path))
    assert "\n" not in str(error.value)
