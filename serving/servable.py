"""One loaded model version: a SavedModel, its signatures and an in-flight count.

TF2 SavedModels (with an object graph) load with `tf.saved_model.load` and run
through `.signatures`; TF1 SavedModels (Session-based signatures, e.g.
`ParseExample` inside the graph for classify/regress) load into a
`tf.compat.v1.Session` (`session_servable.SessionServable`), as TF Serving's
loader does. The signature metadata (aliases, dtypes, shapes, `method_name`)
is read from the MetaGraphDef with the `--saved_model_tags` tag set, so
`GetModelMetadata` shows exactly what `tensorflow_model_server` shows,
including `__saved_model_init_op`.

`load_servable` is what the manager calls for a new version: the TensorFlow
runtime settings (`configure_tensorflow`, applied once before any model
loads), the loader, per-model batching parameters and warm-up.

Nothing is checked here that TF Serving does not check: token ids are range
checked by the exported graphs themselves (an out-of-range id is the model's
INVALID_ARGUMENT, as under stock TF Serving); `assets.extra/vocabulary.json`,
which older exports wrote, is not read.
"""

import logging
import os
import threading
import time

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import metrics
from serving.errors import Code, ServingError, from_exception, invalid_argument

logger = logging.getLogger(__name__)

SERVE_TAG = "serve"
INIT_OP_SIGNATURE = "__saved_model_init_op"
BATCHING_PARAMS_FILE = "batching_params.pbtxt"  # --enable_per_model_batching_parameters


_text_ops_lock = threading.Lock()
_text_ops_loaded = False


def register_text_ops():
    """Registers TensorFlow Text's ops, as the official tensorflow_model_server build has them built in.

    Without this, SavedModels whose graphs use tf-text ops (WordPiece,
    SentencePiece, normalize_utf8, ...) fail to load with "Op type not registered".
    """
    global _text_ops_loaded
    with _text_ops_lock:
        if _text_ops_loaded:
            return
        try:
            import tensorflow_text  # noqa: F401 - imported for its op registrations
        except ImportError:
            logger.warning("tensorflow-text is not installed: SavedModels using its ops will not load")
        _text_ops_loaded = True


