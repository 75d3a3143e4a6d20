"""Server-side batching: parameters, the scheduler on a fake model, and a real server."""

import threading
import time

import numpy as np
import pytest

from serving import ModelServer, ServerOptions
from serving.batching import BatchingOptions, BatchScheduler
from serving.errors import ServingError
from tests.serving import models
from tests.serving.helpers import rest_json

PARAMETERS = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 50000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
thread_pool_name { value: "model_server_batch_threads" }
allowed_batch_sizes: 2
allowed_batch_sizes: 4
allowed_batch_sizes: 8
"""


def test_parameters_parse_tf_serving_syntax_and_validate():
    options = BatchingOptions.from_text(PARAMETERS)
    assert (options.max_batch_size, options.batch_timeout_micros, options.num_batch_threads,
            options.allowed_batch_sizes) == (8, 50000, 1, (2, 4, 8))
    assert [options.padded_size(n) for n in (1, 2, 3, 5, 8)] == [2, 2, 4, 8, 8]
    defaults = BatchingOptions.from_text("")
    assert (defaults.max_batch_size, defaults.batch_timeout_micros, defaults.max_enqueued_batches) == (1000, 0, 10)
    for text, needle in (("max_batch_size { value: 8 } allowed_batch_sizes: 4", "final entry in allowed_batch_sizes"),
                         ("max_batch_size { value: 8 } allowed_batch_sizes: 8 allowed_batch_sizes: 4", "increasing"),
                         ("num_batch_threads { value: 0 }", "num_batch_threads must be >= 1"),
                         ("max_batch_sizes { value: 8 }", 'has no field named "max_batch_sizes"'),
                         ("max_batch_size: 8", "Invalid BatchingParameters")):
        with pytest.raises(ServingError, match=needle):
            BatchingOptions.from_text(text)
    with pytest.raises(ServingError, match="requires --enable_batching"):
        ServerOptions(model_base_path="/x", batching_parameters=PARAMETERS).batching_options()


class _RowWise:
    """A fake servable: y = 10 * x per row; records the batch sizes it ran."""

    name = "fake"

    def __init__(self, delay=0.0):
        self.calls, self.delay, self.held = [], delay, 0

    def acquire(self):  # the scheduler holds the version while a task is queued or running
        self.held += 1

    def release(self):
        self.held -= 1

    def run(self, signature, inputs, output_names=None):
        self.calls.append(inputs["x"].copy())
        time.sleep(self.delay)
        return {"y": inputs["x"] * 10, "first": np.repeat(inputs["x"][:1], len(inputs["x"]), axis=0)}


def _concurrently(function, arguments):
    results = [None] * len(arguments)

    def run(i):
        results[i] = function(*arguments[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(arguments))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_scheduler_merges_pads_with_first_row_and_splits_back():
    scheduler = BatchScheduler(BatchingOptions.from_text(PARAMETERS))
    servable = _RowWise()
    requests = [(servable, "s", {"x": np.full((rows, 2), i, np.float32)}) for i, rows in enumerate([1, 2, 1, 2, 1])]
    try:
        results = _concurrently(scheduler.run, requests)
    finally:
        scheduler.stop()
    for (_, _, inputs), result in zip(requests, results):
        np.testing.assert_array_equal(result["y"], inputs["x"] * 10)
    batch_sizes = [len(call) for call in servable.calls]
    assert all(size in (2, 4, 8) for size in batch_sizes)  # always an allowed size
    assert len(servable.calls) < len(requests)  # requests were merged
    assert scheduler.stats["rows"] == 7 and scheduler.stats["padding"] == sum(batch_sizes) - 7
    assert servable.held == 0  # every task released the version it held


def test_scheduler_pads_with_copies_of_the_first_row():
    scheduler = BatchScheduler(BatchingOptions.from_text(PARAMETERS))
    servable = _RowWise()
    x = np.float32([[1, 2], [3, 4], [5, 6]])
    try:
        np.testing.assert_array_equal(scheduler.run(servable, "s", {"x": x})["y"], x * 10)
    finally:
        scheduler.stop()
    (call,) = servable.calls
    np.testing.assert_array_equal(call, np.float32([[1, 2], [3, 4], [5, 6], [1, 2]]))  # 3 rows -> allowed size 4


def test_scheduler_rejects_what_tf_serving_rejects():
    scheduler = BatchScheduler(BatchingOptions.from_text(PARAMETERS))
    servable = _RowWise()
    try:
        with pytest.raises(ServingError, match="Task size 9 is larger than maximum input batch size 8"):
            scheduler.run(servable, "s", {"x": np.zeros((9, 2), np.float32)})
        with pytest.raises(ServingError, match="must have at least one dimension"):
            scheduler.run(servable, "s", {"x": np.float32(1.0)})
        with pytest.raises(ServingError, match="equal 0th-dimension size"):
            scheduler.run(servable, "s", {"x": np.zeros((2, 1)), "z": np.zeros((3, 1))})
    finally:
        scheduler.stop()
    split = BatchScheduler(BatchingOptions.from_text(
        "max_batch_size { value: 8 } enable_large_batch_splitting { value: true } max_execution_batch_size { value: 3 }"))
    try:
        x = np.arange(16, dtype=np.float32).reshape(8, 2)
        np.testing.assert_array_equal(split.run(servable, "s", {"x": x})["y"], x * 10)
        assert [len(c) for c in servable.calls] == [3, 3, 2]
    finally:
        split.stop()


@pytest.fixture(scope="module")
def batching_servers(built, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("batching") / "lm")
    models.install(built["lm1"], base, 1)
    common = dict(model_name="lm", model_base_path=base, port=0, rest_api_port=0, file_system_poll_wait_seconds=0)
    with ModelServer(ServerOptions(**common)) as plain, \
            ModelServer(ServerOptions(**common, enable_batching=True, batching_parameters=PARAMETERS)) as batched:
        yield plain, batched


def test_batching_gives_the_same_results_as_without(batching_servers):
    plain, batched = batching_servers
    rng = np.random.RandomState(0)
    # Two sequence lengths: requests of different shapes are batched separately.
    bodies = [{"inputs": rng.randint(0, models.VOCABULARY_SIZE, (rows, length)).tolist()}
              for rows, length in [(1, 3), (2, 3), (1, 5), (3, 3), (2, 5), (1, 3), (1, 3), (2, 5)]]
    call = lambda port, body: rest_json(port, "POST", "/v1/models/lm:predict", body)  # noqa: E731
    without = [call(plain.rest_port, body) for body in bodies]
    with_batching = _concurrently(call, [(batched.rest_port, body) for body in bodies])
    for body, (status_a, a), (status_b, b) in zip(bodies, without, with_batching):
        assert status_a == status_b == 200
        np.testing.assert_allclose(b["outputs"], a["outputs"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a["outputs"], models.lm_logits(1, body["inputs"]), rtol=1e-5, atol=1e-6)
    stats = batched.batcher.stats
    assert stats["tasks"] == len(bodies) and stats["batches"] < len(bodies)
    status, body = call(batched.rest_port, {"inputs": [[1]] * 9})
    assert status == 400 and "Task size 9 is larger than maximum input batch size 8" in body["error"]
    assert call(batched.rest_port, {"inputs": [[1, 2]]})[0] == 200
