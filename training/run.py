"""One training run, end to end: `train(config)` (what the CLI calls).

Order matters: the strategy first (TensorFlow fixes devices and collectives
at start-up), then the seed, data and tokenizer, then model, optimizer and
compile inside `strategy.scope()`, then the newest valid checkpoint, then
`fit` on the stream from that step. Only the chief writes into OUTPUT.

OUTPUT layout:

    run_config.json      this TrainConfig (a rerun must match it to resume)
    config.json          the model: family, task, class, backbone config, labels, Keras config
    tokenizer/           the tokenizer (keras_transformer.text.load_tokenizer); text tasks only
    checkpoints/         ckpt-<step>/ {model.weights.h5, state.json}, the newest `keep_checkpoints`
    logs/                TensorBoard: train/ and validation/ scalars against the step
    model.keras          the final model, uncompiled: loads with a plain `import keras_transformer`
    summary.json         the figures the CLI prints at the end
    predictions.json     qa: {question id: answer} on the validation questions (official SQuAD format)
    workers/             multi-worker only: each worker's final step and weights fingerprint
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.run_folder import CHECKPOINTS_DIR, MODEL_FILE, PREDICTIONS_FILE, RUN_CONFIG, TOKENIZER_DIR
from keras_transformer.text.question_answering import predict_answers, window_builder
from keras_transformer.text.squad import squad_scores
from keras_transformer.text.tokenizers import save_tokenizer
from training import data, distribution, modeling
from training.callbacks import Checkpointer, Progress, StepTracker, TensorBoardLogger
from training.checkpoints import CheckpointManager, quiet_numpy_copy_warnings
from training.config import TASK_FAMILIES, TrainConfig
from training.optimizer import build_optimizer, wrap_for_policy

logger = logging.getLogger(__name__)

RUN_FILES = ("run_config.json", RUN_CONFIG, "summary.json", MODEL_FILE, TOKENIZER_DIR, CHECKPOINTS_DIR, "logs",
             "workers", PREDICTIONS_FILE)


@dataclasses.dataclass
class Setup:
    """Everything a run decided before `fit`."""

    strategy: object
    chief: bool
    output: str
    manager: CheckpointManager
    family: str
    corpus: data.Corpus
    tokenizer: object
    model: keras.Model
    shapes: data.Shapes
    total: int
    validation: tf.data.Dataset
    validation_steps: int
    entropy: float = None  # pretraining: the corpus' unigram entropy
    qa: object = None  # qa: the QASettings of the windows and answers
    answer_windows: object = None  # qa: the traced window builder of the answer evaluation
    start: int = 0
    state: dict = dataclasses.field(default_factory=dict)


def _write_json(path, value):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
    os.replace(temporary, path)


def _earlier_run(output, config, manager):
    """(step, state) of the newest valid checkpoint of the same run in `output`, or None.

    ValueError when `output` holds another run (other settings, or checkpoints without a
    matching run_config.json), unless `--overwrite`."""
    if config.overwrite:
        return None
    path = os.path.join(output, "run_config.json")
    if os.path.isfile(path):
        changed = config.differences(TrainConfig.from_json_file(path))
        if changed:
            raise ValueError(f"{output} holds a run with other settings ({', '.join(changed)}); rerun it with "
                             f"the same options to resume, pass --overwrite to start over, or choose another --output")
        latest = manager.latest()
        if latest:
            return latest
    if manager.steps():
        raise ValueError(f"{manager.directory} holds checkpoints this run cannot resume from (see the warnings); "
                         f"pass --overwrite to start over or choose another --output")
    return None


def _clear(output):
    for name in RUN_FILES:
        path = os.path.join(output, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _weights_fingerprint(model):
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def _sources(config, output, resuming):
    """(family, init, tokenizer folder, labels, saved model description) before the model is built."""
    if resuming:
        with open(os.path.join(output, RUN_CONFIG), encoding="utf-8") as handle:
            described = json.load(handle)
        return described["family"], None, os.path.join(output, TOKENIZER_DIR), described.get("labels"), described
    init = modeling.load_init(config.init) if config.init else None
    family = init.family if init else config.resolved_family
    needed = TASK_FAMILIES.get(config.task, config.family)
    if needed and family != needed:
        raise ValueError(f"{config.task} trains a {needed} model; --init {config.init} is {family}")
    if family == "vit" and config.task != "classify-images":
        raise ValueError(f"--init {config.init} is a ViT: it trains with the classify-images task")
    if init and family != "vit" and not init.tokenizer_dir and not config.tokenizer:
        raise ValueError(f"--init {config.init} has no tokenizer of ours beside it; pass the one its "
                         f"vocabulary was made with: --tokenizer FOLDER")
    tokenizer_dir = config.tokenizer or (init.tokenizer_dir if init else None)
    return family, init, tokenizer_dir, (init.labels if init else None), None


def prepare(config, echo):
    """Strategy, data, tokenizer, model (compiled, restored): a `Setup`."""
    strategy = distribution.make_strategy(config)
    chief, replicas = distribution.is_chief(strategy), strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"--batch-size {config.batch_size} must be a multiple of the {replicas} replicas")
    keras.utils.set_random_seed(config.seed)  # before any pipeline (see text.tokenizers.refresh_graph_resources)

    output = config.output_dir(config.family or (modeling.peek_family(config.init) if config.init else None))
    manager = CheckpointManager(os.path.join(output, CHECKPOINTS_DIR), config.keep_checkpoints, writer=chief)
    latest = _earlier_run(output, config, manager)
    if chief and config.overwrite:
        _clear(output)
    family, init, tokenizer_dir, labels, described = _sources(config, output, latest)
    image_config = modeling.image_config(config, init, described) if family == "vit" else None
    corpus = data.load_corpus(config, labels=labels, model_config=image_config)
    tokenizer = data.make_tokenizer(config, family, corpus, tokenizer_dir)
    vocabulary = int(tokenizer.vocabulary_size()) if tokenizer is not None else None
    skipped = "; ".join(f"{path} ({reason})" for path, reason in corpus.skipped)
    echo(f"data: {corpus.source}: {len(corpus.train)} train / {len(corpus.validation)} validation {corpus.unit}"
         + (f"; skipped {len(corpus.skipped)} bad file(s): {skipped}" if skipped else ""))

    with strategy.scope():
        if latest:
            model = keras.saving.deserialize_keras_object(described["keras_config"])
        else:
            model = modeling.build_model(config, family, vocabulary, config.precision, init,
                                         num_classes=len(corpus.labels) or None)
        if config.lora_rank:
            model.backbone.enable_lora(config.lora_rank)  # before any checkpoint is restored
    modeling.check_vocabulary(model, vocabulary)
    shapes = data.shapes_for(config, family, model.backbone.model_config.max_sequence_length,
                             getattr(model.backbone.model_config, "image_size", None))
    entropy = data.unigram_entropy(corpus.train, tokenizer) if config.task == "pretrain" else None
    qa = data.qa_settings(config, shapes) if config.task == "qa" else None
    total = config.steps
    if config.epochs:
        total = data.steps_for_epochs(config, data.one_pass(config, family, tokenizer, corpus, shapes))
    validation, validation_steps = data.validation_set(config, family, tokenizer, corpus, shapes,
                                                       config.batch_size, replicas)
    with strategy.scope():
        optimizer = wrap_for_policy(build_optimizer(config, model, total), config.precision)
        jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
        model.compile(optimizer=optimizer, jit_compile=jit, steps_per_execution=config.steps_per_execution)
        model.optimizer.build(model.trainable_variables)
    setup = Setup(strategy, chief, output, manager, family, corpus, tokenizer, model, shapes, total,
                  validation.with_options(distribution.dataset_options()), validation_steps, entropy, qa)
    if latest:
        setup.start, setup.state = latest
        manager.restore(model, setup.start)
    distribution.check_same_step(strategy, setup.start)
    if tokenizer is not None:
        inputs = f"tokenizer {type(tokenizer).__name__} ({vocabulary} ids)"
        rows = f"{config.batch_size} x {shapes.tokens_per_row} tokens"
    else:
        inputs = f"{len(corpus.labels)} classes"
        rows = (f"{config.batch_size} images of {shapes.image_size}x{shapes.image_size} pixels "
                f"({shapes.tokens_per_row} tokens each)")
    echo(f"model: {type(model).__name__} ({family}, {model.count_params():,} parameters), {inputs}, "
         f"{config.strategy} strategy with {replicas} replica(s), {config.precision}; {total} steps of {rows}")
    if chief:
        os.makedirs(output, exist_ok=True)
        manager.remove_partial()
        if not latest:
            _write_json(os.path.join(output, "run_config.json"), config.to_dict())
            _write_json(os.path.join(output, RUN_CONFIG),
                        modeling.describe(model, family, config, corpus.labels, shapes, qa))
            if tokenizer is not None:
                save_tokenizer(tokenizer, os.path.join(output, TOKENIZER_DIR))
    return setup


def train(config, callbacks=(), echo=logger.info):
    """Runs (or resumes) the training `config` describes; returns the summary dict.

    Args:
        callbacks: extra Keras callbacks (tests use them to interrupt a run).
        echo: where lines for people go (the CLI passes `print`).
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"training runs on the TensorFlow backend (tf.data, tf.distribute); "
                         f"KERAS_BACKEND is {keras.backend.backend()!r}")
    with _op_determinism(config.deterministic):
        return _train(config, callbacks, echo)


