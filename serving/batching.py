"""Server-side batching (`--enable_batching`), after TensorFlow Serving's BatchingSession.

Concurrent requests to the same model version and signature are concatenated
on dimension 0, padded up to the next `allowed_batch_sizes` entry by repeating
the first row, run once, and the outputs are split back in order. One
scheduler (`num_batch_threads` worker threads) serves every model. A batch runs
when it is full, when its oldest request has waited `batch_timeout_micros`, or
when a newer batch has opened behind it.

Differences from TF Serving, both on the safe side: requests whose inputs
differ in a dimension other than 0 go to separate batches (TF Serving would
fail the merged batch unless `pad_variable_length_inputs`); that field is read
but has no effect (a warning says so). As in TF Serving, with batching on every
input needs a batch dimension, all inputs the same size in it, and every output
must keep that dimension.

Parameters come from a text-format `BatchingParameters` file, e.g.

    max_batch_size { value: 32 }
    batch_timeout_micros { value: 2000 }
    max_enqueued_batches { value: 100 }
    num_batch_threads { value: 4 }
    allowed_batch_sizes: 8
    allowed_batch_sizes: 32
"""

import collections
import concurrent.futures
import dataclasses
import logging
import os
import threading
import time

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

from serving import metrics
from serving.errors import Code, Deadline, ServingError, invalid_argument

logger = logging.getLogger(__name__)


