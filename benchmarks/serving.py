"""Embedded server on loopback: throughput and latency, batching on/off, overhead vs in-process.

    python benchmarks/serving.py                         # 1 and 8 clients, 5 s each
    python benchmarks/serving.py --clients 1 16 --duration 10 --protocols grpc

Builds a small next-token model as a SavedModel (tf.Module: embedding 1024 x
256, two GELU layers of 1024, mean pool, tied output; token_ids [B, 32] ->
logits [B, 1024]), then for REST and gRPC, batching off and on, starts
`python -m serving` in its own process and runs N client threads for a fixed
time, each sending one-row requests back to back (REST: columnar JSON over a
kept-alive http.client connection, response parsed; gRPC: official stubs).
The baseline calls the same signature in-process from N threads. Overhead =
server p50 - in-process p50 at the same concurrency. Then, batching off, the
same load against variants of the server: Prometheus metrics enabled, the
access log on, and gRPC over a UNIX socket (`--variants`), so the cost of each
reads off the rows beside the plain server's. Last, REST through the standard
library's `http.server` in front of the same API (`benchmarks/stdlib_rest.py`),
which prices our HTTP/1.1 front end. Prints a table and writes JSON.
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCABULARY, WIDTH, HIDDEN, LENGTH = 1024, 256, 1024, 32
BATCHING = """max_batch_size { value: 32 } batch_timeout_micros { value: 1000 }
max_enqueued_batches { value: 1000 } num_batch_threads { value: %d }"""


class NextToken(tf.Module):
    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.RandomState(seed)
        self.embedding = tf.Variable(rng.randn(VOCABULARY, WIDTH).astype("float32") * 0.05)
        self.w1 = tf.Variable(rng.randn(WIDTH, HIDDEN).astype("float32") * 0.05)
        self.w2 = tf.Variable(rng.randn(HIDDEN, WIDTH).astype("float32") * 0.05)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    def logits(self, token_ids):
        x = tf.gather(self.embedding, token_ids)  # (batch, time, width)
        x = x + tf.nn.gelu(x @ self.w1) @ self.w2
        pooled = tf.reduce_mean(x, axis=1)  # (batch, width)
        return {"logits": pooled @ tf.transpose(self.embedding)}  # (batch, vocabulary)


def percentile(values, q):
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


def drive(clients, duration, make_call):
    """Runs `clients` threads calling make_call()() back to back for `duration` seconds."""
    latencies, errors, barrier = [], [], threading.Barrier(clients + 1)
    stop = threading.Event()

    def worker():
        call = make_call()
        try:
            call()  # warm the connection
        except Exception as error:  # noqa: BLE001 - a refused connection is an error, not a hang
            errors.append(repr(error))
        barrier.wait()
        mine = []
        while not stop.is_set():
            start = time.perf_counter()
            try:
                call()
            except Exception as error:  # noqa: BLE001 - counted and reported
                errors.append(repr(error))
                continue
            mine.append(time.perf_counter() - start)
        latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(duration)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "errors": len(errors), "throughput_rps": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Server variants measured beside the plain server (batching off): their extra flags.
VARIANTS = {
    "metrics": lambda workdir: ["--monitoring_config_file=" + _write(
        workdir, "monitoring.config", 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }')],
    "access log": lambda workdir: ["--access_log_file=" + os.path.join(workdir, "access.log")],
    "gRPC over a UNIX socket": lambda workdir: ["--grpc_socket_path=" + os.path.join(workdir, "grpc.sock")],
}


def _write(workdir, name, text):
    path = os.path.join(workdir, name)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def start_server(base, batching, workdir, root=ROOT, extra_flags=(), model_name="bench", module="serving"):
    rest_port = free_port()
    command = [sys.executable, "-m", module, f"--port={free_port()}", f"--rest_api_port={rest_port}", f"--model_name={model_name}",
               f"--model_base_path={base}", "--file_system_poll_wait_seconds=0", "--grpc_max_threads=32",
               *extra_flags]
    if batching:
        path = os.path.join(workdir, "batching.txt")
        with open(path, "w") as handle:
            handle.write(BATCHING % (os.cpu_count() or 1))
        command += ["--enable_batching", f"--batching_parameters_file={path}"]
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(command, cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    log = []
    for line in process.stderr:
        log.append(line)
        if "Exporting HTTP/REST API" in line:
            break
    else:
        raise RuntimeError("server did not start:\n" + "".join(log))
    grpc_port = int(re.search(r"gRPC ModelServer at [\d.]+:(\d+)", "".join(log)).group(1))
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()  # keep draining
    return process, rest_port, grpc_port


def rest_caller(port, ids=None, model_name="bench", body=None, check=None):
    """A factory of REST predict callers (one kept-alive connection each) sending `body` (default:
    `ids` as columnar `token_ids`); a non-200 answer, or one `check(parsed)` finds false, raises."""
    body = json.dumps(body or {"inputs": {"token_ids": ids.tolist()}})

    def make():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def call():
            connection.request("POST", f"/v1/models/{model_name}:predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(data[:200])
            if not (check or bool)(json.loads(data)):
                raise RuntimeError(f"unexpected answer: {data[:200]!r}")

        return call

    return make


def grpc_caller(port, ids, target=None):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(target or f"127.0.0.1:{port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "bench"
    request.inputs["token_ids"].CopyFrom(tf.make_tensor_proto(ids))

    def make():
        def call():
            tf.make_ndarray(stub.Predict(request, timeout=60).outputs["logits"])

        return call

    return make


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--protocols", nargs="+", default=["rest", "grpc"], choices=["rest", "grpc"])
    parser.add_argument("--output", default="runs/benchmarks/serving.json")
    parser.add_argument("--batching", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS),
                        help="server variants measured beside the plain one (batching off)")
    parser.add_argument("--baseline_root", nargs="*", default=[],
                        help="also serve from these checkouts (e.g. `git archive OLD serving | tar -x -C DIR`), same "
                             "run; rows are tagged with each folder's name")
    parser.add_argument("--stdlib-front", action=argparse.BooleanOptionalAction, default=True,
                        help="also serve REST through the standard library's http.server (benchmarks/stdlib_rest.py): "
                             "the same API behind another HTTP layer, batching off")
    args = parser.parse_args(argv)
    ids = np.random.RandomState(1).randint(0, VOCABULARY, (1, LENGTH)).astype(np.int32)
    rows, load_before = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        module = NextToken()
        tf.saved_model.save(module, os.path.join(workdir, "bench", "1"), signatures={"serving_default": module.logits})
        function = tf.saved_model.load(os.path.join(workdir, "bench", "1")).signatures["serving_default"]
        direct = lambda: (lambda: function(token_ids=tf.constant(ids))["logits"].numpy())  # noqa: E731
        for clients in args.clients:
            rows.append({"setup": "in-process SavedModel", "clients": clients, **drive(clients, args.duration, direct)})
            print(f"  in-process, {clients} clients: {rows[-1]['throughput_rps']:.0f} req/s", flush=True)
        roots = [("", ROOT)] + [(os.path.basename(os.path.abspath(root)) + " ", os.path.abspath(root))
                                for root in args.baseline_root]
        servers = [(f"batching {b}", root, tag, b == "on", [], "serving") for tag, root in roots for b in args.batching]
        servers += [(variant, ROOT, "", False, VARIANTS[variant](workdir), "serving") for variant in args.variants]
        if args.stdlib_front and "rest" in args.protocols:
            servers.append(("http.server front end", ROOT, "", False, [], "benchmarks.stdlib_rest"))
        for name, root, tag, batching, flags, module in servers:
            process, rest_port, grpc_port = start_server(os.path.join(workdir, "bench"), batching, workdir, root,
                                                         extra_flags=flags, module=module)
            try:
                unix = "unix:" + flags[0].split("=", 1)[1] if "UNIX" in name else None
                protocols = ["rest"] if module != "serving" else ["grpc"] if unix else args.protocols
                for protocol in protocols:
                    make = rest_caller(rest_port, ids) if protocol == "rest" else grpc_caller(grpc_port, ids, unix)
                    for clients in args.clients:
                        result = drive(clients, args.duration, make)
                        setup = f"{tag}{protocol}, {name}"
                        rows.append({"setup": setup, "clients": clients, **result})
                        print(f"  {setup}, {clients} clients: {result['throughput_rps']:.0f} req/s", flush=True)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)

    baseline = {r["clients"]: r for r in rows if r["setup"] == "in-process SavedModel"}
    load = (load_before, os.getloadavg()[0])
    print(f"\nmodel: token_ids [1, {LENGTH}] -> logits [1, {VOCABULARY}]; {args.duration:.0f} s per row; "
          f"{os.cpu_count()} CPUs (1-min load average {load[0]:.1f} before, {load[1]:.1f} after: clients, server "
          "and anything else running share them)")
    print(f"{'setup':<40} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'overhead p50':>13} {'errors':>6}")
    for row in rows:
        row["overhead_p50_ms"] = row["p50_ms"] - baseline[row["clients"]]["p50_ms"]
        print(f"{row['setup']:<40} {row['clients']:>7} {row['throughput_rps']:>8.0f} {row['p50_ms']:>8.2f} "
              f"{row['p99_ms']:>8.2f} {row['overhead_p50_ms']:>12.2f} {row['errors']:>6}")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"model": {"vocabulary": VOCABULARY, "width": WIDTH, "hidden": HIDDEN, "length": LENGTH},
                   "duration_s": args.duration, "cpus": os.cpu_count(), "load_average": load, "rows": rows},
                  handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
