"""`python -m training`: argparse over `TrainConfig`, a run, a short summary.

Options come from the dataclass fields (`batch_size` -> `--batch-size`,
booleans as `--flag` / `--no-flag`); values are parsed by type, never
evaluated. `--config FILE.json` supplies fields from a file (a run's
`run_config.json` works); flags on the command line override it. Exit
status: 0 when the run lowered the validation loss, 1 when it did not, 2 for
a usage or data error (printed as one `error:` line, no traceback).
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import sys

import training
from training.config import IMAGE_OPTIONS, TEXT_OPTIONS, TrainConfig

COMMANDS = {
    "pretrain": "pre-train (or continue pre-training with --init) a GPT, BERT or T5 model",
    "classify": "fine-tune BERT for sequence classification on label<TAB>text lines",
    "text-to-text": "fine-tune T5 on source<TAB>target lines",
    "classify-images": "train a ViT image classifier on one sub-folder of JPEG/PNG images per class "
                       "(default: built-in synthetic shapes)",
    "qa": "fine-tune BERT for extractive question answering on SQuAD v1.1 JSON (default: a built-in sample)",
    "tokenizer": "only train a tokenizer on --data and save it in --output (for multi-worker runs)",
}
RELOAD_TOLERANCE = 1e-5
TOKENIZER_OPTIONS = ("family", "data", "document_per", "skip_bad_files", "tokenizer_kind", "vocabulary_size",
                     "output")


def _key_value(text):
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, received {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string, e.g. position_encoding=rotary


def _add_options(parser, names=None, exclude=()):
    for field in dataclasses.fields(TrainConfig):
        flag = field.metadata.get("cli", True)
        if flag is False or (names is not None and field.name not in names) or field.name in exclude:
            continue
        flag = flag if isinstance(flag, str) else "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        shown = "none" if default is None or default in ([], {}, "") else default
        help = field.metadata["help"]
        help = help if "default:" in help else f"{help} (default: {shown})"
        kwargs = dict(dest=field.name, default=argparse.SUPPRESS, help=help)
        if field.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.type is list:
            kwargs.update(nargs="+", metavar="VALUE")
        elif field.type is dict:
            kwargs.update(action="append", type=_key_value, metavar="KEY=VALUE")
        else:
            kwargs.update(type=field.type, choices=field.metadata.get("choices"))
        parser.add_argument(flag, **kwargs)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m training", description=training.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for name, help in COMMANDS.items():
        sub = commands.add_parser(name, help=help, description=help)
        if name != "tokenizer":
            sub.add_argument("--config", dest="config_file", metavar="FILE.json",
                             help="read options from this JSON file (flags given here override it)")
        _add_options(sub, TOKENIZER_OPTIONS if name == "tokenizer" else None,
                     exclude=TEXT_OPTIONS if name == "classify-images" else IMAGE_OPTIONS)
    return parser


def parse_config(argv=None):
    """(command, TrainConfig) from the command line; exits with status 2 and a message on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "pretrain")  # the main job: `python -m training [options]`
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    values = {}
    try:
        if args.get("config_file"):
            values = TrainConfig.from_json_file(args["config_file"]).to_dict()
        args.pop("config_file", None)
        if "model_options" in args:
            args["model_options"] = dict(values.get("model_options", {}), **dict(args["model_options"]))
        values.update(args)
        if command != "tokenizer":
            values["task"] = command
        return command, TrainConfig.from_dict(values)
    except ValueError as error:
        parser.error(str(error))


def _figure(metrics, name):
    value = (metrics or {}).get(name)
    return None if value is None else float(value)


