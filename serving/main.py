"""`python -m serving`: the embedded server, with tensorflow_model_server's flag names.

    python -m serving --port=8500 --rest_api_port=8501 \\
        --model_name=gpt --model_base_path=/models/gpt
    python -m serving --port=8500 --rest_api_port=8501 \\
        --model_config_file=serving/deploy/models.config \\
        --enable_batching --batching_parameters_file=serving/deploy/batching_parameters.txt

All 48 flags of tensorflow_model_server are accepted, with its names, value
syntax (`--flag=value`; booleans `--flag`, `--flag=true|false`) and defaults,
and mean what they mean there (`--port=0` turns gRPC over TCP off and
`--rest_api_port=0` turns REST off). `serving/flags.py` lists them; the few that
cannot mean anything here are named in the start-up log when given. Three
flags are ours: `--bind_address` (default 127.0.0.1, loopback only; use
0.0.0.0 to listen on every interface as tensorflow_model_server does),
`--max_request_bytes` (REST bodies and gRPC messages; 413 /
RESOURCE_EXHAUSTED above it) and `--shutdown_grace_seconds`. SIGTERM or
SIGINT stop accepting requests, let in-flight ones finish, then exit 0.
A start-up error (a malformed config file, say) prints TF Serving's wording
and exits 1.
"""

import logging
import signal
import sys
import threading

from serving import flags
from serving.errors import ServingError
from serving.server import ModelServer, ServerOptions

logger = logging.getLogger(__name__)


def parse_args(argv=None):
    """The flags as a namespace (unknown arguments are kept in `.unknown`, as TF Serving only warns)."""
    args, unknown = flags.parse(argv, description=__doc__.split("\n\n")[0])
    args.unknown = unknown
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def options_from_args(args):
    fields = set(ServerOptions.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["rest_api_port"] = args.rest_api_port or None  # TF Serving: 0 = no REST server
    values["port"] = args.port or None  # TF Serving: 0 = no gRPC over TCP
    return ServerOptions(**values)


def version_text():
    import importlib.metadata

    import tensorflow as tf

    try:
        ours = importlib.metadata.version("keras-transformer-kit")
    except importlib.metadata.PackageNotFoundError:
        ours = "unknown"
    return f"TensorFlow ModelServer: {ours} (keras-transformer embedded server)\nTensorFlow Library: {tf.__version__}"


def main(argv=None):
    args = parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for argument in args.unknown:
        logger.warning("unknown argument: %s", argument)
    flags.log_without_effect(args, args.argv)
    if not args.port and not args.grpc_socket_path:
        print("Failed to start server. Error: INVALID_ARGUMENT: At least one of --port or --grpc_socket_path "
              "must be set.", file=sys.stderr)
        return 1
    try:
        server = ModelServer(options_from_args(args)).start()
    except ServingError as error:
        print(f"Failed to start server. Error: {error}", file=sys.stderr)
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
