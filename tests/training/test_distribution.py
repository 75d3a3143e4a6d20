"""Strategies: mirrored == one device on the same global batch; multi-worker on loopback; options."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import run_in_fresh_process
from training import distribution
from training.config import TrainConfig

# Clipping at 0.05 is active at every step: Keras' own (per-replica) clipping would make the
# mirrored curve differ from the one-device curve; training.optimizer.AdamW clips the sum.
SAME_RUN = dict(steps=6, checkpoint_every=2, batch_size=8, sequence_length=32, validation_steps=2, clip_norm=0.05,
                verbose=0, deterministic=True)

MIRRORED = r"""
import json, sys
from training.config import TrainConfig
from training.run import train

common = dict(json.loads(sys.argv[1]), data=[sys.argv[2]])
curves = {}
for name, options in [("mirrored", dict(strategy="mirrored", cpu_devices=2)), ("default", {})]:
    summary = train(TrainConfig(output=f"{sys.argv[3]}/{name}", **options, **common))
    state = json.load(open(f"{sys.argv[3]}/{name}/checkpoints/ckpt-00000006/state.json"))
    curves[name] = {"replicas": summary["replicas"], "initial": summary["initial_validation"]["loss"],
                    "history": [[r["loss"], r["val_loss"]] for r in state["history"]]}
print(json.dumps(curves))
"""


def test_mirrored_on_two_cpu_devices_follows_the_one_device_loss_curve(data_dir, tmp_path):
    out = run_in_fresh_process(MIRRORED.replace("sys.argv[1]", repr(json.dumps(SAME_RUN)))
                               .replace("sys.argv[2]", repr(str(data_dir / "corpus.txt")))
                               .replace("sys.argv[3]", repr(str(tmp_path))))
    curves = json.loads(out.strip().splitlines()[-1])
    assert (curves["mirrored"]["replicas"], curves["default"]["replicas"]) == (2, 1)
    assert curves["mirrored"]["initial"] == pytest.approx(curves["default"]["initial"], rel=1e-6)
    np.testing.assert_allclose(curves["mirrored"]["history"], curves["default"]["history"], rtol=2e-5)
    assert curves["default"]["history"][-1][0] < curves["default"]["history"][0][0]


def test_dataset_options_shard_by_data():
    options = distribution.dataset_options()
    assert options.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    assert options.deterministic


def test_the_default_strategy_is_its_own_chief():
    strategy = distribution.make_strategy(TrainConfig())
    assert distribution.is_chief(strategy) and distribution.worker_name(strategy) == "local"
    distribution.check_same_step(strategy, 5)  # one replica: nothing to compare


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "--strategy multi_worker needs the TF_CONFIG environment variable"),
        ("{not json", "TF_CONFIG is not a valid cluster description"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "the task is not in the cluster"),
    ],
)
def test_multi_worker_needs_a_valid_tf_config(tf_config, message, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        distribution.make_strategy(TrainConfig(strategy="multi_worker"))


def test_mirrored_without_gpus_says_what_to_do(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    with pytest.raises(ValueError, match="--strategy mirrored found no GPU; .* --cpu-devices N"):
        distribution.make_strategy(TrainConfig(strategy="mirrored"))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cli(args, env=None):
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="", KERAS_BACKEND="tensorflow", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "training", *args], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=os.path.join(os.path.dirname(__file__), "..", ".."))


def _flags(options):
    return [f"--{key.replace('_', '-')}={value}" for key, value in options.items() if key != "deterministic"] + [
        "--deterministic"]


@pytest.mark.slow
def test_two_workers_on_loopback_agree_and_follow_the_one_device_curve(data_dir, tmp_path):
    args = ["pretrain", "--data", str(data_dir / "corpus.txt")] + _flags(SAME_RUN)
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        spec = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(_cli(args + ["--strategy", "multi_worker", "--output", str(tmp_path / "mw")],
                              {"TF_CONFIG": json.dumps(spec)}))
    reference = None
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=400)
            assert process.returncode == 0, stderr[-4000:]
        reference = _cli(args + ["--output", str(tmp_path / "one")])
        _, stderr = reference.communicate(timeout=300)
        assert reference.returncode == 0, stderr[-4000:]
    finally:
        for process in processes + [reference]:
            if process is not None and process.poll() is None:
                process.kill()
    fingerprints = [json.load(open(tmp_path / "mw" / "workers" / f"worker-{i}.json")) for i in range(2)]
    assert fingerprints[0] == fingerprints[1] and fingerprints[0]["step"] == 6
    summary = json.load(open(tmp_path / "mw" / "summary.json"))  # written by the chief (worker 0) only
    assert summary["replicas"] == 2 and summary["weights_sha256"] == fingerprints[0]["weights_sha256"]

    def history(run):
        return [[r["loss"], r["val_loss"]] for r in
                json.load(open(tmp_path / run / "checkpoints" / "ckpt-00000006" / "state.json"))["history"]]

    # DATA sharding splits each global batch between the workers: the one-device curve.
    np.testing.assert_allclose(history("mw"), history("one"), rtol=2e-5)
