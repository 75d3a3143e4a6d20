"""Pre-training runs: output layout, logs, resume after a crash, damaged checkpoints, precision, families."""

import glob
import json
import logging
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text.span_corruption import span_corruption_lengths
from keras_transformer.text.tokenizers import load_tokenizer
from tests.test_case import run_in_fresh_process
from tests.training.conftest import SMALL
from training import optimizer as training_optimizer
from training.config import TrainConfig
from training.run import train


def test_output_layout(gpt_run):
    config, summary = gpt_run
    output = config.output
    assert sorted(os.listdir(output)) == ["checkpoints", "config.json", "logs", "model.keras", "run_config.json",
                                          "summary.json", "tokenizer"]
    assert sorted(os.listdir(os.path.join(output, "checkpoints"))) == ["ckpt-00000003", "ckpt-00000006"]
    assert sorted(os.listdir(os.path.join(output, "checkpoints", "ckpt-00000006"))) == ["model.weights.h5",
                                                                                         "state.json"]
    state = json.load(open(os.path.join(output, "checkpoints", "ckpt-00000006", "state.json")))
    assert state["step"] == 6 and [record["step"] for record in state["history"]] == [3, 6]
    assert {"loss", "val_loss", "val_perplexity", "learning_rate"} <= set(state["history"][-1])
    described = json.load(open(os.path.join(output, "config.json")))
    assert (described["family"], described["task"], described["model_class"]) == ("gpt", "pretrain", "GPTCausalLM")
    assert described["backbone_config"]["vocabulary_size"] == 259  # bytes + </s> <s> [MASK]
    assert TrainConfig.from_json_file(os.path.join(output, "run_config.json")) == config
    tokenizer = load_tokenizer(os.path.join(output, "tokenizer"))
    assert np.asarray(tokenizer("abc")).tolist() == [97, 98, 99]


def test_summary_reports_a_lower_validation_loss(gpt_run):
    _, summary = gpt_run
    assert summary["steps"] == 6 and summary["resumed_from"] == 0 and summary["improved"]
    assert summary["final_validation"]["loss"] < summary["initial_validation"]["loss"]
    assert summary["initial_validation"]["loss"] == pytest.approx(np.log(259), abs=0.1)  # near uniform at first
    assert 0 < summary["unigram_entropy"] < summary["uniform_entropy"] == pytest.approx(np.log(259))
    assert summary["tokens_per_step"] == 8 * 32 and summary["tokens_per_second"] > 0


def _events(folder):
    scalars = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


def test_tensorboard_scalars_against_the_step(gpt_run):
    config, _ = gpt_run
    train_scalars = _events(os.path.join(config.output, "logs", "train"))
    validation = _events(os.path.join(config.output, "logs", "validation"))
    assert [step for step, _ in train_scalars["loss"]] == [3, 6]
    assert [step for step, _ in validation["loss"]] == [3, 6]
    assert {"learning_rate", "batch_loss", "tokens_per_second", "perplexity"} <= set(train_scalars)
    assert [step for step, _ in train_scalars["batch_loss"]] == [2, 4, 6]
    history = json.load(open(os.path.join(config.output, "checkpoints", "ckpt-00000006", "state.json")))["history"]
    assert validation["loss"][-1][1] == pytest.approx(history[-1]["val_loss"], rel=1e-6)


def test_model_keras_loads_with_keras_transformer_only(gpt_run):
    config, _ = gpt_run
    path = os.path.join(config.output, "model.keras")
    out = run_in_fresh_process(
        "import keras, numpy as np, keras_transformer\n"
        f"model = keras.saving.load_model({path!r})\n"
        "ids = np.array([[72, 101, 108, 108, 111]], 'int32')\n"
        "logits = model({'token_ids': ids, 'padding_mask': np.ones_like(ids)})['logits']\n"
        "print(type(model).__name__, model.compiled, tuple(logits.shape))\n"
    )
    assert out.strip().splitlines()[-1] == "GPTCausalLM False (1, 5, 259)"


def test_rerunning_a_finished_run_trains_nothing(gpt_run):
    config, summary = gpt_run
    again = train(config)
    assert (again["resumed_from"], again["steps"]) == (6, 6)
    assert again["weights_sha256"] == summary["weights_sha256"]
    assert again["final_validation"] == pytest.approx(summary["final_validation"])


