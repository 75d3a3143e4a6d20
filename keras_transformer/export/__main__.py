"""Command line: export a model for TensorFlow Serving, or verify an export.

    python -m keras_transformer.export export SOURCE BASE_DIR [--version N] [--tokenizer DIR]
        [--signatures serving_default,generate] [--labels neg,pos] [--fill-mask-top-k 5]
        [--stop-token-ids 1,2] [--model-name NAME] [--no-warmup]
    python -m keras_transformer.export verify PATH [--model-name NAME] [--json REPORT]

SOURCE is a `.keras` file, a training run folder (`model.keras` or its newest
checkpoint, `tokenizer/`, `config.json` labels) or one of its `checkpoints/ckpt-N`.
`export` prints the new version folder; `verify` checks PATH (a base path:
its newest version; or a version folder) in a TensorFlow-only process and
exits with status 1 when the export is not servable as is.
"""

import argparse
import json
import sys


def _names(text):
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _ids(text):
    try:
        return [int(part) for part in _names(text)] if text else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; received {text!r}") from None


def _parser():
    parser = argparse.ArgumentParser(prog="python -m keras_transformer.export", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write BASE_DIR/VERSION (a SavedModel)")
    export.add_argument("source", help=".keras file, run folder (model.keras + tokenizer/) or checkpoints/ckpt-N")
    export.add_argument("base_dir", help="model base path; the version folder is created inside")
    export.add_argument("--version", type=int, help="version number (default: newest + 1)")
    export.add_argument("--tokenizer", help="tokenizer folder (save_tokenizer); default: SOURCE/tokenizer")
    export.add_argument("--signatures", type=_names, help="comma-separated names (default: all the model supports)")
    export.add_argument("--labels", type=_names, help="comma-separated class names for classify")
    export.add_argument("--fill-mask-top-k", type=int, default=5)
    export.add_argument("--stop-token-ids", type=_ids, help="comma-separated ids ending generate rows")
    export.add_argument("--model-name", default="model", help="name clients use (warm-up, README)")
    export.add_argument("--no-warmup", action="store_true", help="do not write the warm-up requests")
    verify = commands.add_parser("verify", help="check an export in a TensorFlow-only process")
    verify.add_argument("path", help="model base path (newest version) or version folder")
    verify.add_argument("--model-name", help="name for the example requests (default: the warm-up's)")
    verify.add_argument("--json", help="also write the report here")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    from keras_transformer.export import export, format_report, verify

    try:
        if args.command == "export":
            path = export(args.source, args.base_dir, version=args.version, tokenizer=args.tokenizer,
                          signatures=args.signatures, labels=args.labels, fill_mask_top_k=args.fill_mask_top_k,
                          stop_token_ids=args.stop_token_ids, model_name=args.model_name,
                          warmup=not args.no_warmup)
            print(path)
            return 0
        report = verify(args.path, model_name=args.model_name)
        print(format_report(report))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
