"""`python -m serving.client`: talk to TensorFlow Serving or the embedded server.

    python -m serving.client status gpt                                  # REST, localhost:8501
    python -m serving.client --grpc localhost:8500 status gpt --version 2
    python -m serving.client metadata gpt
    python -m serving.client predict gpt --inputs '{"token_ids": [[5, 6, 7]]}'
    python -m serving.client predict gpt --inputs @request.json --signature serving_default --rows
    python -m serving.client generate gpt "Once upon a time" "The model" --input max_new_tokens=16
    python -m serving.client classify clf --examples '[{"x": [0.5, 1.0]}]'
    python -m serving.client classify-image vit cat.jpg dog.png          # JPEG/PNG files -> classify_image
    python -m serving.client regress clf --examples '[{"x": [0.5, 1.0]}]'

Prints JSON on stdout (strings decoded as UTF-8 where possible, else
{"b64": ...}); an error reply prints `CODE: message` on stderr and exits 1.
"""

import argparse
import base64
import json
import sys

import numpy as np

from serving.client.common import ServingClientError, dtype_for


def _json_arg(text):
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as handle:
            return json.load(handle)
    return json.loads(text)


def _plain(value):
    """numpy results -> JSON-friendly values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _array(value, dtype):
    """A JSON value as the numpy array the signature wants (strings as UTF-8 bytes)."""
    if dtype == "DT_STRING":
        array = np.array(value, dtype=object)
        flat = [v.encode("utf-8") if isinstance(v, str) else v for v in array.ravel().tolist()]
        result = np.empty(len(flat), dtype=object)
        result[:] = flat
        return result.reshape(array.shape)
    return np.array(value, dtype=dtype_for(dtype) if dtype else None)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--rest", default=None, help="HOST:PORT of the REST API (default localhost:8501)")
    target.add_argument("--grpc", default=None, help="HOST:PORT of the gRPC API")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, help_text):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("model")
        versions = sub.add_mutually_exclusive_group()
        versions.add_argument("--version", type=int)
        versions.add_argument("--label")
        return sub

    command("status", "versions and their states")
    command("metadata", "signatures (inputs, outputs, dtypes, shapes)")
    predict = command("predict", "run a signature on JSON inputs")
    predict.add_argument("--inputs", type=_json_arg, required=True, help='{"alias": value} as JSON, or @file.json')
    predict.add_argument("--signature", default=None)
    predict.add_argument("--rows", action="store_true", help="send the REST row format (instances)")
    generate = command("generate", "text in, text out through a signature with a string input")
    generate.add_argument("prompts", nargs="+")
    generate.add_argument("--signature", default="generate")
    generate.add_argument("--input", action="append", default=[], metavar="NAME=JSON",
                          help="another input of the signature, e.g. max_new_tokens=16 (repeatable)")
    image = command("classify-image", "JPEG / PNG files through a signature taking image_bytes")
    image.add_argument("files", nargs="+")
    image.add_argument("--signature", default="classify_image")
    for verb in ("classify", "regress"):
        sub = command(verb, f"{verb} tf.Examples given as JSON")
        sub.add_argument("--examples", type=_json_arg, required=True, help='[{"feature": value}, ...] or @file')
        sub.add_argument("--context", type=_json_arg, default=None)
        sub.add_argument("--signature", default=None)
    return parser.parse_args(argv)


def make_client(args):
    if args.grpc:
        from serving.client.grpc_client import GrpcClient

        return GrpcClient(args.grpc, timeout=args.timeout)
    from serving.client.rest_client import RestClient

    return RestClient(args.rest or "localhost:8501", timeout=args.timeout)


def run(args, client):
    spec = dict(version=args.version, label=args.label)
    if args.command == "status":
        return client.status(args.model, **spec)
    if args.command == "metadata":
        return client.metadata(args.model, **spec)
    if args.command == "predict":
        inputs = args.inputs
        if not isinstance(inputs, dict):
            raise ServingClientError("INVALID_ARGUMENT", '--inputs must be a JSON object {"alias": value}')
        if args.rows and args.grpc:
            raise ServingClientError("INVALID_ARGUMENT", "--rows is a REST request format; drop it with --grpc")
        signature = client.metadata(args.model, **spec)["signatures"].get(args.signature or "serving_default", {})
        arrays = {alias: _array(value, signature.get("inputs", {}).get(alias, {}).get("dtype"))
                  for alias, value in inputs.items()}
        extra = {"row_format": True} if args.rows else {}
        return client.predict(args.model, arrays, args.signature, **spec, **extra)
    if args.command == "generate":
        extra = {}
        for item in args.input:
            name, _, value = item.partition("=")
            extra[name] = np.asarray(json.loads(value))
        return client.generate(args.model, args.prompts, args.signature, **spec, **extra)
    if args.command == "classify-image":
        files = np.empty(len(args.files), dtype=object)
        for index, path in enumerate(args.files):
            try:
                with open(path, "rb") as handle:
                    files[index] = handle.read()
            except OSError as error:
                raise ServingClientError("INVALID_ARGUMENT", f"{path}: cannot read it ({error.strerror})") from None
        return client.predict(args.model, {"image_bytes": files}, args.signature, **spec)
    method = getattr(client, args.command)
    return method(args.model, args.examples, args.context, args.signature, **spec)


def main(argv=None):
    args = parse_args(argv)
    client = make_client(args)
    try:
        result = run(args, client)
    except ServingClientError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(_plain(result), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