def test_rerunning_with_other_settings_is_refused(gpt_run):
    config, _ = gpt_run
    changed = TrainConfig.from_dict(dict(config.to_dict(), steps=9, learning_rate=1e-3, verbose=2))
    with pytest.raises(ValueError, match=r"holds a run with other settings \(learning_rate, steps\)"):
        train(changed)


class Crash(keras.callbacks.Callback):
    """Raises after batch `at` (counted by the optimizer), as a kill would stop the run."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.at:
            raise KeyboardInterrupt("simulated crash")


def test_resume_after_a_crash_equals_an_uninterrupted_run(data_dir, tmp_path, caplog):
    common = dict(SMALL, data=[str(data_dir / "corpus.txt")], steps=8, checkpoint_every=2, deterministic=True)
    uninterrupted = train(TrainConfig(output=str(tmp_path / "a"), **common))
    config = TrainConfig(output=str(tmp_path / "b"), **common)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[Crash(at=7)])
    checkpoints = tmp_path / "b" / "checkpoints"
    assert sorted(os.listdir(checkpoints)) == ["ckpt-00000004", "ckpt-00000006"]
    # A half-written checkpoint (what a kill while saving leaves) and a damaged newest one.
    (checkpoints / ".tmp-ckpt-00000008-12345").mkdir()
    (checkpoints / ".tmp-ckpt-00000008-12345" / "model.weights.h5").write_bytes(b"\x89HDF half")
    weights = checkpoints / "ckpt-00000006" / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="training.checkpoints"):
        resumed = train(config)
    assert "ignoring the damaged checkpoint" in caplog.text and "ckpt-00000006" in caplog.text
    assert (resumed["resumed_from"], resumed["steps"]) == (4, 8)
    assert resumed["weights_sha256"] == uninterrupted["weights_sha256"]  # same data, same state: same weights
    assert sorted(os.listdir(checkpoints)) == ["ckpt-00000006", "ckpt-00000008"]  # rewritten, temp removed
    history = json.load(open(checkpoints / "ckpt-00000008" / "state.json"))["history"]
    assert [record["step"] for record in history] == [2, 4, 6, 8]
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled()  # switched on for the runs only


def test_checkpoints_of_another_run_are_not_resumed(data_dir, tmp_path):
    config = TrainConfig(output=str(tmp_path / "run"), data=[str(data_dir / "corpus.txt")], **SMALL)
    (tmp_path / "run" / "checkpoints" / "ckpt-00000003").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds checkpoints this run cannot resume from"):
        train(config)


class RecordOptimizer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.optimizer = self.model.optimizer


def test_mixed_float16_scales_the_loss_and_stays_finite(data_dir, tmp_path):
    record = RecordOptimizer()
    config = TrainConfig(output=str(tmp_path / "run"), data=[str(data_dir / "corpus.txt")], precision="mixed_float16",
                         **SMALL)
    summary = train(config, callbacks=[record])
    assert isinstance(record.optimizer, training_optimizer.LossScaleOptimizer)
    assert isinstance(record.optimizer.inner_optimizer, training_optimizer.AdamW)
    history = json.load(open(tmp_path / "run" / "checkpoints" / "ckpt-00000006" / "state.json"))["history"]
    assert all(np.isfinite(record[key]) for record in history for key in ("loss", "val_loss"))
    assert summary["improved"]
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.dtype_policy.name == "mixed_float16"
    assert all(v.dtype == "float32" for v in model.weights)


@pytest.mark.parametrize("family, preset, model_class", [("bert", "bert_test", "BertMaskedLM"),
                                                         ("t5", "t5_tiny", "T5Seq2SeqLM")])
def test_bert_and_t5_pretraining_objectives(family, preset, model_class, data_dir, tmp_path):
    config = TrainConfig(output=str(tmp_path / family), family=family, preset=preset,
                         data=[str(data_dir / "corpus.txt")], **SMALL)
    summary = train(config)
    assert summary["model_class"] == model_class and summary["improved"]
    if family == "t5":  # span corruption: targets of sentinels and spans, 100 sentinel ids
        assert summary["vocabulary_size"] == 359
        assert summary["tokens_per_step"] == 8 * (32 + span_corruption_lengths(32)[1])
    shutil.rmtree(tmp_path / family)
