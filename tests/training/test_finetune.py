"""Fine-tuning entry points, from our own runs and from the tiny Hugging Face fixtures.

The fixtures carry no tokenizer files, so these runs use a WordPiece tokenizer
of under 100 ids trained on the test data (`wordpiece_dir`): every id it makes
is a valid row of the fixtures' embeddings (vocabularies of 101-113). What is
tested is the plumbing (import, heads, dtype, data, a few optimizer steps that
lower the loss, what is saved), not the quality of a pretrained vocabulary.
"""

import json
import os

import keras
import pytest

from tests.training.conftest import HF_FIXTURES, SMALL
from training.config import TrainConfig
from training.run import train

FEW = dict(SMALL, sequence_length=16, learning_rate=1e-3)


def test_bert_classifier_from_a_hugging_face_checkpoint(data_dir, wordpiece_dir, tmp_path):
    options = dict(FEW, steps=20, checkpoint_every=10, batch_size=16, learning_rate=1e-2, validation_fraction=0.2,
                   validation_steps=None)
    config = TrainConfig(task="classify", init=os.path.join(HF_FIXTURES, "bert"), tokenizer=wordpiece_dir,
                         data=[str(data_dir / "labelled.txt")], output=str(tmp_path / "run"), **options)
    summary = train(config)
    assert (summary["model_class"], summary["labels"]) == ("BertClassifier", ["neg", "pos"])  # sorted labels
    assert set(summary["final_validation"]) == {"loss", "accuracy"} and summary["improved"]
    # The sentiment words decide the label: it learns them only if labels and texts line up.
    assert summary["final_validation"]["accuracy"] >= 0.9 > summary["initial_validation"]["accuracy"]
    described = json.load(open(tmp_path / "run" / "config.json"))
    assert described["labels"] == ["neg", "pos"] and described["backbone_config"]["vocabulary_size"] == 103
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.num_classes == 2
    # The encoder started from the checkpoint: position rows 16-39 (past --sequence-length 16) get no
    # gradient and no weight decay (position tables are excluded), so they are exactly the fixture's.
    from keras_transformer.convert import from_huggingface

    original = from_huggingface(os.path.join(HF_FIXTURES, "bert")).backbone
    table = model.backbone.token_embedding.position_embedding.embeddings.numpy()
    expected = original.token_embedding.position_embedding.embeddings.numpy()
    assert (table[16:] == expected[16:]).all() and not (table[:16] == expected[:16]).all()


def test_gpt_continued_pretraining_from_our_run(gpt_run, data_dir, tmp_path):
    base_config, base = gpt_run
    config = TrainConfig(init=base_config.output, data=[str(data_dir / "corpus.txt")], output=str(tmp_path / "more"),
                         **SMALL)
    summary = train(config)
    # Same validation text, same weights at the start: it begins where the first run ended.
    assert summary["initial_validation"]["loss"] == pytest.approx(base["final_validation"]["loss"], rel=1e-5)
    assert summary["final_validation"]["loss"] < summary["initial_validation"]["loss"]
    assert os.path.isdir(tmp_path / "more" / "tokenizer")  # the init run's tokenizer, carried over


def test_gpt_continued_pretraining_from_a_keras_file_and_a_hugging_face_checkpoint(gpt_run, data_dir, wordpiece_dir,
                                                                                    tmp_path):
    base_config, _ = gpt_run
    from_file = train(TrainConfig(init=os.path.join(base_config.output, "model.keras"),
                                  data=[str(data_dir / "corpus.txt")], output=str(tmp_path / "file"), **SMALL))
    assert from_file["model_class"] == "GPTCausalLM" and from_file["vocabulary_size"] == 259
    from_hf = train(TrainConfig(init=os.path.join(HF_FIXTURES, "gpt2"), tokenizer=wordpiece_dir,
                                data=[str(data_dir / "corpus.txt")], output=str(tmp_path / "hf"), **SMALL))
    assert from_hf["model_class"] == "GPTCausalLM" and from_hf["improved"]
    assert json.load(open(tmp_path / "hf" / "config.json"))["backbone_config"]["vocabulary_size"] == 113


def test_t5_text_to_text_from_a_hugging_face_checkpoint(data_dir, wordpiece_dir, tmp_path):
    config = TrainConfig(task="text-to-text", init=os.path.join(HF_FIXTURES, "t5_v1_0"), tokenizer=wordpiece_dir,
                         data=[str(data_dir / "pairs.txt")], output=str(tmp_path / "run"), **FEW)
    summary = train(config)
    assert summary["model_class"] == "T5Seq2SeqLM" and summary["improved"]
    assert summary["tokens_per_step"] == 8 * (16 + 16)  # encoder + decoder positions


def test_classify_needs_a_bert_model(gpt_run, data_dir, tmp_path):
    base_config, _ = gpt_run
    config = TrainConfig(task="classify", init=base_config.output, data=[str(data_dir / "labelled.txt")],
                         output=str(tmp_path / "run"), **SMALL)
    with pytest.raises(ValueError, match="classify trains a bert model; --init .* is gpt"):
        train(config)


def test_a_hugging_face_init_needs_a_tokenizer(data_dir, tmp_path):
    config = TrainConfig(task="classify", init=os.path.join(HF_FIXTURES, "bert"),
                         data=[str(data_dir / "labelled.txt")], output=str(tmp_path / "run"), **SMALL)
    with pytest.raises(ValueError, match="has no tokenizer of ours beside it; .* --tokenizer FOLDER"):
        train(config)


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(data_dir, tmp_path):
    from keras_transformer.text.tokenizers import save_tokenizer, train_tokenizer

    save_tokenizer(train_tokenizer("bytes", num_sentinels=0), str(tmp_path / "bytes"))
    config = TrainConfig(task="classify", init=os.path.join(HF_FIXTURES, "bert"), tokenizer=str(tmp_path / "bytes"),
                         data=[str(data_dir / "labelled.txt")], output=str(tmp_path / "run"), **SMALL)
    with pytest.raises(ValueError, match="the tokenizer has 259 ids but the model's vocabulary_size is 103"):
        train(config)


def test_lora_rank_trains_adapters_and_the_head_only(data_dir, wordpiece_dir, tmp_path):
    from keras_transformer.convert import from_huggingface

    options = dict(FEW, steps=10, checkpoint_every=10, batch_size=16, learning_rate=1e-2, validation_fraction=0.2)
    config = TrainConfig(task="classify", init=os.path.join(HF_FIXTURES, "bert"), tokenizer=wordpiece_dir,
                         data=[str(data_dir / "labelled.txt")], output=str(tmp_path / "run"), lora_rank=2, **options)
    train(config)
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")  # adapters merged: a plain model
    assert not any("lora" in v.path for v in model.weights)
    original = from_huggingface(os.path.join(HF_FIXTURES, "bert")).backbone
    block, start = model.backbone.encoder_blocks[0], original.encoder_blocks[0]
    # Frozen: the key projection and the feed-forward are the checkpoint's; query and value moved.
    assert (block.self_attention._key_dense.kernel.numpy() == start.self_attention._key_dense.kernel.numpy()).all()
    assert not (block.self_attention._query_dense.kernel.numpy() == start.self_attention._query_dense.kernel.numpy()).all()
    with pytest.raises(ValueError, match="--lora-rank must be an integer >= 0"):
        TrainConfig(lora_rank=-1)
