"""The inference logic both front ends share (TF Serving's predict/classify/regress impls).

REST and gRPC turn their requests into numpy inputs plus (name, version,
label, signature) and call `ServingCore`; results come back as numpy arrays
or result protos. Order of checks, codes and messages follow TensorFlow
Serving: model/version (NOT_FOUND), label (INVALID_ARGUMENT), signature
(FAILED_PRECONDITION on gRPC), inputs (INVALID_ARGUMENT), then the run.
"""

import concurrent.futures
import logging
import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_status_pb2, inference_pb2,
                                     prediction_log_pb2, regression_pb2)

from serving import access_log, metrics, tensor_proto
from serving.layout import WARMUP_FILE
from serving.errors import Code, Deadline, ServingError, failed_precondition, invalid_argument
from serving.validation import check_tensor, validate_inputs

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"


def serialized_examples(request_input):
    """`Input` -> [N] DT_STRING array of serialized tf.Examples (context merged into each)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        values = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        # A serialized context followed by a serialized example parses as the two merged.
        context = request_input.example_list_with_context.context.SerializeToString()
        values = [context + e.SerializeToString() for e in request_input.example_list_with_context.examples]
    else:
        raise invalid_argument("Input is empty.")
    if not values:
        raise invalid_argument("Input is empty.")
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


class ServingCore:
    def __init__(self, manager, batcher=None, method_name_check=False, max_run_threads=64, max_request_bytes=0):
        self.manager = manager
        self.max_request_bytes = max_request_bytes  # bound on a request tensor's declared size (gRPC)
        self.batcher = batcher
        self.method_name_check = method_name_check
        self._pool = concurrent.futures.ThreadPoolExecutor(max_run_threads, thread_name_prefix="run")

    # ------------------------------------------------------------------ running
    def _execute(self, servable, signature, inputs, output_names, deadline):
        """Runs (batched if enabled); work whose `deadline` (a `Deadline` or monotonic seconds) has
        passed, or whose client has gone, is dropped before it starts. Past the deadline the caller
        gets DEADLINE_EXCEEDED at once; a run that had already started finishes on its own and
        keeps its version loaded until then."""
        access_log.note(model=servable.name, version=servable.version, signature=signature)
        deadline = Deadline.of(deadline)
        if deadline is not None:
            deadline.check("Deadline exceeded before the model ran")
        if self.batcher is not None:
            return self.batcher.run(servable, signature, inputs, output_names, deadline)
        if deadline is None:
            return servable.run(signature, inputs, output_names)
        servable.acquire()  # keeps the version loaded until the run ends, even if we stop waiting

        def work():
            try:
                deadline.check("Deadline exceeded before the model ran")  # nobody waits any more: never run it
                return servable.run(signature, inputs, output_names)
            finally:
                servable.release()

        try:
            future = self._pool.submit(work)
        except RuntimeError:  # the pool is shut down: the server is stopping
            servable.release()
            raise ServingError(Code.UNAVAILABLE, "Server is shutting down") from None
        try:
            return deadline.wait(future, "Deadline exceeded while running the model")
        except concurrent.futures.CancelledError:
            servable.release()  # cancelled by stop() before it started
            raise ServingError(Code.UNAVAILABLE, "Server is shutting down") from None
        except ServingError:
            if future.cancel():
                servable.release()  # never started, so work() will not release it
            raise

    def _signature(self, servable, signature_name):
        name = signature_name or DEFAULT_SIGNATURE
        if not servable.runnable(name):
            raise failed_precondition(f'Serving signature key "{name}" not found.')
        return name, servable.signature_defs[name]

    # ------------------------------------------------------------------ predict
    def signature_inputs(self, model, version, label, signature_name):
        """{alias: DataType} of a signature (REST's GetInfoMap, INVALID_ARGUMENT if unknown)."""
        with self.manager.handle(model, version, label) as servable:
            name = signature_name or DEFAULT_SIGNATURE
            if name not in servable.signature_defs:
                raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
            return {alias: info.dtype for alias, info in sorted(servable.signature_defs[name].inputs.items())}

    @metrics.counted("Predict")
    def predict(self, model, version, label, signature_name, inputs, output_filter=(), deadline=None):
        """-> (resolved version, resolved signature name, {alias: numpy array})."""
        with self.manager.handle(model, version, label) as servable:
            name, signature = self._signature(servable, signature_name)
            if self.method_name_check and signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
                raise ServingError(Code.INTERNAL, (
                    f"Expected prediction signature method_name to be one of {{{PREDICT_METHOD}, "
                    f"{CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}"))
            validate_inputs(servable, name, inputs)
            seen = set()
            for alias in output_filter:
                if alias not in signature.outputs:
                    raise invalid_argument(f"output tensor alias not found in signature: {alias} Outputs expected "
                                           f"to be in the set {{{','.join(sorted(signature.outputs))}}}.")
                if alias in seen:
                    raise invalid_argument(f"duplicate output tensor alias: {alias}")
                seen.add(alias)
            outputs = self._execute(servable, name, inputs, list(output_filter) or None, deadline)
            return servable.version, name, outputs

    # ------------------------------------------------------------------ classify / regress
    def _example_signature(self, servable, signature_name, method):
        name = signature_name or DEFAULT_SIGNATURE
        if name not in servable.signature_defs or not servable.runnable(name):
            raise invalid_argument(f"No signature was found with the name: {name}")
        signature = servable.signature_defs[name]
        kind = "classification" if method == CLASSIFY_METHOD else "regression"
        if self.method_name_check and signature.method_name != method:
            raise invalid_argument(f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")
        if len(signature.inputs) != 1:
            raise invalid_argument("Expected one input Tensor.")
        if method == CLASSIFY_METHOD and len(signature.outputs) not in (1, 2):
            raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
        if method == REGRESS_METHOD and len(signature.outputs) != 1:
            raise invalid_argument("Expected one output Tensor.")
        if "inputs" not in signature.inputs:
            raise failed_precondition(f"No {kind} inputs found in SignatureDef: {signature}")
        if method == CLASSIFY_METHOD and not {"classes", "scores"} & set(signature.outputs):
            raise failed_precondition('Expected classification signature outputs to contain at least one of '
                                      f'"classes" or "scores". Signature was: {signature}')
        if method == REGRESS_METHOD and "outputs" not in signature.outputs:
            raise failed_precondition(f"No regression outputs found in SignatureDef: {signature}")
        return name, signature

    def _run_examples(self, servable, signature_name, request_input, method, deadline):
        name, signature = self._example_signature(servable, signature_name, method)
        examples = serialized_examples(request_input)
        metrics.record_examples(servable.name, len(examples))
        check_tensor(name, "inputs", signature.inputs["inputs"], examples)
        wanted = [k for k in ("classes", "scores", "outputs") if k in signature.outputs]
        outputs = self._execute(servable, name, {"inputs": examples}, wanted, deadline)
        count = len(examples)
        if method == CLASSIFY_METHOD:
            return name, _classification_result(outputs, count)
        return name, _regression_result(outputs["outputs"], count)

    @metrics.counted("Classify")
    def classify(self, model, version, label, signature_name, request_input, deadline=None):
        with self.manager.handle(model, version, label) as servable:
            name, result = self._run_examples(servable, signature_name, request_input, CLASSIFY_METHOD, deadline)
            return servable.version, name, result

    @metrics.counted("Regress")
    def regress(self, model, version, label, signature_name, request_input, deadline=None):
        with self.manager.handle(model, version, label) as servable:
            name, result = self._run_examples(servable, signature_name, request_input, REGRESS_METHOD, deadline)
            return servable.version, name, result

    @metrics.counted("MultiInference")
    def multi_inference(self, request, label=None, deadline=None):
        """MultiInferenceRequest -> MultiInferenceResponse (one model version, distinct signatures)."""
        tasks = list(request.tasks)
        if not tasks:
            raise invalid_argument("Expected at least one task")
        first = tasks[0].model_spec
        version = first.version.value if first.HasField("version") else None
        names = set()
        for task in tasks:
            spec = task.model_spec
            if spec.name != first.name or spec.WhichOneof("version_choice") != first.WhichOneof("version_choice") \
                    or spec.version != first.version or spec.version_label != first.version_label:
                raise invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model name and version")
            signature = spec.signature_name or DEFAULT_SIGNATURE
            if signature in names:
                raise invalid_argument(f"Duplicate evaluation of signature: {signature}")
            names.add(signature)
            if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                raise invalid_argument(f"Unsupported signature method_name: {task.method_name}")
        response = inference_pb2.MultiInferenceResponse()
        label = first.version_label if first.WhichOneof("version_choice") == "version_label" else label
        with self.manager.handle(first.name, version, label) as servable:
            for task in tasks:
                name, result = self._run_examples(servable, task.model_spec.signature_name, request.input,
                                                  task.method_name, deadline)
                entry = response.results.add()
                entry.model_spec.name, entry.model_spec.signature_name = first.name, name
                entry.model_spec.version.value = servable.version
                if task.method_name == CLASSIFY_METHOD:
                    entry.classification_result.CopyFrom(result)
                else:
                    entry.regression_result.CopyFrom(result)
        return response

    # ------------------------------------------------------------------ metadata / status
    def metadata(self, model, version, label):
        """-> (resolved version, SignatureDefMap)."""
        with self.manager.handle(model, version, label) as servable:
            access_log.note(model=model, version=servable.version)
            return servable.version, servable.signature_def_map()

    def status(self, model, version=None):
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, state, code, message in self.manager.status(model, version):
            entry = response.model_version_status.add(version=number, state=state)
            entry.status.error_code, entry.status.error_message = int(code), message
        return response

    # ------------------------------------------------------------------ warmup
    def list_models(self):
        """[(name, GetModelStatusResponse)] of every configured model (no versions yet: an empty list)."""
        listed = []
        for name in self.manager.model_names():
            try:
                listed.append((name, self.status(name)))
            except ServingError:
                listed.append((name, get_model_status_pb2.GetModelStatusResponse()))
        return listed

    def readiness(self):
        """{model name: bool}: whether each configured model has an AVAILABLE version."""
        available = self.manager.available()
        return {name: bool(available.get(name)) for name in self.manager.model_names()}

    def warmup(self, servable, iterations=1):
        """Replays assets.extra/tf_serving_warmup_requests (PredictionLog records), each `iterations` times
        (--num_request_iterations_for_warmup), on a new version; returns the number of runs."""
        path = os.path.join(servable.path, WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        count = 0
        records = [record.numpy() for record in tf.data.TFRecordDataset(path)]
        for record in [r for r in records for _ in range(iterations)]:
            log = prediction_log_pb2.PredictionLog.FromString(record)
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                request = log.predict_log.request
                inputs = {k: tensor_proto.to_ndarray(v, k) for k, v in request.inputs.items()}
                name, _ = self._signature(servable, request.model_spec.signature_name)
                validate_inputs(servable, name, inputs)
                servable.run(name, inputs, list(request.output_filter) or None)
            elif kind in ("classify_log", "regress_log"):
                request = getattr(log, kind).request
                method = CLASSIFY_METHOD if kind == "classify_log" else REGRESS_METHOD
                self._run_examples(servable, request.model_spec.signature_name, request.input, method, None)
            else:
                raise invalid_argument(f"Unsupported log_type for warmup: {kind}")
            count += 1
        logger.info("Finished warmup of %s version %d with %d requests", servable.name, servable.version, count)
        return count

    def stop(self):
        self._pool.shutdown(wait=False, cancel_futures=True)  # a run past its deadline is not waited for


def _classification_result(outputs, count):
    classes, scores = outputs.get("classes"), outputs.get("scores")
    for name, tensor, dtype in (("classes", classes, object), ("scores", scores, np.float32)):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {list(tensor.shape)}")
        if tensor.dtype != dtype:
            raise invalid_argument(f"Expected {name} Tensor of {'DT_STRING' if dtype is object else 'DT_FLOAT'}. "
                                   f"Got: {tensor.dtype}")
        if tensor.shape[0] != count:
            raise invalid_argument(f"Expected {name} output batch size of {count}. Got: {tensor.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} "
                               f"vs. {scores.shape[1]}")
    width = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for i in range(count):
        row = result.classifications.add()
        for c in range(width):
            entry = row.classes.add()
            if classes is not None:
                label = classes[i, c]
                entry.label = label.decode("utf-8", errors="replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                entry.score = float(scores[i, c])
    return result


def _regression_result(tensor, count):
    if not (tensor.ndim == 1 or (tensor.ndim == 2 and tensor.shape[1] == 1)):
        raise invalid_argument(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                               f"{list(tensor.shape)}")
    if tensor.shape[0] != count:
        raise invalid_argument(f"Input batch size did not match output batch size: {count} vs. {tensor.shape[0]}")
    if tensor.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {tensor.dtype}")
    result = regression_pb2.RegressionResult()
    for value in tensor.reshape(-1).tolist():
        result.regressions.add(value=value)
    return result
