"""`python -m serving`: the embedded server, with tensorflow_model_server's flag names.

    python -m serving --port=8500 --rest_api_port=8501 \\
        --model_name=gpt --model_base_path=/models/gpt
    python -m serving --port=8500 --rest_api_port=8501 \\
        --model_config_file=serving/deploy/models.config \\
        --enable_batching --batching_parameters_file=serving/deploy/batching_parameters.txt

Every TF Serving flag listed by `--help` means what it means there
(`--rest_api_port=0` disables REST, `--port=0` picks a free gRPC port). Three
flags are ours: `--bind_address` (default 127.0.0.1, loopback only; use
0.0.0.0 to listen on every interface as tensorflow_model_server does),
`--max_request_bytes` (REST bodies and gRPC messages; 413 /
RESOURCE_EXHAUSTED above it) and `--shutdown_grace_seconds`. SIGTERM or
SIGINT stop accepting requests, let in-flight ones finish, then exit 0.
"""

import argparse
import logging
import signal
import sys
import threading

from serving.errors import ServingError
from serving.server import ModelServer, ServerOptions


def _bool(text):
    if isinstance(text, bool):
        return text
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv=None):
    defaults = ServerOptions()
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    flag = parser.add_argument

    def switch(name, default, text):
        flag(f"--{name}", type=_bool, nargs="?", const=True, default=default, help=text)

    flag("--port", type=int, default=defaults.port, help="gRPC port (0: pick a free one)")
    flag("--rest_api_port", type=int, default=0, help="REST port; 0 disables the REST API")
    flag("--rest_api_timeout_in_ms", type=int, default=defaults.rest_api_timeout_in_ms,
         help="deadline of a REST request; past it: 504 DEADLINE_EXCEEDED")
    switch("rest_api_enable_cors_support", False, "add CORS headers to REST replies")
    flag("--model_name", default=defaults.model_name, help="name of the single model (with --model_base_path)")
    flag("--model_base_path", default="", help="folder holding the model's numeric version folders")
    flag("--model_config_file", default="", help="text ModelServerConfig; overrides --model_name/--model_base_path")
    flag("--model_config_file_poll_wait_seconds", type=float, default=0,
         help="re-read --model_config_file this often; 0 reads it once")
    flag("--file_system_poll_wait_seconds", type=float, default=defaults.file_system_poll_wait_seconds,
         help="look for new/removed versions this often; 0 looks once")
    switch("enable_batching", False, "batch concurrent requests on the server")
    flag("--batching_parameters_file", default="", help="text BatchingParameters (needs --enable_batching)")
    flag("--max_num_load_retries", type=int, default=defaults.max_num_load_retries)
    flag("--load_retry_interval_micros", type=int, default=defaults.load_retry_interval_micros)
    switch("allow_version_labels_for_unavailable_models", False,
           "let a new label point at a version that is not loaded yet (needed for labels in the first config)")
    switch("enable_model_warmup", True, "replay assets.extra/tf_serving_warmup_requests when a version loads")
    switch("enable_signature_method_name_check", False, "require classify/regress method names on signatures")
    switch("enable_serialization_as_tensor_content", False, "gRPC outputs in tensor_content instead of *_val")
    flag("--grpc_max_threads", type=int, default=defaults.grpc_max_threads)
    flag("--bind_address", default=defaults.bind_address,
         help="(not in TF Serving) address to listen on; 0.0.0.0 for every interface")
    flag("--max_request_bytes", type=int, default=defaults.max_request_bytes,
         help="(not in TF Serving) largest REST body / gRPC message; 0: no limit")
    flag("--shutdown_grace_seconds", type=float, default=30.0,
         help="(not in TF Serving) how long SIGTERM waits for in-flight requests")
    return parser.parse_args(argv)


def options_from_args(args):
    fields = {f for f in ServerOptions.__dataclass_fields__}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["rest_api_port"] = args.rest_api_port or None  # TF Serving: 0 = no REST server
    return ServerOptions(**values)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = ModelServer(options_from_args(args)).start()
    except ServingError as error:
        print(f"Failed to start server: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(number, _frame):
        logging.getLogger(__name__).info("Received %s; shutting down", signal.Signals(number).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(0.5):
        pass
    server.stop(args.shutdown_grace_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
