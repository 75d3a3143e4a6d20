"""TensorFlow Serving's metrics, in Prometheus text exposition, with prometheus-client.

Names, labels and units are TF Serving's (`/tensorflow/serving/request_count`
becomes `:tensorflow:serving:request_count`, as its Prometheus exporter writes
it; latencies in microseconds, histograms with TF's exponential buckets):

    :tensorflow:serving:request_count{model_name, status}            counter
    :tensorflow:serving:request_latency{model_name, API, entrypoint} histogram (us)
    :tensorflow:serving:runtime_latency{model_name, API, runtime}    histogram (us)
    :tensorflow:serving:request_example_count_total{model}           counter
    :tensorflow:serving:model_warmup_latency{model_path, status}     histogram (us)
    :tensorflow:cc:saved_model:load_attempt_count{model_path, status} counter
    :tensorflow:cc:saved_model:load_latency{model_path}              counter (us)
    :tensorflow:serving:batching_session:queuing_latency{thread_pool_name}  histogram (us)
    :tensorflow:serving:batching_session:wrapped_run_count           counter
    :tensorflow:serving:batching_session:input_batch_size{model_name}       histogram
    :tensorflow:serving:batching_session:processed_batch_size{model_name}   histogram
    :tensorflow:serving:batching_session:padding_size{model_name, execution_batch_size} histogram

API is Predict, Classify, Regress or MultiInference; entrypoint GRPC or REST;
runtime TF1 (TF Serving runs every SavedModel, TF2 ones included, through a
Session). The metrics are process-wide, as TensorFlow's monitoring cells are.
`render()` gives the exposition text that the REST front end serves at
`prometheus_config.path` when `--monitoring_config_file` enables it.
"""

import contextlib
import contextvars
import functools
import re
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from serving.errors import from_exception

CONTENT_TYPE = CONTENT_TYPE_LATEST
GRPC, REST = "GRPC", "REST"
RUNTIME = "TF1"


def _exponential(scale, growth, count):
    """TensorFlow's monitoring::Buckets::Exponential bounds (the last bucket is +Inf)."""
    return tuple(round(scale * growth**i, 3) for i in range(count - 1)) + (float("inf"),)


LATENCY_BUCKETS = _exponential(10, 1.8, 33)  # microseconds, up to ~20 minutes
QUEUING_BUCKETS = _exponential(100, 1.2, 52)
SIZE_BUCKETS = _exponential(1, 2, 14)


def _name(path):
    return path.replace("/", ":")


