"""`ModelServer`: the embedded server (gRPC + REST) put together.

    from serving import ModelServer, ServerOptions

    options = ServerOptions(model_name="gpt", model_base_path="/models/gpt", port=0, rest_api_port=0)
    with ModelServer(options) as server:          # loads models, binds 127.0.0.1
        print(server.grpc_port, server.rest_port)  # 0 asked for free ports
        ...                                        # serve until the block ends

Options mirror `tensorflow_model_server`'s flags (`python -m serving --help`);
in this Python API `rest_api_port=None` disables REST and 0 picks a free port
(on the command line, as in TF Serving, `--rest_api_port=0` disables REST).
"""

import dataclasses
import json
import logging
import re
import ssl
import time

from serving import config as config_lib
from serving import access_log, metrics
from serving.access_log import AccessLog
from serving.completions import COMPLETIONS_PATH, Completions, Generation
from serving.http_server import Response
from serving.batching import BatchingOptions, BatchScheduler
from serving.core import ServingCore
from serving.errors import Code, ServingError, invalid_argument
from serving.grpc_server import create_server
from serving.manager import ServableManager
from serving.rest import RestApi, RestServer
from serving.servable import configure_tensorflow, load_servable

logger = logging.getLogger(__name__)

# Beyond TF Serving; under /v3, where TF Serving has no routes.
HEALTH_PATHS = {"live": "/v3/health/live", "ready": "/v3/health/ready"}


def _json(status, document):
    return Response(status, (json.dumps(document) + "\n").encode())