def _batching_parameters_class():
    """`tensorflow.serving.BatchingParameters` (session_bundle_config.proto); not in the pip package."""
    wrappers = descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="serving/batching_parameters.proto", package="tensorflow.serving", syntax="proto3",
        dependency=[wrappers.name])
    message = file.message_type.add(name="BatchingParameters")
    optional, repeated = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    wrapped = [("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
               ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
               ("thread_pool_name", "StringValue")]
    for number, (name, kind) in enumerate(wrapped, start=1):
        message.field.add(name=name, number=number, label=optional, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                          type_name=f".google.protobuf.{kind}")
    message.field.add(name="allowed_batch_sizes", number=6, label=repeated,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=optional,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL)
    message.field.add(name="enable_large_batch_splitting", number=8, label=optional,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, type_name=".google.protobuf.BoolValue")
    message.field.add(name="max_execution_batch_size", number=9, label=optional,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, type_name=".google.protobuf.Int64Value")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(wrappers)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


@dataclasses.dataclass
class BatchingOptions:
    """Resolved parameters. Unset fields take TensorFlow's SharedBatchScheduler defaults."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0  # 0: max_batch_size

    @classmethod
    def from_text(cls, text, source="<string>"):
        proto = BatchingParameters()
        try:
            text_format.Parse(text, proto)
        except text_format.ParseError as error:
            raise invalid_argument(f"Invalid BatchingParameters in {source}: {error}") from None
        options = cls()
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                     "enable_large_batch_splitting", "max_execution_batch_size"):
            if proto.HasField(name):
                setattr(options, name, getattr(proto, name).value)
        options.allowed_batch_sizes = tuple(proto.allowed_batch_sizes)
        options.pad_variable_length_inputs = proto.pad_variable_length_inputs
        options.validate()
        return options

    @classmethod
    def from_file(cls, path):
        try:
            with open(path, encoding="utf-8") as handle:
                return cls.from_text(handle.read(), source=path)
        except OSError as error:
            raise invalid_argument(f"Cannot read --batching_parameters_file {path}: {error}") from None

    @property
    def execution_batch_size(self):
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size

    def validate(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise invalid_argument(f"BatchingParameters.{name} must be >= 1; got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise invalid_argument(f"BatchingParameters.batch_timeout_micros must be >= 0; got {self.batch_timeout_micros}")
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] < 1:
                raise invalid_argument(f"allowed_batch_sizes entries must be positive and increasing; got {list(sizes)}")
            if sizes[-1] != self.execution_batch_size:
                raise invalid_argument(
                    f"The final entry in allowed_batch_sizes must equal max_batch_size (or "
                    f"max_execution_batch_size with enable_large_batch_splitting); got {sizes[-1]} vs "
                    f"{self.execution_batch_size}")
        if self.pad_variable_length_inputs:
            logger.warning("pad_variable_length_inputs is ignored: requests of different shapes are batched separately")

    def padded_size(self, size):
        return next((s for s in self.allowed_batch_sizes if s >= size), size)


_Task = collections.namedtuple("_Task", "inputs size future deadline")


class _Batch:
    def __init__(self):
        self.tasks, self.size, self.opened = [], 0, time.monotonic()


class BatchScheduler:
    """Shared batch scheduler; `run` blocks until the request's rows come back."""

    def __init__(self, options):
        self.options = options
        self._lock = threading.Condition()
        self._queues = {}  # key -> (servable, signature, output_names, deque of _Batch)
        self._stopping = False
        self.stats = collections.Counter()
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, servable, signature, inputs, output_names=None, deadline=None):
        sizes = {a.shape[0] if a.ndim else None for a in inputs.values()}
        if None in sizes:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        if len(sizes) != 1:
            raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
        size = sizes.pop()
        if size > self.options.max_batch_size:
            raise invalid_argument(f"Task size {size} is larger than maximum input batch size {self.options.max_batch_size}")
        step = self.options.execution_batch_size
        if size == 0:
            return servable.run(signature, inputs, output_names)
        pieces = [{k: v[i:i + step] for k, v in inputs.items()} for i in range(0, size, step)]
        key = (id(servable), signature, tuple(output_names or ()),
               tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(inputs.items())))
        deadline = Deadline.of(deadline)
        futures = [self._enqueue(key, servable, signature, output_names, piece, deadline) for piece in pieces]
        results = []
        for future in futures:
            try:
                results.append(future.result() if deadline is None else
                               deadline.wait(future, "Deadline exceeded while the request was batched"))
            except ServingError:
                for pending in futures:
                    pending.cancel()  # a task not yet taken is dropped (and its handle released) by the worker
                raise
        if len(results) == 1:
            return results[0]
        return {k: np.concatenate([r[k] for r in results]) for k in results[0]}

    def _enqueue(self, key, servable, signature, output_names, inputs, deadline=None):
        size = next(iter(inputs.values())).shape[0]
        task = _Task(inputs, size, concurrent.futures.Future(), deadline)
        capacity = self.options.execution_batch_size
        with self._lock:
            if self._stopping:
                raise ServingError(Code.UNAVAILABLE, "Server is shutting down")
            entry = self._queues.setdefault(key, (servable, signature, output_names, collections.deque()))
            batches = entry[3]
            if not batches or batches[-1].size + size > capacity:
                if len(batches) >= self.options.max_enqueued_batches:
                    raise ServingError(Code.UNAVAILABLE, "The batch scheduling queue to which this task was submitted is full")
                batches.append(_Batch())
            servable.acquire()  # each queued task keeps its version loaded until its batch has run or dropped it
            batches[-1].tasks.append(task)
            batches[-1].size += size
            self._lock.notify()
        return task.future

    def _take(self):
        """(entry, batch) of the oldest ready batch, or (None, seconds to wait)."""
        now, timeout = time.monotonic(), self.options.batch_timeout_micros / 1e6
        best, wait = None, None
        for key, entry in self._queues.items():
            batches = entry[3]
            first = batches[0]
            due = first.opened + timeout
            if len(batches) > 1 or first.size >= self.options.execution_batch_size or now >= due or self._stopping:
                if best is None or first.opened < best[2].opened:
                    best = (key, entry, first)
            else:
                wait = due - now if wait is None else min(wait, due - now)
        if best is None:
            return None, wait
        key, entry, batch = best
        entry[3].popleft()
        if not entry[3]:
            del self._queues[key]
        return entry, batch

    def _work(self):
        while True:
            with self._lock:
                while True:
                    if self._stopping and not self._queues:
                        return
                    entry, batch = self._take()
                    if entry is not None:
                        break
                    self._lock.wait(batch)
            self._process(entry, batch)

    def _process(self, entry, batch):
        servable, signature, output_names, _ = entry
        try:
            self._run_batch(servable, signature, output_names, batch)
        finally:
            for _ in batch.tasks:
                servable.release()

    def _run_batch(self, servable, signature, output_names, batch):
        tasks = []
        for task in batch.tasks:
            if task.deadline is not None and task.deadline.expired():
                task.future.cancel()  # nobody waits for it: dropped before it runs
            if task.future.set_running_or_notify_cancel():
                tasks.append(task)
        with self._lock:
            self.stats.update(dropped=len(batch.tasks) - len(tasks))
        if not tasks:
            return
        total = sum(t.size for t in tasks)
        padded = self.options.padded_size(total)
        merged = {}
        for alias in tasks[0].inputs:
            parts = [t.inputs[alias] for t in tasks]
            if padded > total:  # pad with copies of the first row, as BatchingSession does
                parts.append(np.repeat(parts[0][:1], padded - total, axis=0))
            merged[alias] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        try:
            outputs = servable.run(signature, merged, output_names)
            for alias, array in outputs.items():
                if array.ndim == 0 or array.shape[0] != padded:
                    raise ServingError(Code.FAILED_PRECONDITION, (
                        f"Batched output tensor '{alias}' has shape {list(array.shape)}; its 0th dimension does not "
                        f"equal the sum of the 0th dimension sizes of the input tensors ({padded}). "
                        "Signatures served with batching must keep the batch dimension in every output."))
        except Exception as error:  # noqa: BLE001 - reported to every request of the batch
            for task in tasks:
                task.future.set_exception(error)
            return
        with self._lock:
            self.stats.update(batches=1, tasks=len(tasks), rows=total, padding=padded - total)
        metrics.record_batch(servable.name, [t.size for t in tasks], padded, padded - total, [batch.opened] * len(tasks))
        offset = 0
        for task in tasks:
            task.future.set_result({k: v[offset:offset + task.size] for k, v in outputs.items()})
            offset += task.size

    def stop(self, timeout=None):
        """Runs what is queued, then stops the threads."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout)
