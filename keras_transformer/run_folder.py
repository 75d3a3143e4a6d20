"""A training run's folder: its one definition, written by `python -m training` and read by export.

    OUTPUT/model.keras                          the final model (once training ends)
    OUTPUT/config.json                          the model's Keras config (`keras_config`), class `labels`,
                                                `question_answering` (qa runs: QASettings, the windows
                                                and answer length export reuses), ...
    OUTPUT/tokenizer/                           keras_transformer.text.save_tokenizer (text tasks; an image
                                                classifier's config.json has the image size and class labels)
    OUTPUT/predictions.json                     qa runs: {question id: answer text} on the validation
                                                questions (the official SQuAD scripts read it)
    OUTPUT/checkpoints/ckpt-00000100/           model.weights.h5 + state.json {"step", "weights_sha256", ...}
    OUTPUT/checkpoints/.tmp-ckpt-00000200-PID/  a checkpoint being written (never read)

A checkpoint folder appears under its final name only once complete (an
atomic rename), and is used only while its weights match the SHA-256 its
state.json records.
"""

import hashlib
import json
import os
import re

MODEL_FILE = "model.keras"
RUN_CONFIG = "config.json"
TOKENIZER_DIR = "tokenizer"
CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"
PREDICTIONS_FILE = "predictions.json"
QA_SETTINGS = "question_answering"  # config.json key
CHECKPOINT_NAME = re.compile(r"^ckpt-(\d{8})$")
PARTIAL_PREFIX = ".tmp-ckpt-"


def run_description(folder):
    """The run's `config.json` (a dict with `keras_config`), or None when `folder` has none."""
    path = os.path.join(folder, RUN_CONFIG)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    return config if isinstance(config, dict) and "keras_config" in config else None


def checkpoint_name(step):
    return f"ckpt-{step:08d}"


def checkpoint_steps(directory):
    """Steps of the final-named checkpoint folders in `directory` (OUTPUT/checkpoints), oldest first."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(m.group(1)) for m in map(CHECKPOINT_NAME.match, os.listdir(directory)) if m)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint_state(folder):
    """A checkpoint folder's state dict once its weights match it; ValueError saying what is wrong."""
    try:
        with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"unreadable {STATE_FILE}: {error}") from None
    if not isinstance(state, dict) or "weights_sha256" not in state:
        raise ValueError(f"{STATE_FILE} is not an object with weights_sha256")
    match = CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(folder)))
    if match and state.get("step") != int(match.group(1)):
        raise ValueError(f"{STATE_FILE} says step {state.get('step')!r}")
    try:
        matches = sha256(os.path.join(folder, WEIGHTS_FILE)) == state["weights_sha256"]
    except OSError as error:
        raise ValueError(f"unreadable {WEIGHTS_FILE}: {error}") from None
    if not matches:
        raise ValueError("the weights do not match their recorded SHA-256")
    return state