def _rest_ssl_context(options):
    """An HTTPS context from --rest_api_ssl_cert_file / --rest_api_ssl_key_file, or None."""
    cert, key = options.rest_api_ssl_cert_file, options.rest_api_ssl_key_file
    if not cert and not key:
        return None
    if not (cert and key):
        raise invalid_argument("--rest_api_ssl_cert_file and --rest_api_ssl_key_file go together (PEM files)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise invalid_argument(f"Cannot load the REST TLS certificate {cert} / key {key}: {error}") from None
    return context


@dataclasses.dataclass
class ServerOptions:
    port: int = 8500  # gRPC over TCP; 0 = pick a free port; None = none (the CLI's --port=0)
    grpc_socket_path: str = ""  # also gRPC on this UNIX domain socket
    grpc_channel_arguments: str = ""  # "key=value,key=value" for the gRPC server
    rest_api_port: int = None  # None = no REST server; 0 = pick a free port
    bind_address: str = "127.0.0.1"  # not a TF Serving flag; TF Serving listens on all interfaces
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config: object = None  # a ModelServerConfig proto, instead of a file
    model_config_file_poll_wait_seconds: float = 0
    file_system_poll_wait_seconds: float = 1
    enable_batching: bool = False
    batching_parameters_file: str = ""
    batching_parameters: str = ""  # BatchingParameters text, instead of a file
    rest_api_timeout_in_ms: int = 30000
    rest_api_enable_cors_support: bool = False
    rest_api_num_threads: int = 0  # REST worker threads; 0 = the REST server's default
    max_request_bytes: int = 64 * 2**20  # REST bodies and gRPC messages; 0 = no limit
    grpc_max_threads: int = 16
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60 * 1000 * 1000
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    enable_signature_method_name_check: bool = False
    enable_serialization_as_tensor_content: bool = False
    enable_per_model_batching_parameters: bool = False
    num_load_threads: int = 0
    num_unload_threads: int = 0
    saved_model_tags: str = "serve"
    num_request_iterations_for_warmup: int = 0
    remove_unused_fields_from_bundle_metagraph: bool = True
    tensorflow_session_parallelism: int = 0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    tensorflow_session_config_file: str = ""
    xla_cpu_compilation_enabled: bool = False
    xla_gpu_compilation_enabled: bool = False
    ssl_config_file: str = ""  # SSLConfig text proto: gRPC over TLS
    enable_grpc_healthcheck_service: bool = False
    monitoring_config_file: str = ""  # MonitoringConfig text proto: Prometheus metrics on the REST port
    # Not TF Serving's:
    access_log_file: str = ""  # one JSON line per request ("-": standard error)
    rest_api_ssl_cert_file: str = ""  # PEM certificate (chain): the REST port speaks HTTPS
    rest_api_ssl_key_file: str = ""  # PEM private key of that certificate
    allowed_model_roots: str = ""  # comma-separated folders every model base path must lie in ("": anywhere)
    enable_reload_config_rpc: bool = True  # ModelService/HandleReloadConfigRequest (unauthenticated, as in TF Serving)

    def server_config(self):
        """The ModelServerConfig these options stand for."""
        if self.model_config is not None:
            config_lib.validate_model_server_config(self.model_config)
            return self.model_config
        if self.model_config_file:
            if self.model_base_path:
                logger.warning("--model_config_file is set: ignoring --model_name and --model_base_path")
            try:
                return config_lib.load_model_server_config(self.model_config_file)
            except UnicodeDecodeError as error:
                raise invalid_argument(f"--model_config_file {self.model_config_file} is not UTF-8 text "
                                       f"(byte {error.start}: {error.reason})") from None
        if not self.model_base_path:
            raise invalid_argument("Give --model_base_path (with --model_name) or --model_config_file")
        return config_lib.single_model_config(self.model_name, self.model_base_path)

    def batching_options(self):
        if not self.enable_batching:
            if self.batching_parameters_file or self.batching_parameters:
                raise invalid_argument("--batching_parameters_file requires --enable_batching")
            return None
        if self.batching_parameters_file:
            return BatchingOptions.from_file(self.batching_parameters_file)
        return BatchingOptions.from_text(self.batching_parameters or "")


class ModelServer:
    def __init__(self, options=None, **overrides):
        self.options = dataclasses.replace(options or ServerOptions(), **overrides)
        self.grpc_port = self.rest_port = None
        self._grpc = self._rest = self.batcher = None
        self._config_mtime = None
        self._stopped = False
        batching = self.options.batching_options()
        self.batcher = BatchScheduler(batching) if batching else None
        self.manager = ServableManager(
            self._load, self.options.max_num_load_retries, self.options.load_retry_interval_micros / 1e6,
            self.options.allow_version_labels_for_unavailable_models, self.options.num_load_threads,
            self.options.num_unload_threads,
            [root for root in self.options.allowed_model_roots.split(",") if root.strip()])
        self.core = ServingCore(self.manager, self.batcher, self.options.enable_signature_method_name_check,
                                max_request_bytes=self.options.max_request_bytes)
        # Where the REST front end serves serving.metrics.render(); None: not enabled (404).
        self.prometheus_path = config_lib.load_monitoring_config(self.options.monitoring_config_file)
        self.rest_ssl_context = _rest_ssl_context(self.options)
        self.access_log = AccessLog.open(self.options.access_log_file)

    def _load(self, name, version, path):
        return load_servable(name, version, path, self.options, self.core)

    def start(self):
        """Loads the configured models (waiting for the first load of each), then starts listening."""
        try:
            return self._start()
        except BaseException:
            self.stop(grace_seconds=0)
            raise

    def _start(self):
        options = self.options
        configure_tensorflow(options)  # before any model loads
        self.manager.reload_config(options.server_config())
        self.manager.start_polling(options.file_system_poll_wait_seconds)
        if options.model_config_file and options.model_config_file_poll_wait_seconds > 0:
            self.manager.start_config_polling(options.server_config, options.model_config_file_poll_wait_seconds)
        try:
            self._grpc, self.grpc_port = create_server(self.core, options, self.access_log)
        except RuntimeError as error:  # grpc raises RuntimeError("Failed to bind ...") for a busy port
            raise ServingError(Code.UNAVAILABLE, f"Cannot start the gRPC server on {options.bind_address}:"
                                                 f"{options.port}: {error}") from None
        if self._grpc is not None:
            self._grpc.start()
        if self.grpc_port is not None:
            logger.info("Running gRPC ModelServer at %s:%d ...", options.bind_address, self.grpc_port)
        if options.grpc_socket_path:
            logger.info("Running gRPC ModelServer at UNIX socket %s ...", options.grpc_socket_path)
        if options.rest_api_port is not None:
            api = RestApi(self.core, options.rest_api_timeout_in_ms)
            self._rest = RestServer(api, options.bind_address, options.rest_api_port, options.max_request_bytes,
                                    options.rest_api_enable_cors_support, ssl_context=self.rest_ssl_context,
                                    access_log=self.access_log)
            self._add_routes(self._rest.router)
            self._rest.start()
            self.rest_port = self._rest.port
            logger.info("Exporting HTTP/REST API at:%s:%d ...", options.bind_address, self.rest_port)
        return self

    def _add_routes(self, router):
        """Routes beside TF Serving's `/v1`: Prometheus metrics (when configured) and `/v3/completions`."""
        if self.prometheus_path:
            router.add(re.escape(self.prometheus_path), lambda request: Response(
                200, metrics.render().encode("utf-8"), "text/plain; version=0.0.4; charset=utf-8"),
                methods=("GET",))
        router.add(HEALTH_PATHS["live"], lambda request: _json(200, {"status": "live"}), methods=("GET",))
        router.add(HEALTH_PATHS["ready"], self._ready, methods=("GET",))
        completions = Completions(Generation(self.core))
        timeout = self.options.rest_api_timeout_in_ms / 1000 if self.options.rest_api_timeout_in_ms > 0 else None
        router.add(COMPLETIONS_PATH, completions.handle, methods=("POST",), timeout=timeout)

    def _ready(self, request):
        """200 once every configured model has an AVAILABLE version, else 503 naming the others."""
        access_log.note(api="ready")
        models = self.core.readiness()
        waiting = sorted(name for name, ready in models.items() if not ready)
        if waiting or not models:
            return _json(503, {"status": "not ready", "models_without_an_available_version": waiting})
        return _json(200, {"status": "ready", "models": sorted(models)})

    def stop(self, grace_seconds=30.0):
        """Stops accepting requests, lets in-flight ones finish (up to `grace_seconds`), unloads models."""
        if self._stopped:
            return
        self._stopped = True
        start = time.monotonic()
        grpc_done = None
        if self._grpc is not None:
            grpc_done = self._grpc.stop(grace_seconds)
        if self._rest is not None:
            self._rest.stop(grace_seconds)
        if grpc_done is not None:
            grpc_done.wait(max(grace_seconds - (time.monotonic() - start), 0))
        # The front ends have answered everyone they still could; what runs now (a run past its
        # deadline, or for a client that has gone) answers nobody, so it is not waited for.
        self.core.stop()
        if self.batcher is not None:
            self.batcher.stop(timeout=5)  # queued tasks whose clients are gone are dropped, not run
        self.manager.stop(timeout=min(1.0, max(grace_seconds - (time.monotonic() - start), 0)))
        if self.access_log is not None:
            self.access_log.close()
        logger.info("Server stopped")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
