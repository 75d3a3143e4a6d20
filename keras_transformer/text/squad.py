"""SQuAD v1.1 data and scores: reading the JSON format, and the official exact-match and F1.

    examples = read_squad(["train-v1.1.json"])                  # [QAExample]
    scores = squad_scores({"q1": "the json module"}, examples)   # {"exact_match": 100.0, "f1": 100.0}

The format:

    {"data": [{"title": ..., "paragraphs": [{"context": "...",
        "qas": [{"id": "q1", "question": "...", "answers": [{"text": "...", "answer_start": 17}]}]}]}]}

Every answer's `text` must be the context's characters from `answer_start`
on; a mismatch, an empty field or a missing key is a `ValueError` naming the
file and the question id. SQuAD v2's unanswerable questions
(`"is_impossible": true`) are rejected: the models here always point at a
span. `sample_paths()` gives the small built-in sample (paragraphs about the
Python standard library written for this package, not SQuAD's text).

The scores are those of the official v1.1 evaluation script: answers are
normalised (lower case, punctuation and the articles a/an/the removed,
whitespace folded), each prediction is scored against its best-matching
reference answer, and the means are reported in percent. Nothing here
imports TensorFlow.
"""

import collections
import dataclasses
import glob
import json
import os
import re
import string

SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SAMPLE_FILES = {"train": "qa_sample_train.json", "validation": "qa_sample_dev.json",
                "unseen": "qa_sample_unseen.json"}


@dataclasses.dataclass(frozen=True)
class QAExample:
    """One question on one context; `answers` are (text, character start) pairs (the first one trains)."""

    id: str
    question: str
    context: str
    answers: tuple


def sample_paths(split):
    """The built-in sample's file: "train"; "validation" (the training paragraphs, their questions asked
    in other words); "unseen" (other paragraphs: far beyond what a model trained from scratch on the
    sample can read). Made by data/make_qa_sample.py."""
    return os.path.join(SAMPLE_DIR, SAMPLE_FILES[split])


def _expand(patterns):
    paths = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        if os.path.isdir(pattern):
            found = sorted(glob.glob(os.path.join(pattern, "*.json")))
        else:
            found = sorted(glob.glob(pattern)) or ([pattern] if os.path.isfile(pattern) else [])
        if not found:
            raise ValueError(f"{pattern!r} matches no SQuAD JSON file")
        paths.extend(found)
    return paths


def read_squad(patterns):
    """[QAExample] from SQuAD JSON files (paths, globs or folders of *.json); ValueError on bad data."""
    examples = []
    for path in _expand(patterns):
        try:
            with open(path, encoding="utf-8-sig") as handle:
                document = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read it as SQuAD JSON ({error})") from None
        examples.extend(parse_squad(document, source=path))
    ids = collections.Counter(example.id for example in examples)
    repeated = sorted(i for i, count in ids.items() if count > 1)
    if repeated:
        raise ValueError(f"question ids must be unique; repeated: {repeated[:5]}")
    return examples


def _text(value, what, where):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {what} must be a non-empty string; received {value!r}")
    return value


def parse_squad(document, source="input"):
    """[QAExample] from a parsed SQuAD document (see the module docstring)."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise ValueError(f"{source}: not SQuAD JSON: expected an object with a \"data\" list")
    examples = []
    for article_index, article in enumerate(document["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise ValueError(f"{source}: data[{article_index}] has no \"paragraphs\" list")
        for paragraph_index, paragraph in enumerate(paragraphs):
            where = f"{source} data[{article_index}].paragraphs[{paragraph_index}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise ValueError(f"{where}: expected an object with \"context\" and a \"qas\" list")
            context = _text(paragraph.get("context"), "context", where)
            examples.extend(_question(qa, context, f"{where}.qas[{i}]") for i, qa in enumerate(paragraph["qas"]))
    if not examples:
        raise ValueError(f"{source}: no questions")
    return examples


def _question(qa, context, where):
    if not isinstance(qa, dict):
        raise ValueError(f"{where}: expected a question object")
    qid = qa.get("id")
    if not isinstance(qid, str) or not qid:
        raise ValueError(f"{where}: \"id\" must be a non-empty string; received {qid!r}")
    where = f"{where} (id {qid!r})"
    if qa.get("is_impossible"):
        raise ValueError(f"{where}: unanswerable questions (SQuAD v2 \"is_impossible\": true) are not supported; "
                         f"remove them, or keep only answerable ones")
    question = _text(qa.get("question"), "question", where)
    answers = qa.get("answers")
    if not isinstance(answers, list) or not answers:
        raise ValueError(f"{where}: \"answers\" must be a non-empty list")
    spans = []
    for answer in answers:
        text = _text(answer.get("text") if isinstance(answer, dict) else None, "answer text", where)
        start = answer.get("answer_start")
        if isinstance(start, bool) or not isinstance(start, int) or context[start:start + len(text)] != text:
            raise ValueError(f"{where}: answer {text!r} is not in the context at answer_start={start!r}")
        spans.append((text, start))
    return QAExample(qid, question, context, tuple(spans))


# ------------------------------------------------------------------ official v1.1 scores


def normalize_answer(text):
    """Lower case, no punctuation, no articles (a, an, the), whitespace folded (the official rule)."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_score(prediction, reference):
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1_score(prediction, reference):
    """Token-level F1 of the normalised answers (bags of words)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = collections.Counter(predicted) & collections.Counter(expected)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, examples):
    """{"exact_match", "f1"} in percent: each example's prediction (id -> text) against its best answer.

    An example without a prediction scores 0, as in the official script."""
    if not examples:
        raise ValueError("squad_scores needs at least one example")
    exact = f1 = 0.0
    for example in examples:
        if example.id not in predictions:
            continue
        prediction = predictions[example.id]
        references = [text for text, _ in example.answers]
        exact += max(exact_match_score(prediction, reference) for reference in references)
        f1 += max(f1_score(prediction, reference) for reference in references)
    return {"exact_match": 100.0 * exact / len(examples), "f1": 100.0 * f1 / len(examples)}
