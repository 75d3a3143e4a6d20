"""`python -m training qa`: a few steps on the built-in sample from a pre-trained encoder (`--init`), scores and
predictions in the run folder, the run exported and verified; the defaults; bad SQuAD data."""

import json
import os

import keras
import pytest

from keras_transformer.text.squad import read_squad, sample_paths
from tests.training.conftest import HF_FIXTURES
from tests.training.test_cli import run_main
from training.cli import parse_config

FEW = ["--steps", "4", "--checkpoint-every", "2", "--batch-size", "8", "--verbose", "0"]


@pytest.fixture(scope="module")
def qa_run(wordpiece_dir, tmp_path_factory):
    """4 steps of qa on the built-in sample, from the tiny Hugging Face BertForMaskedLM (a new span head on its
    encoder), in 32-token windows, through the CLI: (run folder, exit status)."""
    from training.cli import main

    output = tmp_path_factory.mktemp("qa") / "run"
    status = main(["qa", "--init", os.path.join(HF_FIXTURES, "bert"), "--tokenizer", wordpiece_dir,
                   "--sequence-length", "32", "--max-answer-length", "12", "--output", str(output)] + FEW)
    return output, status


def test_a_short_run_scores_the_validation_questions(qa_run):
    output, status = qa_run
    assert status in (0, 1)  # four steps need not lower the loss
    summary = json.loads((output / "summary.json").read_text())
    assert summary["model_class"] == "BertQuestionAnswering" and summary["steps"] == 4
    for figures in (summary["initial_validation"], summary["final_validation"]):
        assert 0 <= figures["exact_match"] <= figures["f1"] <= 100
    validation = read_squad([sample_paths("validation")])
    predictions = json.loads((output / "predictions.json").read_text())
    assert sorted(predictions) == sorted(e.id for e in validation)
    assert all(predictions[e.id] and predictions[e.id] in e.context for e in validation)
    described = json.loads((output / "config.json").read_text())
    assert described["question_answering"] == {"sequence_length": 32, "doc_stride": 16, "max_question_length": 8,
                                               "max_answer_length": 12}


def test_the_encoder_starts_from_the_init_checkpoint(qa_run):
    from keras_transformer.convert import from_huggingface

    model = keras.saving.load_model(qa_run[0] / "model.keras")
    original = from_huggingface(os.path.join(HF_FIXTURES, "bert")).backbone
    # Position rows 32-39 (past the 32-token windows) get no gradient and no weight decay.
    table = model.backbone.token_embedding.position_embedding.embeddings.numpy()
    expected = original.token_embedding.position_embedding.embeddings.numpy()
    assert (table[32:] == expected[32:]).all() and not (table[:32] == expected[:32]).all()


def test_the_run_exports_and_verifies(qa_run, tmp_path, capsys):
    from keras_transformer.export.__main__ import main

    assert main(["export", str(qa_run[0]), str(tmp_path / "qa"), "--signatures", "answer"]) == 0
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "qa")]) == 0
    report = capsys.readouterr().out
    assert "== signature answer" in report and "OK: servable by tensorflow_model_server" in report
    metadata = json.loads((tmp_path / "qa" / "1" / "assets.extra" / "keras_transformer_export.json").read_text())
    description = metadata["signatures"]["answer"]["description"]  # the run's settings, from its config.json
    assert "Windows of 32 tokens, 16 context tokens apart" in description and "at most 12 tokens" in description


def test_qa_defaults():
    command, config = parse_config(["qa"])
    assert (command, config.task, config.resolved_family, config.resolved_tokenizer_kind) == ("qa", "qa", "bert",
                                                                                              "wordpiece")
    assert config.output_dir() == "runs/bert-qa" and config.data == []


def test_squad_v2_unanswerable_questions_are_a_clear_error(tmp_path, capsys):
    document = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "Some text here.", "qas": [
        {"id": "a", "question": "What?", "answers": [{"text": "text", "answer_start": 5}], "is_impossible": False},
        {"id": "b", "question": "Who?", "answers": [], "is_impossible": True}]}]}]}
    (tmp_path / "v2.json").write_text(json.dumps(document), encoding="utf-8")
    status, _, err = run_main(["qa", "--data", str(tmp_path / "v2.json"), "--output", str(tmp_path / "run")] + FEW,
                              capsys)
    assert status == 2 and "(id 'b'): unanswerable questions" in err and "Traceback" not in err
