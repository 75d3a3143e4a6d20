"""The command line: help, option parsing, clear errors for bad options and bad data."""

import gzip
import json

import pytest

from tests.training.conftest import SMALL
from training.cli import main, parse_config


def run_main(argv, capsys):
    """(exit status, stdout, stderr) of `python -m training ARGV`, run in this process."""
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_help_lists_the_commands_and_the_launch_commands(capsys):
    status, out, _ = run_main(["--help"], capsys)
    assert status == 0
    for text in ("pretrain", "classify", "text-to-text", "qa", "--strategy mirrored", "--strategy multi_worker",
                 "TF_CONFIG", "--strategy tpu"):
        assert text in out


def test_command_help_lists_every_option_with_its_default(capsys):
    status, out, _ = run_main(["pretrain", "--help"], capsys)
    assert status == 0
    assert "--batch-size BATCH_SIZE" in out and "(default: 32)" in out
    assert "{float32,mixed_float16,mixed_bfloat16}" in out
    assert "--overwrite, --no-overwrite" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "--batch-size must be a positive integer; received 0"),
        (["--batch-size", "x"], "invalid int value: 'x'"),
        (["--family", "rnn"], "invalid choice: 'rnn'"),
        (["--preset", "bert_tiny"], "unknown preset 'bert_tiny'; valid presets: gpt2_large"),
        (["--model-option", "num_layers"], "expected KEY=VALUE, received 'num_layers'"),
        (["--labels", "a", "b"], "--labels is for the classify and classify-images tasks only"),
        (["--image-size", "48"], "unrecognized arguments: --image-size"),
        (["classify-images", "--sequence-length", "16"], "unrecognized arguments: --sequence-length"),
        (["classify-images", "--family", "bert"], "trains the vit family; received --family bert"),
        (["classify-images", "--image-size", "0"], "--image-size must be a positive integer; received 0"),
        (["classify-images", "--data", "a", "b"], "one image folder per --data / --validation-data"),
        (["pretrain", "--family", "vit"], "the vit family trains with the classify-images task"),
        (["classify", "--doc-stride", "8", "--data", "x.txt"], "--doc-stride is for the qa task only"),
        (["classify"], "the classify task needs --data"),
        (["text-to-text", "--family", "gpt", "--data", "x.txt"], "trains the t5 family; received --family gpt"),
        (["--steps-per-execution", "7", "--checkpoint-every", "14"], "--steps-per-execution must divide --steps"),
        (["--steps-per-execution", "3", "--steps", "30"], "--steps-per-execution must divide --checkpoint-every"),
        (["--learning-rate", "-1"], "--learning-rate must be a positive number; received -1.0"),
        (["--cpu-devices", "2"], "--cpu-devices goes with --strategy mirrored only"),
        (["--strategy", "parameter_server"], "invalid choice: 'parameter_server'"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["--config", "/nonexistent/run.json"], "/nonexistent/run.json: cannot read the configuration"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(argv, message, capsys):
    status, _, err = run_main(argv, capsys)
    assert status == 2
    assert message in err


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"steps": 7, "batch_size": 4, "model_options": {"num_layers": 1}}))
    command, config = parse_config(["pretrain", "--config", str(path), "--steps", "9",
                                    "--model-option", "dropout=0.2"])
    assert command == "pretrain" and config.task == "pretrain"
    assert (config.steps, config.batch_size) == (9, 4)
    assert config.model_options == {"num_layers": 1, "dropout": 0.2}


def test_model_option_values_are_json_or_plain_strings_never_evaluated():
    _, config = parse_config(["--model-option", "num_layers=3", "--model-option", "position_encoding=rotary",
                              "--model-option", "activation=__import__('os').getcwd()"])
    assert config.model_options == {"num_layers": 3, "position_encoding": "rotary",
                                    "activation": "__import__('os').getcwd()"}


def test_no_arguments_is_the_default_gpt_pretraining():
    command, config = parse_config([])
    assert command == "pretrain"
    assert (config.family, config.resolved_family, config.data, config.resolved_tokenizer_kind) == (None, "gpt", [],
                                                                                                    "bytes")
    assert config.output_dir() == "runs/gpt"


