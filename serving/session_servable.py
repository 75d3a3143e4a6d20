"""TF1 SavedModels in a `tf.compat.v1.Session`, as TensorFlow Serving's SavedModel bundle runs them.

A SavedModel written by TF1 (`builder.add_meta_graph_and_variables`, Estimator
exports) has no object graph: its signatures name tensors of one graph
(`x:0`, `ParseExample/...`), restored with `tf.compat.v1.saved_model.loader.load`
(variables, assets, the main / legacy init op). A request feeds the signature's
input tensors and fetches its output tensors, which is TF Serving's Session::Run.
The session takes the ConfigProto of --tensorflow_session_config_file and the
parallelism flags.
"""

import threading

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2

from serving.errors import invalid_argument
from serving.servable import BaseServable, register_text_ops


class SessionServable(BaseServable):
    """A TF1 SavedModel version, run through Session.run on the signature's tensor names."""

    def __init__(self, name, version, path, tags, meta_graph, session_config=None, keep_meta_graph=False):
        super().__init__(name, version, path, meta_graph, keep_meta_graph)
        register_text_ops()
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=session_config)
        with self._graph.as_default():
            tf.compat.v1.saved_model.loader.load(self._session, list(tags), path)
        self._lock = threading.Lock()  # guards _session and _callables
        self._callables = {}

    def runnable(self, signature_name):
        signature = self.signature_defs.get(signature_name)
        return signature is not None and bool(signature.outputs) and all(
            info.WhichOneof("encoding") == "name" for info in list(signature.inputs.values()) +
            list(signature.outputs.values()))

    def _run(self, signature_name, inputs, output_names):
        signature = self.signature_defs[signature_name]
        aliases = sorted(inputs)
        names = list(output_names or sorted(signature.outputs))
        for alias in aliases:
            if alias not in signature.inputs:
                raise invalid_argument(f"input tensor alias not found in signature: {alias}")
        run = self._callable(signature_name, tuple(aliases), tuple(names))
        values = run(*[inputs[alias] for alias in aliases])
        return dict(zip(names, values))

    def _callable(self, signature_name, aliases, names):
        """A Session callable for these feeds and fetches (made once).

        Session.run would compare each fed value's shape with the placeholder's
        declared shape in Python; TF Serving's C++ Session::Run does not, so a
        callable is used, which leaves every check to the graph's kernels.
        """
        key = (signature_name, aliases, names)
        with self._lock:
            if self._session is None:
                raise invalid_argument(f"Version {self.version} of {self.name} is unloaded")
            run = self._callables.get(key)
            if run is None:
                signature = self.signature_defs[signature_name]
                options = config_pb2.CallableOptions(feed=[signature.inputs[a].name for a in aliases],
                                                     fetch=[signature.outputs[a].name for a in names])
                run = self._callables[key] = self._session._make_callable_from_options(options)
            return run

    def unload(self):
        super().unload()
        with self._lock:
            session, self._session = self._session, None
            self._callables.clear()
        if session is not None:
            session.close()