def format_summary(summary):
    """The lines printed at the end of a run."""
    initial, final = summary["initial_validation"], summary["final_validation"]
    line = f"validation loss {initial['loss']:.3f} -> {final['loss']:.3f}"
    if summary["task"] not in ("classify", "classify-images", "qa"):
        line += " nats/token"
        if _figure(final, "perplexity") is not None:
            line += f" (perplexity {_figure(initial, 'perplexity'):.1f} -> {_figure(final, 'perplexity'):.1f})"
    if _figure(final, "accuracy") is not None:
        line += f", accuracy {_figure(initial, 'accuracy'):.3f} -> {_figure(final, 'accuracy'):.3f}"
        if summary.get("labels"):
            line += f" ({len(summary['labels'])} classes, chance {1 / len(summary['labels']):.3f})"
    for name, label in (("exact_match", "exact match"), ("f1", "F1")):
        if _figure(final, name) is not None:
            line += f", {label} {_figure(initial, name):.1f} -> {_figure(final, name):.1f}"
    if summary.get("unigram_entropy") is not None:
        line += f"; uniform {summary['uniform_entropy']:.3f}, unigram entropy {summary['unigram_entropy']:.3f}"
    lines = [line]
    trained = summary["steps"] - summary["resumed_from"]
    if trained == 0:
        lines.append(f"nothing to train: the run in {summary['output']} is complete (step {summary['steps']}); "
                     f"--overwrite trains it again")
    else:
        if summary.get("images_per_second") is not None:
            size = summary["image_size"]
            rows = f"{summary['batch_size']} images ({size}x{size})"
            rate = f"{summary['images_per_second']:,.0f} images/s"
        else:
            rows, rate = f"{summary['tokens_per_step']:,} tokens", f"{summary['tokens_per_second']:,.0f} tokens/s"
        lines.append(
            f"trained {trained} steps" + (f" (resumed at {summary['resumed_from']})" if summary["resumed_from"] else "")
            + f" of {rows} in {summary['fit_seconds']:.0f}s ({rate}); {summary['seconds']:.0f}s in all"
        )
    output = summary["output"]
    files = (["model.keras"] if summary.get("model_file") else []) + (
        [os.path.relpath(summary["checkpoint"], output)] if summary.get("checkpoint") else []) + (
        ["predictions.json"] if _figure(final, "f1") is not None else [])
    files += ["tokenizer/"] if summary.get("vocabulary_size") else []
    lines.append(f"output {output}: {', '.join(files + ['logs/'])} "
                 f"(tensorboard --logdir {os.path.join(output, 'logs')})")
    if summary.get("reload_difference") is not None:
        lines.append(f"model.keras reloaded: outputs differ by at most {summary['reload_difference']:.1e}")
    lines.extend(failures(summary))
    return "\n".join(lines)


def failures(summary):
    """Why the run counts as failed (exit status 1); empty when it succeeded."""
    reasons = []
    if not math.isfinite(summary["final_validation"]["loss"]):
        reasons.append("training diverged (the loss became NaN or infinite); no model.keras was written, "
                       "try a lower --learning-rate")
    elif not summary["improved"]:
        reasons.append("training did not lower the validation loss")
    if (summary.get("reload_difference") or 0.0) > RELOAD_TOLERANCE:
        reasons.append(f"the saved model.keras does not reproduce the outputs (difference above {RELOAD_TOLERANCE})")
    return reasons


def _train_tokenizer(config):
    from keras_transformer.text.tokenizers import save_tokenizer
    from training import data

    if not config.output:
        raise ValueError("the tokenizer command needs --output FOLDER")
    corpus = data.load_corpus(dataclasses.replace(config, task="pretrain"))
    tokenizer = data.make_tokenizer(dataclasses.replace(config, strategy="default"), config.resolved_family,
                                    corpus)
    save_tokenizer(tokenizer, config.output)
    print(f"saved a {config.resolved_tokenizer_kind} tokenizer ({tokenizer.vocabulary_size()} ids) in {config.output}")


def main(argv=None):
    command, config = parse_config(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if config.verbose is None:
        config = dataclasses.replace(config, verbose=1 if sys.stdout.isatty() else 2)
    from training.run import train

    try:
        if command == "tokenizer":
            _train_tokenizer(config)
            return 0
        summary = train(config, echo=lambda line: print(line, flush=True))
    except ValueError as error:
        logging.getLogger(__name__).debug("run failed", exc_info=True)
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 1 if failures(summary) else 0
