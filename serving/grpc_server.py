"""TensorFlow Serving's gRPC services, with the official `tensorflow_serving.apis` stubs.

`tensorflow.serving.PredictionService` (Predict, Classify, Regress,
MultiInference, GetModelMetadata) and `tensorflow.serving.ModelService`
(GetModelStatus, HandleReloadConfigRequest). Status codes are TensorFlow's,
unchanged; messages over 1024 characters are cut as TF Serving cuts them.
A client deadline bounds the model run (DEADLINE_EXCEEDED), as TF Serving's
session-run timeout does.
"""

import concurrent.futures
import logging
import time

import grpc
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, model_management_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from serving import tensor_proto
from serving.errors import Code, ServingError, from_exception, invalid_argument, truncate_for_grpc

logger = logging.getLogger(__name__)
SIGNATURE_DEF_FIELD = "signature_def"


def _spec(model_spec):
    """(name, version, label) of a ModelSpec."""
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _deadline(context):
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _fill_spec(target, name, version, signature_name=None):
    target.name = name
    target.version.value = version
    if signature_name is not None:
        target.signature_name = signature_name


def _rpc(method):
    """Turns ServingErrors (and anything else) into gRPC statuses."""

    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception as error:  # noqa: BLE001 - every failure becomes a status
            failure = from_exception(error)
            if failure.code in (Code.INTERNAL, Code.UNKNOWN):
                logger.exception("gRPC %s failed", method.__name__)
            context.abort(grpc.StatusCode[failure.code.name], truncate_for_grpc(failure.message))

    wrapper.__name__ = method.__name__
    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core, tensor_content=False):
        self.core = core
        self.tensor_content = tensor_content

    @_rpc
    def Predict(self, request, context):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        name, version, label = _spec(request.model_spec)
        inputs = {alias: tensor_proto.to_ndarray(proto, alias) for alias, proto in request.inputs.items()}
        resolved, signature, outputs = self.core.predict(
            name, version, label, request.model_spec.signature_name, inputs, list(request.output_filter),
            _deadline(context))
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, name, resolved, signature)
        for alias, array in outputs.items():
            response.outputs[alias].CopyFrom(tensor_proto.from_ndarray(array, self.tensor_content))
        return response

    @_rpc
    def Classify(self, request, context):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        name, version, label = _spec(request.model_spec)
        resolved, signature, result = self.core.classify(
            name, version, label, request.model_spec.signature_name, request.input, _deadline(context))
        response = classification_pb2.ClassificationResponse(result=result)
        _fill_spec(response.model_spec, name, resolved, signature)
        return response

    @_rpc
    def Regress(self, request, context):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        name, version, label = _spec(request.model_spec)
        resolved, signature, result = self.core.regress(
            name, version, label, request.model_spec.signature_name, request.input, _deadline(context))
        response = regression_pb2.RegressionResponse(result=result)
        _fill_spec(response.model_spec, name, resolved, signature)
        return response

    @_rpc
    def MultiInference(self, request, context):
        return self.core.multi_inference(request, deadline=_deadline(context))

    @_rpc
    def GetModelMetadata(self, request, context):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        name, version, label = _spec(request.model_spec)
        resolved, signature_defs = self.core.metadata(name, version, label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, name, resolved)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core):
        self.core = core

    @_rpc
    def GetModelStatus(self, request, context):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        name, version, _ = _spec(request.model_spec)  # like TF Serving, a label is not looked at
        return self.core.status(name, version)

    def HandleReloadConfigRequest(self, request, context):
        """Replaces the model config; the status is in the response and in the RPC status."""
        response = model_management_pb2.ReloadConfigResponse()
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise invalid_argument("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                                       "Only ModelConfigList is currently supported")
            self.core.manager.reload_config(request.config)
        except Exception as error:  # noqa: BLE001 - reported to the caller
            failure = from_exception(error)
            logger.error("ReloadConfig failed: %s", failure.message)
            response.status.error_code, response.status.error_message = int(failure.code), failure.message
            context.set_code(grpc.StatusCode[failure.code.name])
            context.set_details(truncate_for_grpc(failure.message))
        return response


def create_server(core, host, port, max_receive_bytes=0, max_workers=16, tensor_content=False):
    """A started-later `grpc.Server` bound to host:port; returns (server, bound port)."""
    options = [("grpc.max_send_message_length", 2**31 - 1),
               ("grpc.max_receive_message_length", max_receive_bytes or 2**31 - 1),
               ("grpc.so_reuseport", 0)]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="grpc"),
                         options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(core, tensor_content), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise ServingError(Code.UNAVAILABLE, f"Cannot bind the gRPC server to {host}:{port}")
    return server, bound