def read_meta_graph(path, tags=(SERVE_TAG,)):
    """The MetaGraphDef of `path`/saved_model.pb(txt) whose tag set is `tags`."""
    saved_model = saved_model_pb2.SavedModel()
    binary = os.path.join(path, "saved_model.pb")
    text = os.path.join(path, "saved_model.pbtxt")
    if os.path.exists(binary):
        with open(binary, "rb") as handle:
            saved_model.ParseFromString(handle.read())
    elif os.path.exists(text):
        with open(text, encoding="utf-8") as handle:
            text_format.Parse(handle.read(), saved_model)
    else:
        raise ServingError(Code.NOT_FOUND, f"No saved_model.pb or saved_model.pbtxt in {path}")
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    found = [sorted(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise ServingError(Code.NOT_FOUND, f"No MetaGraphDef with tags {sorted(tags)} in {path}; found {found}")


def is_tf1_saved_model(meta_graph):
    """A SavedModel without an object graph was written by TF1 (Session-based signatures)."""
    return not meta_graph.object_graph_def.nodes


class BaseServable:
    """What every loaded version has: signatures and the in-flight count. Thread-safe."""

    def __init__(self, name, version, path, meta_graph, keep_meta_graph=False):
        self.name, self.version, self.path = name, version, path
        self.signature_defs = dict(meta_graph.signature_def)
        # --remove_unused_fields_from_bundle_metagraph (default true): keep only the signatures.
        self.meta_graph = meta_graph if keep_meta_graph else None
        self.batcher = None  # a per-model BatchScheduler (--enable_per_model_batching_parameters)
        self._in_flight = 0
        self._idle = threading.Condition()

    def signature_def_map(self):
        """`SignatureDefMap` with every signature, as GetModelMetadata returns it."""
        result = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs.items():
            result.signature_def[key].CopyFrom(value)
        return result

    def run(self, signature_name, inputs, output_names=None):
        """Runs one signature on numpy inputs; returns {alias: numpy array}."""
        start = time.monotonic()
        try:
            return self._run(signature_name, inputs, output_names)
        except Exception as error:  # noqa: BLE001 - every failure becomes a status
            raise from_exception(error) from None
        finally:
            metrics.record_runtime(self.name, start)

    # In-flight bookkeeping: a version is unloaded only once nothing runs on it.
    def acquire(self):
        with self._idle:
            self._in_flight += 1

    def release(self):
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout=None):
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    @property
    def in_flight(self):
        return self._in_flight

    def unload(self):
        if self.batcher is not None:
            self.batcher.stop(timeout=5)
            self.batcher = None


class Servable(BaseServable):
    """A TF2 SavedModel version, run through its concrete signature functions."""

    def __init__(self, name, version, path, tags=(SERVE_TAG,), meta_graph=None, keep_meta_graph=False):
        meta_graph = meta_graph or read_meta_graph(path, tags)
        super().__init__(name, version, path, meta_graph, keep_meta_graph)
        register_text_ops()
        self._model = tf.saved_model.load(path, tags=list(tags))
        self._functions = dict(self._model.signatures)

    def runnable(self, signature_name):
        return signature_name in self._functions and signature_name in self.signature_defs

    def _run(self, signature_name, inputs, output_names):
        function = self._functions[signature_name]
        outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        names = output_names or list(outputs)
        return {key: outputs[key].numpy() for key in names}

    def unload(self):
        super().unload()
        self._functions.clear()
        self._model = None


# ---------------------------------------------------------------------- the TensorFlow runtime
_runtime_lock = threading.Lock()
_runtime = None  # (intra, inter) op parallelism applied to this process


def session_config_from(options):
    """The ConfigProto --tensorflow_session_config_file and the parallelism flags stand for (TF Serving's order:
    the file, then --tensorflow_session_parallelism for both pools, then the intra/inter flags)."""
    from tensorflow.core.protobuf import config_pb2

    from serving import config as config_lib

    session_config = config_pb2.ConfigProto()
    if options.tensorflow_session_config_file:
        session_config = config_lib.load_session_config(options.tensorflow_session_config_file)
    if options.tensorflow_session_parallelism > 0:
        session_config.intra_op_parallelism_threads = options.tensorflow_session_parallelism
        session_config.inter_op_parallelism_threads = options.tensorflow_session_parallelism
    if options.tensorflow_intra_op_parallelism > 0:
        session_config.intra_op_parallelism_threads = options.tensorflow_intra_op_parallelism
    if options.tensorflow_inter_op_parallelism > 0:
        session_config.inter_op_parallelism_threads = options.tensorflow_inter_op_parallelism
    return session_config


def configure_tensorflow(options):
    """Applies the TensorFlow runtime flags once per process, before any model loads; returns the ConfigProto.

    Thread pools are process-wide in TF2 and fixed once the runtime has
    started: asking for other values later is an error naming the flags.
    XLA JIT auto-clustering follows --xla_cpu_compilation_enabled /
    --xla_gpu_compilation_enabled (functions exported with jit_compile=True
    still compile: TF's Python API cannot forbid them).
    """
    global _runtime
    session_config = session_config_from(options)
    threads = (session_config.intra_op_parallelism_threads, session_config.inter_op_parallelism_threads)
    xla = bool(options.xla_cpu_compilation_enabled or options.xla_gpu_compilation_enabled)
    with _runtime_lock:
        if _runtime is None:
            try:
                if threads[0]:
                    tf.config.threading.set_intra_op_parallelism_threads(threads[0])
                if threads[1]:
                    tf.config.threading.set_inter_op_parallelism_threads(threads[1])
            except RuntimeError as error:
                raise invalid_argument(f"--tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism must "
                                       f"be applied before TensorFlow starts: {error}") from None
            _runtime = threads
            logger.info("TensorFlow runtime: intra_op_parallelism=%d inter_op_parallelism=%d (0: auto)", *threads)
        elif threads != (0, 0) and threads != _runtime:
            raise invalid_argument(f"TensorFlow's thread pools are already set to intra/inter op parallelism "
                                   f"{_runtime} in this process; cannot change them to {threads}")
        tf.config.optimizer.set_jit("autoclustering" if xla else False)
        if session_config.log_device_placement:
            tf.debugging.set_log_device_placement(True)
    return session_config


def _per_model_batcher(path, options):
    """A BatchScheduler from <SavedModel>/batching_params.pbtxt, or None."""
    file = os.path.join(path, BATCHING_PARAMS_FILE)
    if not (options.enable_batching and options.enable_per_model_batching_parameters and os.path.exists(file)):
        return None
    from serving.batching import BatchingOptions, BatchScheduler

    batching = BatchingOptions.from_file(file)
    logger.info("Per-model batching parameters from %s: %s", file, batching)
    return BatchScheduler(batching)


def load_servable(name, version, path, options, core=None):
    """Loads one version as the server options ask (tags, TF1/TF2 loader, batching, warm-up) and records metrics."""
    tags = tuple(t.strip() for t in (options.saved_model_tags or SERVE_TAG).split(",") if t.strip())
    session_config = configure_tensorflow(options)
    keep = not options.remove_unused_fields_from_bundle_metagraph
    start = time.monotonic()
    try:
        meta_graph = read_meta_graph(path, tags)
        if is_tf1_saved_model(meta_graph):
            from serving.session_servable import SessionServable

            servable = SessionServable(name, version, path, tags, meta_graph, session_config, keep)
        else:
            servable = Servable(name, version, path, tags, meta_graph, keep)
    except Exception as error:
        metrics.record_load(path, from_exception(error).code.name, start)
        raise
    metrics.record_load(path, "OK", start)
    try:
        servable.batcher = _per_model_batcher(path, options)
        if options.enable_model_warmup and core is not None:
            warmup_start = time.monotonic()
            iterations = max(options.num_request_iterations_for_warmup, 1)
            try:
                core.warmup(servable, iterations)
            except Exception as error:
                metrics.record_warmup(path, from_exception(error).code.name, warmup_start)
                raise
            metrics.record_warmup(path, "OK", warmup_start)
    except BaseException:
        servable.unload()
        raise
    return servable


def as_numpy_dtype(dtype_enum):
    """numpy dtype for a `DataType` enum (object for DT_STRING)."""
    dtype = tf.as_dtype(dtype_enum)
    return np.dtype(object) if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
