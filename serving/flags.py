"""tensorflow_model_server's 48 flags: names, value syntax, defaults, and what each does here.

Values are written as TF Serving takes them: `--name=value` (or `--name value`),
booleans as `--name`, `--name=true` / `--name=false` (also 1/0, yes/no). An
argument that is not a flag is logged ("unknown argument") and start-up goes
on, as tensorflow_model_server does. A flag that cannot mean anything in this
server (TFLite, TPU, ALTS, profiler service, platform config map, GPU memory
fraction) is accepted, and when given the start-up log names it once as
having no effect.

`FLAGS` is the table; `NO_EFFECT` says why for the flags without effect.
`OWN_FLAGS` are ours (not in TF Serving): `--bind_address`, `--max_request_bytes`,
`--shutdown_grace_seconds`, `--access_log_file`, `--rest_api_ssl_cert_file`,
`--rest_api_ssl_key_file`, `--allowed_model_roots`, `--enable_reload_config_rpc`.
"""

import argparse
import dataclasses
import logging
import os

logger = logging.getLogger(__name__)

CPUS = os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    kind: type  # int, float, str or bool
    default: object
    help: str


# In the order of tensorflow_model_server's main.cc; defaults from its main.cc / server.h.
FLAGS = (
    Flag("port", int, 8500, "gRPC TCP port; 0 turns gRPC over TCP off"),
    Flag("grpc_socket_path", str, "", "also serve gRPC on this UNIX domain socket (relative or absolute path)"),
    Flag("rest_api_port", int, 0, "HTTP/REST port; 0 turns REST off; must differ from --port"),
    Flag("rest_api_num_threads", int, 4 * CPUS, "REST worker threads"),
    Flag("rest_api_timeout_in_ms", int, 30000, "deadline of one REST call (504 DEADLINE_EXCEEDED past it)"),
    Flag("rest_api_enable_cors_support", bool, False, "add CORS headers to REST responses"),
    Flag("enable_batching", bool, False, "batch concurrent requests per model version and signature"),
    Flag("allow_version_labels_for_unavailable_models", bool, False,
         "let a new label name a version that is not loaded yet"),
    Flag("batching_parameters_file", str, "", "text-format BatchingParameters (needs --enable_batching)"),
    Flag("enable_per_model_batching_parameters", bool, False,
         "read batching_params.pbtxt from each SavedModel folder (with --enable_batching)"),
    Flag("model_config_file", str, "", "text-format ModelServerConfig; --model_name/--model_base_path are then ignored"),
    Flag("model_config_file_poll_wait_seconds", int, 0, "re-read --model_config_file this often; 0 reads it once"),
    Flag("model_name", str, "default", "name of the single model (ignored with --model_config_file)"),
    Flag("model_base_path", str, "", "base folder of the single model (required without --model_config_file)"),
    Flag("num_load_threads", int, 0, "threads that load versions (0: load one after another)"),
    Flag("num_unload_threads", int, 0, "threads that unload versions (0: one after another)"),
    Flag("max_num_load_retries", int, 5, "retries after a failed load (0: load once)"),
    Flag("load_retry_interval_micros", int, 60 * 1000 * 1000, "wait between load retries"),
    Flag("file_system_poll_wait_seconds", int, 1, "look for new/removed versions this often; 0: once"),
    Flag("flush_filesystem_caches", bool, True, "flush file-system caches after loads"),
    Flag("tensorflow_session_parallelism", int, 0, "threads of a TensorFlow session (intra and inter op); 0: auto"),
    Flag("tensorflow_session_config_file", str, "", "text-format ConfigProto for TensorFlow sessions"),
    Flag("tensorflow_intra_op_parallelism", int, 0, "threads inside one op; 0: auto"),
    Flag("tensorflow_inter_op_parallelism", int, 0, "ops run at once; 0: auto"),
    Flag("use_alts_credentials", bool, False, "Google ALTS credentials for gRPC"),
    Flag("ssl_config_file", str, "", "text-format SSLConfig: gRPC over TLS (client_verify: mutual TLS)"),
    Flag("platform_config_file", str, "", "text-format PlatformConfigMap replacing the TensorFlow platform settings"),
    Flag("per_process_gpu_memory_fraction", float, 0.0, "share of GPU memory the process may take"),
    Flag("saved_model_tags", str, "serve", "comma-separated MetaGraph tags to load"),
    Flag("grpc_channel_arguments", str, "", "comma-separated key=value gRPC server arguments"),
    Flag("grpc_max_threads", int, 4 * CPUS, "most threads handling gRPC calls at once"),
    Flag("enable_model_warmup", bool, True, "replay assets.extra/tf_serving_warmup_requests at load"),
    Flag("num_request_iterations_for_warmup", int, 0, "replay each warm-up record this many times (if > 0)"),
    Flag("version", bool, False, "print the version and exit"),
    Flag("monitoring_config_file", str, "", "text-format MonitoringConfig (Prometheus metrics on the REST port)"),
    Flag("remove_unused_fields_from_bundle_metagraph", bool, True, "keep only the signatures of a loaded MetaGraph"),
    Flag("prefer_tflite_model", bool, False, "experimental: serve model.tflite instead of saved_model.pb"),
    Flag("num_tflite_pools", int, CPUS, "experimental: TFLite interpreter pools"),
    Flag("num_tflite_interpreters_per_pool", int, 1, "experimental: interpreters per TFLite pool"),
    Flag("enable_signature_method_name_check", bool, False, "check SignatureDef method names for classify/regress"),
    Flag("xla_cpu_compilation_enabled", bool, False, "experimental: allow XLA:CPU JIT"),
    Flag("xla_gpu_compilation_enabled", bool, False, "experimental: allow XLA:CPU and XLA:GPU JIT"),
    Flag("enable_profiler", bool, True, "serve TensorFlow's profiler service"),
    Flag("thread_pool_factory_config_file", str, "", "text-format ThreadPoolConfig"),
    Flag("mixed_precision", str, "", "mixed-precision mode (e.g. bfloat16)"),
    Flag("skip_initialize_tpu", bool, False, "do not initialise a TPU at start"),
    Flag("enable_grpc_healthcheck_service", bool, False, "serve the standard grpc.health.v1 health service"),
    Flag("enable_serialization_as_tensor_content", bool, False, "write Predict outputs as tensor_content bytes"),
)

