"""gRPC client on the official `tensorflow_serving.apis` stubs (works against either server).

Same methods and return values as `RestClient`; requests carry a deadline
(`timeout`), which TF Serving and this server both turn into a run timeout.
"""

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from serving.errors import Code
from serving.client.common import ServingClientError, generate_inputs, normalize_metadata


def _example(features):
    """{name: value or list} -> tf.Example: ints/bools int64_list, numbers with a float float_list, else bytes_list."""
    example = example_pb2.Example()
    for name, values in features.items():
        values = values if isinstance(values, list) else [values]
        feature = example.features.feature[name]
        if all(isinstance(v, (bool, int)) for v in values):
            feature.int64_list.value.extend(int(v) for v in values)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            feature.float_list.value.extend(float(v) for v in values)
        else:
            feature.bytes_list.value.extend(v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values)
    return example


class GrpcClient:
    """`GrpcClient("localhost:8500")`; every method raises ServingClientError on an error status."""

    def __init__(self, address="localhost:8500", timeout=30.0, max_message_bytes=2**31 - 1):
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        self.channel = grpc.insecure_channel(address, options=options)
        self.timeout = timeout
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self._metadata = {}

    def close(self):
        self.channel.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingClientError(error.code().name, error.details()) from None

    @staticmethod
    def _spec(target, model, version=None, label=None, signature_name=None):
        target.name = model
        if version is not None:
            target.version.value = int(version)
        elif label is not None:
            target.version_label = label
        if signature_name:
            target.signature_name = signature_name

    def status(self, model, version=None, label=None):
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version, label)
        response = self._call(self.models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [{"version": s.version, "state": states.Name(s.state),
                 "error_code": Code(s.status.error_code).name, "error_message": s.status.error_message}
                for s in response.model_version_status]

    def metadata(self, model, version=None, label=None):
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version, label)
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_defs)
        document = json_format.MessageToDict(signature_defs, preserving_proto_field_name=True)
        return normalize_metadata(response.model_spec.version.value, document)

    def predict_response(self, model, inputs, signature_name=None, version=None, label=None, output_filter=()):
        """The raw PredictResponse (model_spec says which version answered)."""
        request = predict_pb2.PredictRequest(output_filter=list(output_filter))
        self._spec(request.model_spec, model, version, label, signature_name)
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        return self._call(self.prediction.Predict, request)

    def predict(self, model, inputs, signature_name=None, version=None, label=None, output_filter=()):
        """{alias: array} -> {alias: array} (strings as object arrays of bytes)."""
        response = self.predict_response(model, inputs, signature_name, version, label, output_filter)
        return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}

    def generate(self, model, prompts, signature_name="generate", version=None, label=None, **extra_inputs):
        """As `RestClient.generate`."""
        key = (model, version, label)
        if key not in self._metadata:
            self._metadata[key] = self.metadata(model, version, label)
        signature = self._metadata[key]["signatures"].get(signature_name)
        if signature is None:
            raise ServingClientError("INVALID_ARGUMENT", f"model {model} has no signature {signature_name!r}")
        inputs, text_output = generate_inputs(signature, prompts, extra_inputs)
        outputs = self.predict(model, inputs, signature_name, version, label)
        return [v.decode("utf-8", errors="replace") for v in outputs[text_output].ravel().tolist()]

    def _input(self, request, examples, context):
        if context is None:
            request.input.example_list.examples.extend(_example(e) for e in examples)
        else:
            request.input.example_list_with_context.context.CopyFrom(_example(context))
            request.input.example_list_with_context.examples.extend(_example(e) for e in examples)

    def classify(self, model, examples, context=None, signature_name=None, version=None, label=None):
        request = classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, model, version, label, signature_name)
        self._input(request, examples, context)
        response = self._call(self.prediction.Classify, request)
        return [[(c.label, c.score) for c in row.classes] for row in response.result.classifications]

    def regress(self, model, examples, context=None, signature_name=None, version=None, label=None):
        request = regression_pb2.RegressionRequest()
        self._spec(request.model_spec, model, version, label, signature_name)
        self._input(request, examples, context)
        response = self._call(self.prediction.Regress, request)
        return [r.value for r in response.result.regressions]
