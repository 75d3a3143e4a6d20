"""One loaded model version: a SavedModel, its signatures and an in-flight count.

Loaded with TensorFlow only (`tf.saved_model.load` + `.signatures`); the
signature metadata (aliases, dtypes, shapes, `method_name`) is read from the
`serve` MetaGraphDef in `saved_model.pb`, so `GetModelMetadata` shows exactly
what `tensorflow_model_server` shows, including `__saved_model_init_op`.

Token-id range checks are opt-in per SavedModel through
`assets.extra/vocabulary.json` (see `VOCABULARY_FILE`).
"""

import json
import logging
import os
import threading

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.errors import Code, ServingError, from_exception, invalid_argument

logger = logging.getLogger(__name__)

SERVE_TAG = "serve"
INIT_OP_SIGNATURE = "__saved_model_init_op"

# Written by the exporter next to TF Serving's own assets.extra/ files:
#   {"vocabulary_size": 32000, "token_id_inputs": ["token_ids", "decoder_token_ids"]}
# Every integer input whose alias is listed, in every signature, must hold ids
# in [0, vocabulary_size). No file: no range check. A malformed file fails the
# load of that version (its status shows the reason).
VOCABULARY_FILE = os.path.join("assets.extra", "vocabulary.json")


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


def read_vocabulary(path, signature_defs):
    """{(signature, alias): vocabulary_size} from assets.extra/vocabulary.json."""
    file = os.path.join(path, VOCABULARY_FILE)
    if not os.path.exists(file):
        return {}
    try:
        with open(file, encoding="utf-8") as handle:
            spec = json.load(handle)
    except (OSError, ValueError) as error:
        raise invalid_argument(f"Cannot read {file}: {error}") from None
    if not isinstance(spec, dict) or set(spec) - {"vocabulary_size", "token_id_inputs"}:
        raise invalid_argument(f"{file} must be an object with keys vocabulary_size and token_id_inputs; got {spec!r}")
    size, aliases = spec.get("vocabulary_size"), spec.get("token_id_inputs")
    if type(size) is not int or size <= 0:
        raise invalid_argument(f"{file}: vocabulary_size must be a positive integer; got {size!r}")
    if not isinstance(aliases, list) or not aliases or not all(isinstance(a, str) for a in aliases):
        raise invalid_argument(f"{file}: token_id_inputs must be a non-empty list of input names; got {aliases!r}")
    ranges = {}
    for name, signature in signature_defs.items():
        for alias in aliases:
            info = signature.inputs.get(alias)
            if info is not None and tf.as_dtype(info.dtype).is_integer:
                ranges[(name, alias)] = size
    if not ranges:
        logger.warning("%s names inputs %s, but no signature has an integer input of that name", file, aliases)
    return ranges


class Servable:
    """A loaded SavedModel version. Thread-safe; `run` may be called concurrently."""

    def __init__(self, name, version, path):
        self.name, self.version, self.path = name, version, path
        self.meta_graph = read_meta_graph(path)
        self.signature_defs = dict(self.meta_graph.signature_def)
        self.vocabulary = read_vocabulary(path, self.signature_defs)
        register_text_ops()
        self._model = tf.saved_model.load(path, tags=[SERVE_TAG])
        self._functions = dict(self._model.signatures)
        self._in_flight = 0
        self._idle = threading.Condition()

    def signature_def_map(self):
        """`SignatureDefMap` with every signature, as GetModelMetadata returns it."""
        result = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs.items():
            result.signature_def[key].CopyFrom(value)
        return result

    def runnable(self, signature_name):
        return signature_name in self._functions and signature_name in self.signature_defs

    def run(self, signature_name, inputs, output_names=None):
        """Runs one signature on numpy inputs; returns {alias: numpy array}."""
        function = self._functions[signature_name]
        try:
            outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
            names = output_names or list(outputs)
            return {key: outputs[key].numpy() for key in names}
        except Exception as error:  # noqa: BLE001 - every failure becomes a status
            raise from_exception(error) from None

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
        self._functions.clear()
        self._model = None


def as_numpy_dtype(dtype_enum):
    """numpy dtype for a `DataType` enum (object for DT_STRING)."""
    dtype = tf.as_dtype(dtype_enum)
    return np.dtype(object) if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
