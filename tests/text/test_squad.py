"""SQuAD v1.1 files and the official exact-match / F1 scores (hand-computed values)."""

import json

import pytest

from keras_transformer.text.squad import (
    QAExample,
    exact_match_score,
    f1_score,
    normalize_answer,
    parse_squad,
    read_squad,
    sample_paths,
    squad_scores,
)


def test_normalisation_is_the_official_one():
    assert normalize_answer("The  Cat's hat!") == "cats hat"
    assert normalize_answer("An apple, a pear and THE end.") == "apple pear and end"
    assert normalize_answer("theme anthem") == "theme anthem"  # articles only as whole words
    assert normalize_answer("json.dumps()") == "jsondumps"


def test_exact_match_and_f1_by_hand():
    assert exact_match_score("the json module", "JSON module.") == 1.0
    assert exact_match_score("json", "json module") == 0.0
    # "json module" vs "json": 1 common token, precision 1/2, recall 1 -> F1 2/3
    assert f1_score("the json module", "json") == pytest.approx(2 / 3)
    # "x b c" vs "b c d e": 2 common, precision 2/3, recall 2/4 -> F1 2 * (1/3) / (7/6) = 4/7
    assert f1_score("x b c", "b c d e") == pytest.approx(4 / 7)
    assert f1_score("b b", "b") == pytest.approx(2 / 3)  # a repeated token counts once per reference token
    assert f1_score("the", "a") == 0.0  # both empty once normalised: no common token


def test_scores_take_the_best_reference_and_count_missing_predictions():
    examples = [QAExample("1", "q", "c", (("json module", 0), ("the json", 0))),
                QAExample("2", "q", "c", (("three words here", 0),)),
                QAExample("3", "q", "c", (("x", 0),))]
    scores = squad_scores({"1": "json", "2": "three words"}, examples)
    # 1: EM 1 ("json" == "the json"), F1 1; 2: EM 0, F1 2 * 1 * (2/3) / (5/3) = 0.8; 3: no prediction -> 0
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * 1.8 / 3)


def _document(qa, context="The json module reads JSON."):
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [qa]}]}]}


def test_parse_squad_reads_answers_and_rejects_bad_entries():
    good = {"id": "q1", "question": "Which module?", "answers": [{"text": "json", "answer_start": 4}]}
    (example,) = parse_squad(_document(good))
    assert example == QAExample("q1", "Which module?", "The json module reads JSON.", (("json", 4),))
    assert parse_squad(_document(dict(good, is_impossible=False)))[0].id == "q1"  # answerable v2 entries are fine
    cases = [
        (dict(good, is_impossible=True, answers=[]), "unanswerable questions .*is_impossible.* are not supported"),
        (dict(good, answers=[{"text": "json", "answer_start": 5}]), "answer 'json' is not in the context at "
                                                                      "answer_start=5"),
        (dict(good, question="  "), "question must be a non-empty string"),
        (dict(good, answers=[]), "\"answers\" must be a non-empty list"),
        ({k: v for k, v in good.items() if k != "id"}, "\"id\" must be a non-empty string"),
    ]
    for qa, message in cases:
        with pytest.raises(ValueError, match=message):
            parse_squad(_document(qa), source="x.json")
    with pytest.raises(ValueError, match="x.json: not SQuAD JSON"):
        parse_squad({"version": "1.1"}, source="x.json")


def test_read_squad_names_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json: cannot read it as SQuAD JSON"):
        read_squad([str(tmp_path / "broken.json")])
    with pytest.raises(ValueError, match="matches no SQuAD JSON file"):
        read_squad([str(tmp_path / "missing-*.json")])
    qa = {"id": "q1", "question": "Which module?", "answers": [{"text": "json", "answer_start": 4}]}
    (tmp_path / "two").mkdir()
    for name in ("a.json", "b.json"):
        (tmp_path / "two" / name).write_text(json.dumps(_document(qa)), encoding="utf-8")
    with pytest.raises(ValueError, match=r"question ids must be unique; repeated: \['q1'\]"):
        read_squad([str(tmp_path / "two")])


def test_the_built_in_sample():
    train, validation, unseen = (read_squad([sample_paths(split)]) for split in ("train", "validation", "unseen"))
    assert (len(train), len(validation), len(unseen)) == (125, 43, 32)
    # validation asks about training paragraphs in other words, with answers training has for them
    answers = {(e.context, e.answers[0][0]) for e in train}
    assert all((e.context, e.answers[0][0]) in answers for e in validation)
    assert not {e.question for e in validation} & {e.question for e in train}
    assert not {e.context for e in unseen} & {e.context for e in train}