def _small_args(output):
    return ["--output", str(output), "--steps", "2", "--checkpoint-every", "2", "--batch-size", "8",
            "--sequence-length", "32", "--validation-steps", "1", "--verbose", "0"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.txt", b"  \n\n", "empty.txt: the file is empty (no text)"),
        ("binary.txt", b"text\x00\x01\x02", "binary.txt: binary data (NUL byte at offset 4), not text"),
        ("latin1.txt", b"caf\xe9 au lait\n", "latin1.txt: not valid UTF-8 (byte 0xe9 at offset 3)"),
        ("broken.txt.gz", b"not gzip at all", "broken.txt.gz: cannot read the file"),
    ],
)
def test_bad_text_files_stop_before_training_naming_the_file(name, content, message, tmp_path, capsys):
    (tmp_path / name).write_bytes(content)
    status, out, err = run_main(["--data", str(tmp_path / name)] + _small_args(tmp_path / "run"), capsys)
    assert status == 2 and message in err
    assert "Traceback" not in err and not (tmp_path / "run" / "checkpoints").exists()


def test_a_label_outside_the_classes_names_file_and_line(tmp_path, capsys):
    data = tmp_path / "train.txt"
    data.write_text("pos\tgood film\nneg\tbad film\n\nmaybe\tsome film\n")
    status, _, err = run_main(["classify", "--data", str(data), "--labels", "neg", "pos"]
                              + _small_args(tmp_path / "run"), capsys)
    assert status == 2
    assert f"{data} line 4 has the unknown label 'maybe' (expected one of ['neg', 'pos'])" in err


def test_a_validation_label_unseen_in_training_is_an_error(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("pos\tgood film\nneg\tbad film\n")
    (tmp_path / "valid.txt").write_text("pos\tgreat\nneutral\tso so\n")
    status, _, err = run_main(["classify", "--data", str(tmp_path / "train.txt"), "--validation-data",
                               str(tmp_path / "valid.txt")] + _small_args(tmp_path / "run"), capsys)
    assert status == 2 and "valid.txt line 2 has the unknown label 'neutral'" in err


def test_a_line_without_a_tab_is_an_error(tmp_path, capsys):
    (tmp_path / "pairs.txt").write_text("translate: a\tb\njust one field\n")
    status, _, err = run_main(["text-to-text", "--data", str(tmp_path / "pairs.txt")]
                              + _small_args(tmp_path / "run"), capsys)
    assert status == 2 and "pairs.txt line 2 is not \"source<TAB>target\": 'just one field'" in err


def test_skip_bad_files_counts_them_and_trains(data_dir, tmp_path, capsys):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a_good.txt").write_text((data_dir / "corpus.txt").read_text())
    (folder / "b_binary.txt").write_bytes(b"\x00\x01")
    (folder / "c_empty.txt").write_text("")
    with gzip.open(folder / "d_good.txt.gz", "wt") as handle:
        handle.write("One more document, compressed.\n")
    status, out, err = run_main(["--data", str(folder), "--skip-bad-files"] + _small_args(tmp_path / "run"), capsys)
    assert status in (0, 1), err  # trained (2 steps need not lower the loss)
    assert "skipped 2 bad file(s)" in out and "b_binary.txt (binary data" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [path.rsplit("/", 1)[1] for path, _ in summary["skipped_files"]] == ["b_binary.txt", "c_empty.txt"]
    assert summary["steps"] == 2


def test_small_run_prints_a_summary(data_dir, tmp_path, capsys):
    args = ["--data", str(data_dir / "corpus.txt"), "--output", str(tmp_path / "run")]
    args += [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    status, out, _ = run_main(args, capsys)
    assert status == 0
    assert "validation loss" in out and "unigram entropy" in out and "trained 6 steps" in out


def test_the_tokenizer_command_trains_and_saves_one(data_dir, tmp_path, capsys):
    from keras_transformer.text.tokenizers import load_tokenizer

    status, out, _ = run_main(["tokenizer", "--data", str(data_dir / "corpus.txt"), "--tokenizer-kind", "wordpiece",
                               "--vocabulary-size", "300", "--output", str(tmp_path / "tok")], capsys)
    assert status == 0 and "saved a wordpiece tokenizer" in out
    assert 50 < load_tokenizer(str(tmp_path / "tok")).vocabulary_size() <= 300


def test_a_diverging_run_exits_1_and_writes_no_model(data_dir, tmp_path, capsys):
    args = ["--data", str(data_dir / "corpus.txt"), "--learning-rate", "1e4", "--clip-norm", "0",
            "--warmup-steps", "0"] + _small_args(tmp_path / "run")
    args[args.index("--steps") + 1] = "40"
    args[args.index("--checkpoint-every") + 1] = "10"
    status, out, _ = run_main(args, capsys)
    assert status == 1 and "training diverged (the loss became NaN or infinite)" in out
    assert not (tmp_path / "run" / "model.keras").exists() and not (tmp_path / "run" / "checkpoints").exists()
