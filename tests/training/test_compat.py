"""Two-worker `fit` under MultiWorkerMirroredStrategy on loopback ports."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

WORKER = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
import keras
from training import compat

compat.apply()
strategy = tf.distribute.MultiWorkerMirroredStrategy()
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8)).astype("float32")
y = (x @ rng.normal(size=(8, 1))).astype("float32")
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
dataset = tf.data.Dataset.from_tensor_slices(({"features": x}, y)).batch(16).repeat().with_options(options)
with strategy.scope():
    inputs = keras.Input((8,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
history = model.fit(dataset, steps_per_epoch=6, epochs=2, verbose=0)
np.savez(sys.argv[1], *model.get_weights(), loss=np.array(history.history["loss"]))
"""


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_needs_patch_tells_when_upstream_keras_changes():
    """Fails once Keras no longer has the faulty code: then delete training/compat.py."""
    from training import compat

    assert compat.needs_patch()


def test_two_workers_fit_and_agree_on_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        env["KERAS_BACKEND"] = "tensorflow"
        env["CUDA_VISIBLE_DEVICES"] = ""
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(tmp_path / f"worker{index}.npz")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise
        assert process.returncode == 0, stderr[-4000:]
    first, second = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert first.files == second.files
    for name in first.files:
        np.testing.assert_allclose(first[name], second[name], rtol=1e-6, atol=1e-6)
    loss = first["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]
