"""Keras 3.15 compatibility: `fit` under `MultiWorkerMirroredStrategy` (TensorFlow backend).

Plain Keras 3.15 fails on every worker before the first step (upstream
keras-team/keras#20585, #20329), in `keras/src/backend/tensorflow/trainer.py`:

1. `TensorFlowTrainer._maybe_symbolic_build` reduces the first distributed
   batch across workers with `strategy.reduce("MEAN", batch, axis=None)`
   just to learn shapes and dtypes; the collective strategy cannot convert the
   nested `PerReplica` structure ("Attempt to convert a value ... to a Tensor").
   The worker's own local batch carries the same shapes and dtypes.
2. `reduce_per_replica(..., "mean")` under the collective strategy calls
   `strategy.reduce("MEAN", v, axis=0)` on every output, the scalar loss and
   metrics included ("Invalid reduction dimension 0 for input with 0
   dimensions"). Scalars need `axis=None`.

`apply()` patches exactly these two places, and only while the installed Keras
still has the faulty code (checked by reading it), so upgrading Keras turns the
patch off by itself; `tests/training/test_compat.py` fails once the upstream code
changes, as the signal to delete this module.
"""

import inspect
import logging

logger = logging.getLogger(__name__)

_applied = False


def _trainer_module():
    from keras.src.backend.tensorflow import trainer

    return trainer


def needs_patch():
    """True while the installed Keras has both faulty code paths."""
    trainer = _trainer_module()
    build_source = inspect.getsource(trainer.TensorFlowTrainer._maybe_symbolic_build)
    reduce_source = inspect.getsource(trainer.reduce_per_replica)
    reduces_whole_batch = "reduce(" in build_source and '"MEAN"' in build_source
    reduces_scalars_on_axis_0 = 'strategy.reduce("MEAN", v, axis=0)' in reduce_source
    return reduces_whole_batch and reduces_scalars_on_axis_0


def apply():
    """Patches Keras' TensorFlow trainer for multi-worker `fit`; idempotent."""
    global _applied
    if _applied:
        return True
    if not needs_patch():
        logger.info("Keras multi-worker fit needs no patch in this Keras version")
        return False
    import tensorflow as tf

    trainer = _trainer_module()
    original_reduce = trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                # Shapes and dtypes only: this worker's first local replica batch.
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v,
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):

            def reduce(v):
                if not trainer._is_per_replica_instance(v):
                    return v
                rank = v.values[0].shape.rank
                return strategy.reduce("MEAN", v, axis=0 if rank else None)

            return tf.nest.map_structure(reduce, values)
        return original_reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    _applied = True
    logger.info("patched Keras multi-worker fit (keras-team/keras#20585, #20329)")
    return True