# Not in TF Serving.
OWN_FLAGS = (
    Flag("bind_address", str, "127.0.0.1",
         "(not in TF Serving) address to listen on; 0.0.0.0 for every interface, as tensorflow_model_server does"),
    Flag("max_request_bytes", int, 64 * 2**20, "(not in TF Serving) largest REST body / gRPC message; 0: no limit"),
    Flag("shutdown_grace_seconds", float, 30.0, "(not in TF Serving) how long SIGTERM waits for in-flight requests"),
    Flag("access_log_file", str, "", "(not in TF Serving) one JSON line per request (no tensor contents); - = stderr"),
    Flag("rest_api_ssl_cert_file", str, "", "(not in TF Serving) PEM certificate: the REST port speaks HTTPS"),
    Flag("rest_api_ssl_key_file", str, "", "(not in TF Serving) PEM private key for --rest_api_ssl_cert_file"),
    Flag("allowed_model_roots", str, "",
         "(not in TF Serving) comma-separated folders every model base path must lie in; empty: anywhere"),
    Flag("enable_reload_config_rpc", bool, True,
         "(not in TF Serving) serve ModelService/HandleReloadConfigRequest, which anyone reaching the gRPC port "
         "can call to repoint or remove every model; false: PERMISSION_DENIED"),
)

NO_EFFECT = {
    "flush_filesystem_caches": "TensorFlow's Python API has no file-system cache flush; loads read files directly",
    "use_alts_credentials": "ALTS needs Google Cloud's handshaker service; use --ssl_config_file for TLS",
    "platform_config_file": "this server has one platform (TensorFlow SavedModels); configure it with the other flags",
    "per_process_gpu_memory_fraction": "GPU memory is TensorFlow's default here (grow as needed)",
    "prefer_tflite_model": "this server loads SavedModels only (no TFLite runtime)",
    "num_tflite_pools": "this server loads SavedModels only (no TFLite runtime)",
    "num_tflite_interpreters_per_pool": "this server loads SavedModels only (no TFLite runtime)",
    "enable_profiler": "TensorFlow's profiler service is not served on the gRPC port here",
    "thread_pool_factory_config_file": "requests run on TensorFlow's process-wide thread pools "
                                       "(--tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism)",
    "mixed_precision": "graphs run as exported (no bfloat16 rewrite)",
    "skip_initialize_tpu": "no TPU support in this server",
}

ALL_FLAGS = FLAGS + OWN_FLAGS


def parse_bool(text):
    if isinstance(text, bool):
        return text
    lowered = text.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser(prog="python -m serving", description=None):
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for flag in ALL_FLAGS:
        text = flag.help + (f" [no effect here: {NO_EFFECT[flag.name]}]" if flag.name in NO_EFFECT else "")
        if flag.kind is bool:
            parser.add_argument(f"--{flag.name}", type=parse_bool, nargs="?", const=True, default=flag.default,
                                help=text, metavar="true|false")
        else:
            parser.add_argument(f"--{flag.name}", type=flag.kind, default=flag.default, help=text)
    return parser


def parse(argv=None, description=None):
    """-> (namespace, unknown arguments). Malformed values exit 2 with argparse's message."""
    return build_parser(description=description).parse_known_args(argv)


def given_flags(argv):
    """Names of the flags an argument list sets (`--name`, `--name=value`, `-name`)."""
    names = set()
    for argument in argv:
        if argument.startswith("-"):
            names.add(argument.lstrip("-").split("=", 1)[0])
    return names


def log_without_effect(args, argv):
    """Names once each no-effect flag given on the command line; returns their names."""
    named = [name for name in NO_EFFECT if name in given_flags(argv)]
    for name in named:
        logger.warning("--%s=%s has no effect in this server: %s", name, getattr(args, name), NO_EFFECT[name])
    return named
