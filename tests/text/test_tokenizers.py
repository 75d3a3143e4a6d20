import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text.special_byte_tokenizer import SpecialByteTokenizer
from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.tokenizers import (
    load_tokenizer,
    refresh_graph_resources,
    save_tokenizer,
    tokenizer_kind,
    train_tokenizer,
)

KINDS = ["wordpiece", "sentencepiece", "bytes"]
TEXTS = ["Return the number of items in the list.", "If the value is None, raise a TypeError."]


def ids_of(tokenizer, texts):
    """Eager call (keras-hub's Python path outside tf.function)."""
    return [list(map(int, row)) for row in tokenizer(texts)]


def graph_ids(tokenizer, texts):
    """Inside tf.data (the TensorFlow path)."""
    refresh_graph_resources(tokenizer)  # the autouse fixture reseeded TensorFlow after it was made
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(len(texts)).map(tokenizer)
    return dataset.get_single_element().to_list()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_gives_identical_ids(kind, tokenizers, documents, tmp_path):
    tokenizer = tokenizers[kind]
    save_tokenizer(tokenizer, str(tmp_path / kind))
    loaded = load_tokenizer(str(tmp_path / kind))
    assert tokenizer_kind(loaded) == kind
    texts = TEXTS + documents[:20]
    assert ids_of(loaded, texts) == ids_of(tokenizer, texts)
    assert graph_ids(loaded, texts) == graph_ids(tokenizer, texts) == ids_of(tokenizer, texts)
    assert SpecialTokens.from_tokenizer(loaded) == SpecialTokens.from_tokenizer(tokenizer)
    with open(tmp_path / kind / "tokenizer.json") as handle:
        assert json.load(handle)["kind"] == kind


def test_special_ids(tokenizers):
    wordpiece = SpecialTokens.from_tokenizer(tokenizers["wordpiece"])
    assert (wordpiece.pad_id, wordpiece.unk_id, wordpiece.start_id, wordpiece.end_id, wordpiece.mask_id) == (0, 1, 2, 3, 4)
    assert wordpiece.sentinel_ids == () and wordpiece.vocabulary_size <= 400
    sentencepiece = SpecialTokens.from_tokenizer(tokenizers["sentencepiece"])
    assert (sentencepiece.pad_id, sentencepiece.end_id, sentencepiece.unk_id, sentencepiece.start_id) == (0, 1, 2, 3)
    assert sentencepiece.mask_id == 4 and sentencepiece.sentinel_ids == tuple(range(5, 105))
    assert sentencepiece.vocabulary_size == 400
    byte = SpecialTokens.from_tokenizer(tokenizers["bytes"])
    assert (byte.pad_id, byte.unk_id, byte.end_id, byte.start_id, byte.mask_id) == (0, None, 256, 257, 258)
    assert byte.sentinel_ids == tuple(range(259, 359)) and byte.vocabulary_size == 359


def test_decode_of_encode(tokenizers):
    # WordPiece lowercases and splits off punctuation; the others give the text back.
    wordpiece = tokenizers["wordpiece"]
    assert wordpiece.detokenize(wordpiece(TEXTS)) == [
        "return the number of items in the list .",
        "if the value is none , raise a typeerror .",
    ]
    assert tokenizers["sentencepiece"].detokenize(tokenizers["sentencepiece"](TEXTS)) == TEXTS
    byte = tokenizers["bytes"]
    text = "Ünïcode ✓ and ASCII"
    assert byte.detokenize(byte([text])) == [text]
    assert byte.detokenize([[72, 105, 256, 258, 259, 0, 0]]) == ["Hi</s>[MASK]<extra_id_0>"]
    graph_text = tf.function(byte.detokenize)(tf.constant([[72, 105, 256, 259, 0]]))
    assert graph_text.numpy().tolist() == [b"Hi</s><extra_id_0>"]


def test_sentinels_are_single_tokens_in_text(tokenizers):
    sentencepiece = tokenizers["sentencepiece"]
    ids = ids_of(sentencepiece, ["a <extra_id_3> b"])[0]
    assert SpecialTokens.from_tokenizer(sentencepiece).sentinel_ids[3] in ids


@pytest.mark.parametrize("kind", KINDS)
def test_tokenizers_export_in_a_saved_model(kind, tokenizers, tmp_path):
    tokenizer = tokenizers[kind]
    tokenizer(["warm"])  # export needs a built layer
    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    archive.add_endpoint(
        "tokenize", lambda texts: tokenizer(texts).to_tensor(), input_signature=[tf.TensorSpec([None], tf.string)]
    )
    archive.write_out(str(tmp_path / "export"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "export"))
    expected = tf.ragged.constant(ids_of(tokenizer, TEXTS)).to_tensor().numpy()
    np.testing.assert_array_equal(reloaded.tokenize(tf.constant(TEXTS)).numpy(), expected)


def test_sentencepiece_survives_reseeding_once_refreshed(tokenizers):
    # tensorflow/text#570: set_random_seed deletes SentencePiece resources made before it.
    tokenizer = tokenizers["sentencepiece"]
    keras.utils.set_random_seed(7)
    dataset = tf.data.Dataset.from_tensor_slices(TEXTS).batch(2)
    with pytest.raises(tf.errors.NotFoundError, match="SentencepieceOp"):
        dataset.map(tokenizer).get_single_element()
    refresh_graph_resources(tokenizer)
    assert dataset.map(tokenizer).get_single_element().to_list() == ids_of(tokenizer, TEXTS)


def test_byte_tokenizer_config_round_trip():
    tokenizer = SpecialByteTokenizer(num_sentinels=3)
    config = keras.saving.serialize_keras_object(tokenizer)
    assert config["registered_name"] == "keras_transformer>SpecialByteTokenizer"
    restored = keras.saving.deserialize_keras_object(config)
    assert restored.num_sentinels == 3 and restored.vocabulary_size() == 262
    assert restored.token_to_id("<extra_id_2>") == 261 and restored.id_to_token(258) == "[MASK]"


def test_load_checks_the_vocabulary_against_the_description(tokenizers, tmp_path):
    save_tokenizer(tokenizers["wordpiece"], str(tmp_path))
    vocabulary = (tmp_path / "vocabulary.txt").read_text().split("\n")
    vocabulary[1], vocabulary[2] = vocabulary[2], vocabulary[1]  # swap [UNK] and [CLS]
    (tmp_path / "vocabulary.txt").write_text("\n".join(vocabulary))
    with pytest.raises(ValueError, match="does not match tokenizer.json"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(ValueError, match="cannot read the tokenizer description"):
        load_tokenizer(str(tmp_path / "missing"))


def test_training_arguments_are_checked(documents):
    with pytest.raises(ValueError, match="kind=.bpe"):
        train_tokenizer("bpe", documents, 100)
    with pytest.raises(ValueError, match="vocabulary_size must be an int >= 106 .*received vocabulary_size=50"):
        train_tokenizer("sentencepiece", documents, 50)
    with pytest.raises(ValueError, match="fixed vocabulary; received vocabulary_size=300"):
        train_tokenizer("bytes", vocabulary_size=300)
    with pytest.raises(ValueError, match="needs documents"):
        train_tokenizer("wordpiece", None, 100)