@contextlib.contextmanager
def _op_determinism(enabled):
    """Deterministic TensorFlow ops for the run only (the switch is process-wide; a caller such as a
    test session keeps its own setting afterwards)."""
    from tensorflow.python.framework import config as tf_config  # the public API can only switch it on

    before = tf_config.is_op_determinism_enabled()
    if enabled:
        tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if before != tf_config.is_op_determinism_enabled():
            (tf_config.enable_op_determinism if before else tf_config.disable_op_determinism)()


def _train(config, callbacks, echo):
    started = time.perf_counter()
    s = prepare(config, echo)
    model, start, total = s.model, s.start, s.total
    tokens_per_step = config.batch_size * s.shapes.tokens_per_row
    # Throughput for people: tokens/s for text, images/s for images.
    unit, per_step = ("tokens", tokens_per_step) if s.tokenizer is not None else ("images", config.batch_size)
    if start:
        initial = s.state["initial_validation"]
        echo(f"resuming from {s.manager.path(start)} (step {start} of {total})")
    else:
        initial = model.evaluate(s.validation, steps=s.validation_steps, verbose=0, return_dict=True)
        if s.qa:
            initial.update(_answer_scores(s)[0])
    history = list(s.state.get("history", []))
    verbose = (2 if config.verbose is None else config.verbose) if s.chief else 0

    tracker = StepTracker(start, total, config.steps_per_execution)
    checkpointer = Checkpointer(s.manager, tracker, history, {"initial_validation": initial, "total_steps": total})
    run_callbacks = [tracker, checkpointer, keras.callbacks.TerminateOnNaN(),
                     Progress(tracker, verbose, per_step, echo, unit)]
    if s.chief and start < total:
        run_callbacks.append(TensorBoardLogger(os.path.join(s.output, "logs"), tracker, config.log_every,
                                               per_step, unit))
    if start < total:
        stream = data.training_stream(config, s.family, s.tokenizer, s.corpus, s.shapes, start)
        interval = config.checkpoint_every
        with warnings.catch_warnings():
            # Masked-LM pre-training leaves BERT's pooler (for classifiers) without gradients.
            warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooled_dense")
            model.fit(stream.with_options(distribution.dataset_options()), steps_per_epoch=interval,
                      epochs=math.ceil(total / interval), initial_epoch=start // interval,
                      validation_data=s.validation, validation_steps=s.validation_steps,
                      callbacks=run_callbacks + list(callbacks), shuffle=False, verbose=0)
    summary = _summary(config, s, tracker, checkpointer, initial, history, time.perf_counter() - started)
    predictions = None
    if s.qa and math.isfinite(summary["final_validation"]["loss"]):
        scores, predictions = _answer_scores(s)
        summary["final_validation"] = dict(summary["final_validation"], **scores)
    if config.strategy == "multi_worker":
        os.makedirs(os.path.join(s.output, "workers"), exist_ok=True)
        _write_json(os.path.join(s.output, "workers", f"{distribution.worker_name(s.strategy)}.json"),
                    {"step": tracker.step, "weights_sha256": summary["weights_sha256"]})
    if s.chief:
        model_file = os.path.join(s.output, MODEL_FILE)
        diverged = not math.isfinite(summary["final_validation"]["loss"])
        if not diverged and (start < total or not os.path.isfile(model_file)):
            _save_model(model, s.output)
        if os.path.isfile(model_file) and not diverged:
            summary["model_file"] = model_file
            summary["reload_difference"] = _reload_difference(model, model_file, s.validation)
        if predictions is not None:
            _write_json(os.path.join(s.output, PREDICTIONS_FILE), predictions)
        _write_json(os.path.join(s.output, "summary.json"), summary)
    return summary