class _Registry:
    """A CollectorRegistry whose counters are written under TF Serving's names (no `_total`, no `_created`)."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=False)
        self._counters = []

    def counter(self, path, documentation, labels=()):
        name = _name(path)
        self._counters.append(name)
        return Counter(name, documentation, labels, registry=self.registry)

    def histogram(self, path, documentation, labels, buckets):
        return Histogram(_name(path), documentation, labels, registry=self.registry, buckets=buckets)

    def render(self):
        families = list(self.registry.collect())
        for family in families:
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            if family.type == "counter":
                family.samples = [s._replace(name=s.name[:-len("_total")]) if s.name.endswith("_total") else s
                                  for s in family.samples]
        text = generate_latest(_Families(families)).decode("utf-8")
        # prometheus-client writes counter headers as NAME_total; TF Serving writes NAME.
        for name in self._counters:
            text = re.sub(rf"^(# (?:HELP|TYPE) ){re.escape(name)}_total ", rf"\g<1>{name} ", text, flags=re.M)
        return text


class _Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


_metrics = _Registry()
request_count = _metrics.counter("/tensorflow/serving/request_count", "The total number of requests.",
                                 ("model_name", "status"))
request_latency = _metrics.histogram(
    "/tensorflow/serving/request_latency",
    "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
    ("model_name", "API", "entrypoint"), LATENCY_BUCKETS)
runtime_latency = _metrics.histogram(
    "/tensorflow/serving/runtime_latency", "Distribution of wall time (in microseconds) for Tensorflow runtime.",
    ("model_name", "API", "runtime"), LATENCY_BUCKETS)
example_count = _metrics.counter("/tensorflow/serving/request_example_count_total",
                                 "The total number of tensorflow.Examples.", ("model",))
warmup_latency = _metrics.histogram(
    "/tensorflow/serving/model_warmup_latency",
    "Distribution of wall time (in microseconds) for warming up the model.", ("model_path", "status"),
    LATENCY_BUCKETS)
load_attempt_count = _metrics.counter("/tensorflow/cc/saved_model/load_attempt_count",
                                      "The number of times a SavedModel was successfully loaded.",
                                      ("model_path", "status"))
load_latency = _metrics.counter("/tensorflow/cc/saved_model/load_latency",
                                "Latency in microseconds for SavedModels that were successfully loaded.",
                                ("model_path",))
queuing_latency = _metrics.histogram(
    "/tensorflow/serving/batching_session/queuing_latency",
    "Distribution of wall time spent (in microseconds) in queuing", ("thread_pool_name",), QUEUING_BUCKETS)
wrapped_run_count = _metrics.counter("/tensorflow/serving/batching_session/wrapped_run_count",
                                     "Total count of run calls on the wrapped session")
input_batch_size = _metrics.histogram(
    "/tensorflow/serving/batching_session/input_batch_size",
    "Tracks the batch size distribution on the inputs by model_name (if available).", ("model_name",),
    SIZE_BUCKETS)
processed_batch_size = _metrics.histogram(
    "/tensorflow/serving/batching_session/processed_batch_size",
    "Tracks the batch size distribution on processing by model_name (if available).", ("model_name",),
    SIZE_BUCKETS)
padding_size = _metrics.histogram(
    "/tensorflow/serving/batching_session/padding_size",
    "Tracks the padding size distribution on batches by model_name (if available).",
    ("model_name", "execution_batch_size"), SIZE_BUCKETS)

BATCH_THREAD_POOL = "model_server_batch_threads"  # TF Serving's thread_pool_name without a batching file

_entrypoint = contextvars.ContextVar("serving_entrypoint", default=REST)
_api = contextvars.ContextVar("serving_api", default="Predict")


def render():
    """The Prometheus text exposition of every metric (str)."""
    return _metrics.render()


@contextlib.contextmanager
def entrypoint(name):
    """Marks the requests handled inside the block as coming from GRPC or REST (default REST)."""
    token = _entrypoint.set(name)
    try:
        yield
    finally:
        _entrypoint.reset(token)


def _micros(start):
    return max((time.monotonic() - start) * 1e6, 0.0)


def counted(api):
    """Decorates a ServingCore method whose first argument is the model name (MultiInference: the request).

    Counts the request by model and final status and observes its latency by
    model, API and entrypoint.
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, model, *args, **kwargs):
            name = model if isinstance(model, str) else model.tasks[0].model_spec.name if model.tasks else ""
            start = time.monotonic()
            token = _api.set(api)
            status = "OK"
            try:
                return method(self, model, *args, **kwargs)
            except Exception as error:
                status = from_exception(error).code.name
                raise
            finally:
                _api.reset(token)
                request_count.labels(name, status).inc()
                request_latency.labels(name, api, _entrypoint.get()).observe(_micros(start))

        return wrapper

    return decorate


def record_runtime(model_name, start):
    """One model run that began at `start` (time.monotonic())."""
    runtime_latency.labels(model_name, _api.get(), RUNTIME).observe(_micros(start))


def record_examples(model_name, count):
    example_count.labels(model_name).inc(count)


def record_load(model_path, status, start):
    load_attempt_count.labels(model_path, status).inc()
    if status == "OK":
        load_latency.labels(model_path).inc(_micros(start))


def record_warmup(model_path, status, start):
    warmup_latency.labels(model_path, status).observe(_micros(start))


def record_batch(model_name, input_sizes, processed_size, padding, queued_since):
    """One batch run: the sizes of the requests in it, its padded size, and when each request was queued."""
    for size in input_sizes:
        input_batch_size.labels(model_name).observe(size)
    processed_batch_size.labels(model_name).observe(processed_size)
    padding_size.labels(model_name, str(processed_size)).observe(padding)
    wrapped_run_count.inc()
    now = time.monotonic()
    for since in queued_since:
        queuing_latency.labels(BATCH_THREAD_POOL).observe(max((now - since) * 1e6, 0.0))
