"""Step checkpoints that a kill at any moment cannot corrupt.

Layout, under OUTPUT/checkpoints/ (defined in `keras_transformer.run_folder`):

    ckpt-00000100/model.weights.h5   model and optimizer variables (Keras `save_weights`)
    ckpt-00000100/state.json         {"step", "weights_sha256", "history", ...}
    .tmp-ckpt-00000200-<pid>/        a checkpoint being written (ignored, removed on the next start)

A checkpoint is written into a temporary folder, flushed to disk, then
renamed to its final name in one `os.rename`, so a `ckpt-*` folder is either
complete or absent. On restore each candidate is also checked against the
SHA-256 recorded in its `state.json`; one that fails (truncated or damaged
later) is skipped with a warning and the previous one is used. The step is
the number of batches consumed, not `optimizer.iterations`: under
mixed_float16 a step with non-finite gradients is skipped by the loss-scale
optimizer but its batch is still consumed.
"""

import contextlib
import json
import logging
import os
import shutil
import warnings

from keras_transformer.run_folder import (  # the run folder's one definition
    PARTIAL_PREFIX,
    STATE_FILE,
    WEIGHTS_FILE,
    checkpoint_name,
    checkpoint_steps,
    read_checkpoint_state,
    sha256,
)

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_numpy_copy_warnings():
    """Keras 3.15 saving under NumPy 2 warns once per variable that TensorFlow's `__array__`
    takes no `copy=` argument; harmless, and it buries everything else in the output."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        yield


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointManager:
    """Writes, lists, verifies and restores the step checkpoints in `directory`.

    Args:
        directory: OUTPUT/checkpoints.
        keep: how many of the newest checkpoints to keep.
        writer: False on workers that must not write (multi-worker non-chiefs).
    """

    def __init__(self, directory, keep=2, writer=True):
        self.directory = directory
        self.keep = keep
        self.writer = writer

    def steps(self):
        """Steps of the complete-looking (final-named) checkpoints, oldest first."""
        return checkpoint_steps(self.directory)

    def path(self, step):
        return os.path.join(self.directory, checkpoint_name(step))

    def read_state(self, step):
        """The checkpoint's state dict, or None (with a warning) when it fails verification."""
        folder = self.path(step)
        try:
            state = read_checkpoint_state(folder)
        except ValueError as error:
            logger.warning("ignoring the damaged checkpoint %s: %s", folder, error)
            return None
        return state

    def latest(self):
        """`(step, state)` of the newest checkpoint that verifies, or None."""
        for step in reversed(self.steps()):
            state = self.read_state(step)
            if state is not None:
                return step, state
        return None

    def restore(self, model, step):
        """Loads model and optimizer variables (the optimizer must be built)."""
        model.load_weights(os.path.join(self.path(step), WEIGHTS_FILE))

    def save(self, model, step, state):
        """Writes checkpoint `step` atomically; keeps the newest `keep`. Returns its folder."""
        final = self.path(step)
        if not self.writer:
            return final
        os.makedirs(self.directory, exist_ok=True)
        temporary = os.path.join(self.directory, f"{PARTIAL_PREFIX}{step:08d}-{os.getpid()}")
        shutil.rmtree(temporary, ignore_errors=True)
        os.makedirs(temporary)
        weights = os.path.join(temporary, WEIGHTS_FILE)
        with quiet_numpy_copy_warnings():
            model.save_weights(weights)
        _fsync(weights)
        state = dict(state, step=step, weights_file=WEIGHTS_FILE, weights_sha256=sha256(weights))
        state_path = os.path.join(temporary, STATE_FILE)
        with open(state_path, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync(temporary)
        if os.path.isdir(final):  # a damaged checkpoint of this step, skipped at restore: replace it
            os.rename(final, f"{temporary}-old")
        os.rename(temporary, final)  # atomic: the checkpoint appears complete or not at all
        shutil.rmtree(f"{temporary}-old", ignore_errors=True)
        _fsync(self.directory)
        self._prune()
        return final

    def _prune(self):
        for step in self.steps()[: -self.keep]:
            shutil.rmtree(self.path(step), ignore_errors=True)

    def remove_partial(self):
        """Deletes temporary folders left by a run killed while writing."""
        if not (self.writer and os.path.isdir(self.directory)):
            return
        for name in os.listdir(self.directory):
            if name.startswith(PARTIAL_PREFIX):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