def _answer_scores(s):
    """({"exact_match", "f1"}, {id: answer text}) of the model on the validation questions (qa runs)."""
    s.answer_windows = s.answer_windows or window_builder(s.tokenizer, s.qa)
    answers = predict_answers(s.model, s.tokenizer, s.corpus.validation, s.qa, windows=s.answer_windows)
    predictions = {qid: answer.text for qid, answer in answers.items()}
    return squad_scores(predictions, s.corpus.validation), predictions


def _summary(config, s, tracker, checkpointer, initial, history, seconds):
    """The run's figures (what summary.json holds and the CLI prints)."""
    final = {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")} if history else initial
    tokens_per_step = config.batch_size * s.shapes.tokens_per_row
    vocabulary = int(s.tokenizer.vocabulary_size()) if s.tokenizer is not None else None
    images = config.task == "classify-images"
    return {
        "task": config.task, "family": s.family, "model_class": type(s.model).__name__, "output": s.output,
        "parameters": int(s.model.count_params()), "strategy": config.strategy,
        "replicas": s.strategy.num_replicas_in_sync, "precision": config.precision, "steps": tracker.step,
        "total_steps": s.total, "resumed_from": s.start, "tokens_per_step": tokens_per_step,
        "vocabulary_size": vocabulary, "labels": s.corpus.labels or None, "batch_size": config.batch_size,
        "fit_seconds": (tracker.last_batch_at or tracker.started_at or 0) - (tracker.started_at or 0),
        "tokens_per_second": tracker.steady_rate() * tokens_per_step,  # compilation, validation excluded
        "images_per_second": tracker.steady_rate() * config.batch_size if images else None,
        "image_size": s.shapes.image_size,
        "seconds": seconds, "initial_validation": initial, "final_validation": final,
        "improved": bool(math.isfinite(final["loss"]) and final["loss"] < initial["loss"]),
        "unigram_entropy": s.entropy, "uniform_entropy": math.log(vocabulary) if vocabulary else None,
        "skipped_files": s.corpus.skipped,
        "checkpoint": checkpointer.last_path or (s.manager.path(s.start) if s.start else None),
        "weights_sha256": _weights_fingerprint(s.model),
    }


def _reload_difference(model, path, validation):
    """Largest |output difference| between `model` and its saved `model.keras` on a validation batch."""
    x, _, _ = next(iter(validation.take(1)))
    with quiet_numpy_copy_warnings():
        reloaded = keras.saving.load_model(path)
    expected, actual = model(x, training=False), reloaded(x, training=False)
    return max(float(np.max(np.abs(np.asarray(a, "float64") - np.asarray(b, "float64"))))
               for a, b in zip(keras.tree.flatten(expected), keras.tree.flatten(actual)))


def _save_model(model, output):
    """Writes OUTPUT/model.keras atomically (temporary name, then rename)."""
    path = os.path.join(output, MODEL_FILE)
    temporary = os.path.join(output, f".model-{os.getpid()}.keras")
    with quiet_numpy_copy_warnings():
        modeling.inference_copy(model).save(temporary)
    os.replace(temporary, path)
    return path
