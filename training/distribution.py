"""Distribution strategies, the chief, and how datasets are split across replicas.

    default       one device (tf.distribute's default strategy)
    mirrored      every local GPU (or, with cpu_devices=N, N logical CPU devices for tests)
    multi_worker  MultiWorkerMirroredStrategy from TF_CONFIG, with `training.compat` applied
    tpu           TPUStrategy (tpu="" means the local TPU VM)

Datasets: the batch size in the config is global. Keras hands each
`tf.data.Dataset` to `strategy.experimental_distribute_dataset`, which splits
every global batch into per-replica batches; across workers the auto-shard
policy is set to DATA (`dataset_options`): every worker builds the same
deterministic pipeline and keeps its own replicas' slices of each global
batch. FILE sharding is not used because the pipelines start from documents
held in memory (`from_tensor_slices`), not from one file per shard. So a step
consumes the same global batch on one device as on N replicas.

The strategy must exist before TensorFlow runs anything (collective ops and
logical devices are fixed at start-up): `make_strategy` comes first in a run.
"""

import json
import logging
import os

import tensorflow as tf

logger = logging.getLogger(__name__)


def _mirrored(config):
    if config.cpu_devices:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * config.cpu_devices
            )
        except RuntimeError as error:
            if len(tf.config.list_logical_devices("CPU")) != config.cpu_devices:
                raise ValueError(f"--cpu-devices {config.cpu_devices}: TensorFlow is already running with "
                                 f"other devices ({error}); start a new process") from None
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(config.cpu_devices)])
    if not tf.config.list_physical_devices("GPU"):
        raise ValueError("--strategy mirrored found no GPU; use --strategy default, or --cpu-devices N to "
                         "try mirrored training on N logical CPU devices")
    return tf.distribute.MirroredStrategy()


def _check_tf_config():
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError("--strategy multi_worker needs the TF_CONFIG environment variable, e.g. "
                         '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                         '"task": {"type": "worker", "index": 0}}')
    try:
        spec = json.loads(text)
        workers = spec["cluster"]["worker"]
        task = spec["task"]
        if not workers or task["type"] not in spec["cluster"] or not 0 <= task["index"] < len(
                spec["cluster"][task["type"]]):
            raise ValueError("the task is not in the cluster")
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is not a valid cluster description ({error}): {text}") from None


def make_strategy(config):
    """The `tf.distribute.Strategy` named by `config.strategy`."""
    if config.strategy == "default":
        return tf.distribute.get_strategy()
    if config.strategy == "mirrored":
        return _mirrored(config)
    if config.strategy == "multi_worker":
        _check_tf_config()
        from training import compat

        compat.apply()
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu or "local")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def worker_name(strategy):
    """"worker-1", "chief-0", ... under multi-worker; "local" otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or isinstance(strategy, tf.distribute.TPUStrategy):
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


def is_chief(strategy):
    """True on the one worker that writes checkpoints, logs and the final model."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def dataset_options():
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True  # the data order must be a function of the step (resume)
    return options


def check_same_step(strategy, step):
    """Raises on every worker when the workers would start from different steps (e.g. the
    checkpoint folder is not shared between them)."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1 or isinstance(strategy, tf.distribute.TPUStrategy):
        return

    @tf.function
    def total_of_replicas():
        values = strategy.run(lambda: tf.constant(float(step), tf.float64))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)

    total = float(total_of_replicas())
    if total != float(step) * replicas:
        raise RuntimeError(
            f"the workers would resume from different steps (this one from {step}; mean "
            f"{total / replicas:g}): OUTPUT/checkpoints must be one folder shared by all workers"
        )
