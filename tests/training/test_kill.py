"""A CLI run killed with SIGKILL after a checkpoint resumes and ends exactly where an unkilled run ends."""

import json
import os
import signal
import time

import pytest

from tests.training.test_distribution import _cli

pytestmark = pytest.mark.slow

STEPS = 100
ARGS = ["--steps", str(STEPS), "--checkpoint-every", "20", "--batch-size", "8", "--sequence-length", "32",
        "--validation-steps", "1", "--verbose", "2", "--deterministic"]


def _finish(process, timeout=400):
    try:
        out, err = process.communicate(timeout=timeout)
    except Exception:
        process.kill()
        raise
    assert process.returncode == 0, err[-4000:]
    return out


def test_sigkill_then_rerun_resumes_from_the_last_checkpoint(data_dir, tmp_path):
    args = ["pretrain", "--data", str(data_dir / "corpus.txt")] + ARGS
    output = tmp_path / "killed"
    process = _cli(args + ["--output", str(output)])
    checkpoints = output / "checkpoints"
    deadline = time.time() + 300
    try:
        while not (checkpoints.is_dir() and any(n.startswith("ckpt-") for n in os.listdir(checkpoints))):
            assert process.poll() is None, process.communicate()[1][-4000:]
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (output / "summary.json").exists()  # it really died mid-run
    killed_at = max(int(n[5:]) for n in os.listdir(checkpoints) if n.startswith("ckpt-"))
    assert killed_at < STEPS

    out = _finish(_cli(args + ["--output", str(output)]))
    assert "resuming from" in out
    summary = json.load(open(output / "summary.json"))
    assert summary["steps"] == STEPS and summary["resumed_from"] >= killed_at
    history = json.load(open(checkpoints / f"ckpt-{STEPS:08d}" / "state.json"))["history"]
    assert [record["step"] for record in history] == list(range(20, STEPS + 1, 20))  # no interval twice or lost

    _finish(_cli(args + ["--output", str(tmp_path / "whole")]))
    whole = json.load(open(tmp_path / "whole" / "summary.json"))
    assert summary["weights_sha256"] == whole["weights_sha256"]
