"""Callbacks of a run: the step counter, checkpoints, progress for people, TensorBoard.

`model.fit` runs "epochs" of `checkpoint_every` steps over an endless
stream; after each, Keras validates, then these callbacks checkpoint, print
and log. `StepTracker` counts consumed batches (the data position) and stops
`fit` at the last step, also when that is mid-interval.
"""

import math
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

TRAIN_KEYS = ("loss", "accuracy", "perplexity")
# tf.summary.scalar lives in the tensorboard package, which TensorFlow does not require; the
# core `tf.summary.write` with the scalars plugin's metadata writes the same event records.
SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)


def _scalar(tag, value, step):
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=SCALAR)


def _learning_rate(model):
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class StepTracker(keras.callbacks.Callback):
    """Counts consumed batches from `start`; stops training at `total`. Put it first."""

    def __init__(self, start, total, steps_per_execution=1):
        super().__init__()
        self.step, self.start, self.total = start, start, total
        self.steps_per_execution = steps_per_execution
        self.started_at = self.interval_started_at = self.last_batch_at = self.first_batch_at = None
        self.train_seconds, self.timed_steps = 0.0, 0
        self.interval_start_step = start

    def on_train_begin(self, logs=None):
        self.started_at = self.interval_started_at = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.interval_started_at, self.interval_start_step = time.perf_counter(), self.step

    def on_epoch_end(self, epoch, logs=None):
        if self.last_batch_at is not None and self.last_batch_at > self.interval_started_at:
            self.train_seconds += self.last_batch_at - self.interval_started_at
            self.timed_steps += self.step - self.interval_start_step

    def on_train_batch_end(self, batch, logs=None):
        self.step += self.steps_per_execution
        self.last_batch_at = time.perf_counter()
        if self.first_batch_at is None:  # the first call traces and compiles: not counted in rates
            self.first_batch_at = self.last_batch_at
            self.interval_started_at, self.interval_start_step = self.last_batch_at, self.step
        if self.step >= self.total:
            self.model.stop_training = True

    def interval_rate(self):
        """Training steps per second in the interval (validation, checkpoints and compilation excluded)."""
        seconds = (self.last_batch_at or time.perf_counter()) - self.interval_started_at
        return (self.step - self.interval_start_step) / seconds if seconds > 0 else float("nan")

    def steady_rate(self):
        """Training steps per second over the run: compilation, validation and checkpoints excluded."""
        return self.timed_steps / self.train_seconds if self.train_seconds > 0 else float("nan")


class Checkpointer(keras.callbacks.Callback):
    """Saves a checkpoint at the end of every interval (after validation) with the history so far."""

    def __init__(self, manager, tracker, history, extra_state):
        super().__init__()
        self.manager, self.tracker, self.history, self.extra_state = manager, tracker, history, extra_state
        self.last_path = None

    def on_epoch_end(self, epoch, logs=None):
        record = {"step": self.tracker.step, "learning_rate": _learning_rate(self.model)}
        record.update({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
        self.history.append(record)
        if not all(math.isfinite(v) for k, v in record.items() if k in ("loss", "val_loss")):
            return  # never checkpoint a diverged model; TerminateOnNaN stops the run
        self.last_path = self.manager.save(self.model, self.tracker.step,
                                           dict(self.extra_state, history=self.history))


class Progress(keras.callbacks.Callback):
    """verbose 1: one progress bar over all steps; 2: one line per interval; 0: nothing."""

    def __init__(self, tracker, verbose, per_step, echo, unit="tokens"):
        super().__init__()
        self.tracker, self.verbose, self.per_step, self.echo, self.unit = tracker, verbose, per_step, echo, unit
        self.bar = None

    def on_train_begin(self, logs=None):
        if self.verbose == 1:
            self.bar = keras.utils.Progbar(self.tracker.total, stateful_metrics=TRAIN_KEYS, unit_name="step")
            self.bar.update(self.tracker.step)

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            values = [(k, float(v)) for k, v in (logs or {}).items() if k in TRAIN_KEYS]
            self.bar.update(self.tracker.step, values)

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose == 0:
            return
        rate = self.tracker.interval_rate() * self.per_step
        parts = [f"{k} {float(v):.4g}" for k, v in (logs or {}).items() if np.ndim(v) == 0]
        line = (f"step {self.tracker.step}/{self.tracker.total}: " + ", ".join(parts)
                + f", lr {_learning_rate(self.model):.3g}, {rate:,.0f} {self.unit}/s")
        if self.bar is not None:
            sys.stdout.write("\n")  # leave the progress bar's line
        self.echo(line)


class TensorBoardLogger(keras.callbacks.Callback):
    """Scalars against the global step: training loss and learning rate every `every` steps;
    the interval means, validation metrics and tokens/s (images: images/s) at each checkpoint.
    OUTPUT/logs/train and OUTPUT/logs/validation (`tensorboard --logdir OUTPUT/logs`)."""

    def __init__(self, log_dir, tracker, every, per_step, unit="tokens"):
        super().__init__()
        self.tracker, self.every, self.per_step, self.unit = tracker, every, per_step, unit
        self.train = tf.summary.create_file_writer(f"{log_dir}/train")
        self.validation = tf.summary.create_file_writer(f"{log_dir}/validation")

    def on_train_batch_end(self, batch, logs=None):
        if self.tracker.step % self.every == 0:
            step = self.tracker.step
            with self.train.as_default():
                for key, value in (logs or {}).items():
                    if key in TRAIN_KEYS:
                        _scalar(f"batch_{key}", value, step)
                _scalar("learning_rate", _learning_rate(self.model), step)

    def on_epoch_end(self, epoch, logs=None):
        step = self.tracker.step
        with self.train.as_default():
            _scalar(f"{self.unit}_per_second", self.tracker.interval_rate() * self.per_step, step)
            _scalar("learning_rate", _learning_rate(self.model), step)
            for key, value in (logs or {}).items():
                if not key.startswith("val_") and np.ndim(value) == 0:
                    _scalar(key, value, step)
        with self.validation.as_default():
            for key, value in (logs or {}).items():
                if key.startswith("val_") and np.ndim(value) == 0:
                    _scalar(key[4:], value, step)
        self.train.flush()
        self.validation.flush()

    def on_train_end(self, logs=None):
        self.train.close()
        self.validation.close()
