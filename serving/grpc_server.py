"""TensorFlow Serving's gRPC services, with the official `tensorflow_serving.apis` stubs.

`tensorflow.serving.PredictionService` (Predict, Classify, Regress,
MultiInference, GetModelMetadata) and `tensorflow.serving.ModelService`
(GetModelStatus, HandleReloadConfigRequest). Status codes are TensorFlow's,
unchanged; messages over 1024 characters are cut as TF Serving cuts them.
A client deadline bounds the model run (DEADLINE_EXCEEDED), as TF Serving's
session-run timeout does.

`create_server` applies the gRPC flags as `model_servers/server.cc` does:
TCP on --port and/or a UNIX socket on --grpc_socket_path, --grpc_channel_arguments
(`key=value,...`; a value that parses as an int32 is passed as an int, else as a
string), --grpc_max_threads worker threads, TLS from --ssl_config_file
(client_verify: mutual TLS, client certificates signed by custom_ca), the
standard `grpc.health.v1.Health` service with --enable_grpc_healthcheck_service
(SERVING for "", ModelService and PredictionService, by short and full
name), and server reflection (always on, as in TF Serving since 2.15).
"""

import concurrent.futures
import logging
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, model_management_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from serving import config as config_lib
from serving import access_log, metrics, tensor_proto
from serving.completions import Generation, add_stream_service
from serving.errors import Code, Deadline, ServingError, from_exception, invalid_argument, truncate_for_grpc

logger = logging.getLogger(__name__)
SIGNATURE_DEF_FIELD = "signature_def"


def _spec(model_spec):
    """(name, version, label) of a ModelSpec."""
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _deadline(context):
    """The call's deadline, and whether its client is gone (work for it is dropped before it runs)."""
    remaining = context.time_remaining()
    return Deadline(None if remaining is None else time.monotonic() + remaining, lambda: not context.is_active())


def _fill_spec(target, name, version, signature_name=None):
    target.name = name
    target.version.value = version
    if signature_name is not None:
        target.signature_name = signature_name


def _rpc(method):
    """Turns ServingErrors (and anything else) into gRPC statuses; writes the access log line."""

    def wrapper(self, request, context):
        record = {"entrypoint": "grpc", "peer": context.peer(), "api": method.__name__}
        started, status, response = time.monotonic(), "OK", None
        try:
            with metrics.entrypoint(metrics.GRPC):
                response = access_log.bound(record, method, self, request, context)
                return response
        except Exception as error:  # noqa: BLE001 - every failure becomes a status
            failure = from_exception(error)
            status = failure.code.name
            if failure.code in (Code.INTERNAL, Code.UNKNOWN):
                logger.exception("gRPC %s failed", method.__name__)
            context.abort(grpc.StatusCode[failure.code.name], truncate_for_grpc(failure.message))
        finally:
            if self.access_log is not None:
                self.access_log.write(record, started, status=status, bytes_in=request.ByteSize(),
                                      bytes_out=response.ByteSize() if response is not None else 0)

    wrapper.__name__ = method.__name__
    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core, tensor_content=False, access_log=None):
        self.core = core
        self.tensor_content = tensor_content
        self.access_log = access_log

    @_rpc
    def Predict(self, request, context):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        name, version, label = _spec(request.model_spec)
        inputs = {alias: tensor_proto.to_ndarray(proto, alias, self.core.max_request_bytes)
                  for alias, proto in request.inputs.items()}
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
    def __init__(self, core, access_log=None, enable_reload=True):
        self.core = core
        self.access_log = access_log
        self.enable_reload = enable_reload

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
            if not self.enable_reload:
                raise ServingError(Code.PERMISSION_DENIED, "HandleReloadConfigRequest is turned off on this server "
                                                           "(--enable_reload_config_rpc=false)")
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


INT32_MAX = 2**31 - 1
SERVICE_NAMES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")


def parse_channel_arguments(text):
    """--grpc_channel_arguments "k=v,k=v" -> [(key, int or str)], as server.cc's parseGrpcChannelArgs."""
    result = []
    for item in text.split(",") if text else []:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise invalid_argument(f"--grpc_channel_arguments: expected key=value, got {item!r} in {text!r}")
        try:
            number = int(value)
        except ValueError:
            number = None
        result.append((key, number if number is not None and -2**31 <= number <= INT32_MAX else value))
    return result


def server_credentials(ssl_config_file):
    """TLS credentials from an SSLConfig file, or None for an insecure server."""
    if not ssl_config_file:
        return None
    ssl = config_lib.load_ssl_config(ssl_config_file)
    return grpc.ssl_server_credentials(
        [(ssl.server_key.encode(), ssl.server_cert.encode())],
        root_certificates=ssl.custom_ca.encode() if ssl.custom_ca else None,
        require_client_auth=ssl.client_verify)


def _add_health(server):
    servicer = health.HealthServicer()
    for name in ("",) + SERVICE_NAMES + tuple(n.rsplit(".", 1)[1] for n in SERVICE_NAMES):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return health.SERVICE_NAME


def create_server(core, options, access_log=None):
    """A started-later `grpc.Server` for `options` (a ServerOptions); returns (server, bound TCP port or None).

    TCP is bound when `options.port` is not None (0 picks a free port), the
    UNIX socket when `options.grpc_socket_path` is set; with neither, no server.
    """
    if options.port is None and not options.grpc_socket_path:
        return None, None
    arguments = dict([("grpc.max_send_message_length", INT32_MAX),
                      ("grpc.max_receive_message_length", options.max_request_bytes or INT32_MAX),
                      ("grpc.so_reuseport", 0)])
    arguments.update(parse_channel_arguments(options.grpc_channel_arguments))  # the flag wins
    credentials = server_credentials(options.ssl_config_file)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max(options.grpc_max_threads, 1),
                                                               thread_name_prefix="grpc"),
                         options=list(arguments.items()))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core, options.enable_serialization_as_tensor_content, access_log), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core, access_log, options.enable_reload_config_rpc), server)
    services = list(SERVICE_NAMES)
    services.append(add_stream_service(server, Generation(core), options.max_request_bytes))
    if options.enable_grpc_healthcheck_service:
        services.append(_add_health(server))
    reflection.enable_server_reflection(services + [reflection.SERVICE_NAME], server)

    def bind(address):
        bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        if bound == 0:
            raise ServingError(Code.UNAVAILABLE, f"Cannot bind the gRPC server to {address}")
        return bound

    port = None
    if options.port is not None:
        port = bind(f"{options.bind_address}:{options.port}")
    if options.grpc_socket_path:
        bind(f"unix:{options.grpc_socket_path}")
    return server, port
