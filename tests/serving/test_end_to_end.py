"""The README's main job, shortened: train, export, verify, serve, query over REST and gRPC, stop."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_end_to_end_job_runs_and_both_protocols_agree(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "serving.end_to_end", "--gpt-steps", "40", "--bert-steps", "80",
         "--output", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "REST == gRPC):" in result.stdout.split("Classified")[0]
    assert "Classified (BERT, REST == gRPC)" in result.stdout
    assert "server stopped cleanly" in result.stdout
    assert "generated words are words of the corpus" in result.stdout
    assert "I0000" not in result.stdout + result.stderr  # TensorFlow's start-up messages stay in the logs
    steps = [line.split("]")[0] + "]" for line in result.stdout.splitlines() if line.startswith("[")]
    assert steps == ["[train-gpt]", "[train-bert]", "[attention-bert]", "[export-gpt]", "[verify-gpt]",
                     "[export-bert]", "[verify-bert]", "[serve]"]
    pictures = result.stdout.split("attention for")[1].split("server stopped")[0].split()
    assert any(path.endswith("attention_encoder.png") for path in pictures)
    assert all((tmp_path / "run" / "attention" / name).exists() for name in ("attention_encoder.png", "head_view.html"))
    for name in ("gpt", "bert"):
        assert (tmp_path / "run" / "models" / name / "1" / "saved_model.pb").exists()
