"""Where an export's model and tokenizer come from: memory, a `.keras` file, a run folder or a checkpoint.

A run folder is what `python -m training` writes (training/run.py):

    OUTPUT/model.keras                          the final model (used when present)
    OUTPUT/config.json                          {"keras_config", "labels", ...}
    OUTPUT/tokenizer/                           keras_transformer.text.save_tokenizer
    OUTPUT/checkpoints/ckpt-00000100/           model.weights.h5 + state.json {"step", "weights_sha256"}

Exporting OUTPUT uses `model.keras`, or while training runs (no model.keras
yet) the newest checkpoint whose weights match their recorded SHA-256.
Exporting `OUTPUT/checkpoints/ckpt-N` uses that checkpoint. The model of a
checkpoint is rebuilt from `config.json`'s Keras config. Class labels in
`config.json` name `classify`'s classes; a qa run's `question_answering`
settings (window length, document stride, question and answer lengths) set
up the `answer` signature. Any folder with a `model.keras`
(or a single `*.keras`) and a `tokenizer/` works the same way.
"""

import os

import keras

from keras_transformer.run_folder import (
    CHECKPOINT_NAME,
    CHECKPOINTS_DIR,
    MODEL_FILE,
    QA_SETTINGS,
    RUN_CONFIG,
    STATE_FILE,
    TOKENIZER_DIR,
    WEIGHTS_FILE,
    checkpoint_name,
    checkpoint_steps,
    read_checkpoint_state,
    run_description,
)
from keras_transformer.text.tokenizers import CONFIG_FILE


def _verified_weights(checkpoint):
    """The checkpoint's weights file if it matches its state.json, else None."""
    try:
        read_checkpoint_state(checkpoint)
    except ValueError:
        return None
    return os.path.join(checkpoint, WEIGHTS_FILE)


def _newest_checkpoint(folder):
    directory = os.path.join(folder, CHECKPOINTS_DIR)
    for step in reversed(checkpoint_steps(directory)):
        if _verified_weights(os.path.join(directory, checkpoint_name(step))):
            return os.path.join(directory, checkpoint_name(step))
    return None


def _from_checkpoint(checkpoint, config):
    weights = _verified_weights(checkpoint)
    if weights is None:
        raise ValueError(f"checkpoint {checkpoint!r} has no weights matching the SHA-256 in its {STATE_FILE}")
    import keras_transformer  # noqa: F401  (registers the classes the config names)

    model = keras.saving.deserialize_keras_object(config["keras_config"])
    model.load_weights(weights)
    return model


def _find_model_file(folder):
    if os.path.isfile(os.path.join(folder, MODEL_FILE)):
        return os.path.join(folder, MODEL_FILE)
    found = sorted(name for name in os.listdir(folder) if name.endswith(".keras"))
    if len(found) > 1:
        raise ValueError(f"{folder!r} holds several .keras files {found}; pass the one to export")
    return os.path.join(folder, found[0]) if found else None


def find_tokenizer_folder(folder):
    """The saved-tokenizer folder of a run folder, or None."""
    for candidate in (os.path.join(folder, TOKENIZER_DIR), folder):
        if os.path.isfile(os.path.join(candidate, CONFIG_FILE)):
            return candidate
    return None


def load_model_path(path):
    """(model, tokenizer folder or None, labels or None, question-answering settings dict or None) from a
    `.keras` file, run folder or checkpoint."""
    import keras_transformer  # noqa: F401  (registers the layers and models the file uses)

    if os.path.isfile(path):
        if not path.endswith(".keras"):
            raise ValueError(f"{path!r} is not a .keras file; pass a .keras file, a run or checkpoint folder "
                             "or a keras.Model")
        return keras.saving.load_model(path, compile=False), None, None, None
    if not os.path.isdir(path):
        raise ValueError(f"model path {path!r} does not exist")
    checkpoint = path if CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(path))) else None
    folder = os.path.dirname(os.path.dirname(os.path.normpath(path))) if checkpoint else path
    config = run_description(folder)
    labels = config.get("labels") if config else None
    qa_settings = config.get(QA_SETTINGS) if config else None
    model_file = None if checkpoint else _find_model_file(folder)
    if model_file is not None:
        return keras.saving.load_model(model_file, compile=False), find_tokenizer_folder(folder), labels, qa_settings
    checkpoint = checkpoint or (_newest_checkpoint(folder) if config else None)
    if checkpoint is None or config is None:
        raise ValueError(f"{path!r} holds no {MODEL_FILE} and no checkpoint with a {RUN_CONFIG} to rebuild "
                         f"the model from; it has {sorted(os.listdir(path))[:20]}")
    return _from_checkpoint(checkpoint, config), find_tokenizer_folder(folder), labels, qa_settings


def resolve(model, tokenizer, labels=None, question_answering=None):
    """(keras model, tokenizer or None, labels, question-answering settings, description of the source) from
    what `export` was given; given labels and settings override a run folder's."""
    source = "in-memory model"
    if isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        model, found, found_labels, found_settings = load_model_path(source)
        tokenizer = found if tokenizer is None else tokenizer
        labels = found_labels if labels is None else labels
        question_answering = dict(found_settings or {}, **(question_answering or {}))
    elif not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, a .keras file or a run folder; received {type(model).__name__}")
    if isinstance(tokenizer, (str, os.PathLike)):
        from keras_transformer.text.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(os.fspath(tokenizer))
    if not model.built:
        raise ValueError(f"{type(model).__name__} is not built; call it once (or use a functional model) before export")
    return model, tokenizer, labels, question_answering, source
