"""Faults under load, measured: a bounded soak of the embedded server.

    python -m benchmarks.soak                       # 16 clients, 60 s of load per phase
    python -m benchmarks.soak --clients 4 --duration 5   # a short run (what the test runs)

The model is `benchmarks/serving.py`'s next-token SavedModel. `python -m
serving` runs in its own process (polling its base path every second) and
N client threads (half REST, half gRPC) send one-row predicts back to back
while, phase by phase:

1. load: nothing else happens;
2. swap: version 2 is copied into the base path (staged, then renamed);
   the phase ends once version 2 answers and version 1 is retired;
3. corrupt: a version 3 folder with a damaged saved_model.pb appears; version 2
   must keep serving and the status of version 3 must say why it failed;
4. kill: the server is SIGKILLed under load and restarted; the clients count
   errors until it answers again, then the same request must get the same
   answer as before the kill;
5. generate: an exported tiny GPT on a server of its own, the same clients
   calling its `generate` signature (16 sampled tokens each);
6. exporter: `python -m keras_transformer.export` (a tiny GPT) is SIGKILLed at
   random points of its run; only complete versions may ever appear, and the
   next export removes the killed ones' staging folders.
7. trainer: `python -m training pretrain` (a tiny GPT, `--trainer-steps` 120) is SIGKILLed
   at random points and rerun, then its newest checkpoint is truncated and
   it is rerun again; both must end with an uninterrupted run's weights
   (SHA-256), the damaged checkpoint reported and skipped.

Each phase reports requests, errors (the kill phase's errors are the outage),
p50/p99 latency and what was checked. Bounded: every loop has a deadline; only
loopback addresses are used. Prints a table and writes JSON; exits 1 when a
check fails.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf

from benchmarks.serving import LENGTH, VOCABULARY, NextToken, grpc_caller, percentile, rest_caller, start_server


def rest_json(port, method, path, body=None, timeout=10):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


class Load:
    """N client threads calling back to back until stopped; latencies and errors per phase."""

    def __init__(self, clients, make_calls):
        self.clients, self.make_calls = clients, make_calls
        self.latencies, self.errors, self.lock = [], [], threading.Lock()
        self.stop, self.threads = threading.Event(), []

    def start(self):
        for index in range(self.clients):
            thread = threading.Thread(target=self._worker, args=(index,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _worker(self, index):
        call = None
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                call = call or self.make_calls[index % len(self.make_calls)]()
                call()
            except Exception as error:  # noqa: BLE001 - counted, and the connection made anew
                call = None
                with self.lock:
                    self.errors.append(repr(error)[:200])
                time.sleep(0.05)
                continue
            with self.lock:
                self.latencies.append(time.perf_counter() - start)

    def take(self):
        """(latencies, errors) since the last take."""
        with self.lock:
            latencies, errors = self.latencies, self.errors
            self.latencies, self.errors = [], []
        return latencies, errors

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - not there yet
            pass
        time.sleep(0.2)
    return False


def versions(port):
    _, body = rest_json(port, "GET", "/v1/models/bench", timeout=10)
    return {int(s["version"]): (s["state"], s["status"].get("error_message", "")) for s in body["model_version_status"]}


def save(module, folder):
    tf.saved_model.save(module, folder, signatures={"serving_default": module.logits})


def _complete(version_dir):
    return all(os.path.exists(os.path.join(version_dir, name)) for name in (
        "saved_model.pb", os.path.join("variables", "variables.index"),
        os.path.join("assets.extra", "keras_transformer_export.json")))


def exporter_kills(workdir, kills, seed=0):
    """SIGKILLs `python -m keras_transformer.export` at random points; only complete versions may appear."""
    import subprocess

    import keras

    import keras_transformer  # noqa: F401
    from keras_transformer.export.versions import STAGING_PREFIX, existing_versions
    from keras_transformer.models import GPTCausalLM

    model_file = os.path.join(workdir, "tiny.keras")
    GPTCausalLM.from_preset("gpt2_tiny").save(model_file)
    keras.backend.clear_session()
    base = os.path.join(workdir, "exports")
    command = [sys.executable, "-m", "keras_transformer.export", "export", model_file, base]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    started = time.monotonic()
    full = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    export_seconds = time.monotonic() - started
    rng = np.random.default_rng(seed)
    for _ in range(kills):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.2, export_seconds))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    found = existing_versions(base)
    incomplete = [v for v in found if not _complete(os.path.join(base, str(v)))]
    final = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)  # cleans up after them
    leftovers = [n for n in os.listdir(base) if n.startswith(STAGING_PREFIX)]
    ok = full.returncode == 0 and final.returncode == 0 and not incomplete and not leftovers
    detail = (f"{kills} kills in the first {export_seconds:.0f} s of an export: {len(found)} versions, "
              f"{len(incomplete)} incomplete; staging folders left after the next export: {len(leftovers)}")
    print(f"  exporter kills: {detail}: {'ok' if ok else 'FAILED'}", flush=True)
    return {"phase": "exporter", "requests": 0, "errors": len(incomplete) + len(leftovers), "p50_ms": float("nan"),
            "p99_ms": float("nan"), "seconds": time.monotonic() - started, "ok": ok, "detail": detail,
            "check": "only complete versions appear; a killed export's staging folder is removed by the next"}


GENERATE = {"max_new_tokens": [16], "temperature": [0.7], "top_k": [0], "top_p": [0.9], "seed": [1]}


def generate_load(workdir, clients, duration):
    """N clients (half REST, half gRPC) calling an exported tiny GPT's `generate` signature (16 new tokens,
    sampled) for `duration` seconds on its own server."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    import keras_transformer  # noqa: F401
    from keras_transformer.export import export
    from keras_transformer.models import GPTCausalLM
    from keras_transformer.text.tokenizers import train_tokenizer

    base = os.path.join(workdir, "gen")
    model = GPTCausalLM.from_preset("gpt2_tiny", backbone_overrides={"vocabulary_size": 259})
    export(model, base, tokenizer=train_tokenizer("bytes", num_sentinels=0), signatures=["generate"],
           stop_token_ids=[], model_name="gen", warmup=False)
    process, rest_port, grpc_port = start_server(base, False, workdir, model_name="gen")
    inputs = dict(GENERATE, prompt=["The soak test says"])
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "gen", "generate"
    dtypes = {"prompt": object, "max_new_tokens": "int32", "temperature": "float32", "top_k": "int32",
              "top_p": "float32", "seed": "int64"}
    for name, value in inputs.items():
        value = [v.encode() for v in value] if name == "prompt" else value
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array(value, dtypes[name])))

    rest = rest_caller(rest_port, model_name="gen", body={"signature_name": "generate", "inputs": inputs},
                       check=lambda answer: answer["outputs"]["generated_text"])

    def grpc_call():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
        return lambda: tf.make_ndarray(stub.Predict(request, timeout=60).outputs["generated_text"])

    try:
        rest()()  # the first call runs the signature cold (no warm-up file here): not part of the load
        load = Load(clients, [rest, grpc_call]).start()
        started = time.monotonic()
        try:
            time.sleep(duration)
            latencies, errors = load.take()
        finally:
            load.finish()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    ok = not errors and bool(latencies)
    detail = f"{len(latencies) / duration:.1f} generations/s of 16 tokens"
    print(f"  generate: {len(latencies)} requests, {len(errors)} errors: {'ok' if ok else 'FAILED'} {detail}", flush=True)
    return {"phase": "generate", "requests": len(latencies), "errors": len(errors),
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "seconds": time.monotonic() - started, "ok": ok, "detail": detail, "first_errors": sorted(set(errors))[:3],
            "check": "sampled generate requests, no errors"}


def trainer_kills(workdir, kills, steps=120, seed=0):
    """SIGKILLs `python -m training pretrain` at random points and reruns it; then damages its newest
    checkpoint and reruns again. Every finished run must end with the uninterrupted run's weights."""
    import subprocess

    from keras_transformer.run_folder import WEIGHTS_FILE, checkpoint_name
    from keras_transformer.text.corpus import stdlib_documents

    corpus = os.path.join(workdir, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as handle:
        handle.write("\n".join(stdlib_documents(max_files=40)) + "\n")

    def command(output):
        return [sys.executable, "-m", "training", "pretrain", "--data", corpus, "--steps", str(steps),
                "--checkpoint-every", "10", "--batch-size", "8", "--sequence-length", "32", "--validation-steps", "1",
                "--verbose", "0", "--deterministic", "--output", output]

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="")

    def finished(output):
        result = subprocess.run(command(output), capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            return None, result.stdout + result.stderr
        with open(os.path.join(output, "summary.json")) as handle:
            return json.load(handle)["weights_sha256"], result.stdout + result.stderr

    started = time.monotonic()
    whole, _ = finished(os.path.join(workdir, "whole"))
    run_seconds = time.monotonic() - started
    killed = os.path.join(workdir, "killed")
    rng = np.random.default_rng(seed)
    for _ in range(kills):
        process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.2, run_seconds))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    resumed, _ = finished(killed)
    # The newest checkpoint damaged after the fact: the rerun must skip it and redo the last interval.
    newest = os.path.join(killed, "checkpoints", checkpoint_name(steps), WEIGHTS_FILE)
    with open(newest, "r+b") as handle:
        handle.truncate(os.path.getsize(newest) // 2)
    os.remove(os.path.join(killed, "summary.json"))
    repaired, log = finished(killed)
    skipped = "ignoring the damaged checkpoint" in log
    ok = whole is not None and resumed == whole and repaired == whole and skipped
    detail = (f"{kills} kills in the first {run_seconds:.0f} s of a {steps}-step run, then the newest checkpoint "
              f"truncated: final weights {'equal' if resumed == whole else 'DIFFER'} after the kills, "
              f"{'equal' if repaired == whole else 'DIFFER'} after the repair; damaged checkpoint "
              f"{'skipped' if skipped else 'NOT reported'}")
    print(f"  trainer kills: {detail}: {'ok' if ok else 'FAILED'}", flush=True)
    return {"phase": "trainer", "requests": 0, "errors": int(not ok), "p50_ms": float("nan"), "p99_ms": float("nan"),
            "seconds": time.monotonic() - started, "ok": ok, "detail": detail,
            "check": "killed and damaged runs resume to the uninterrupted run's weights"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per phase")
    parser.add_argument("--exporter-kills", type=int, default=5, help="SIGKILLed exports of a tiny GPT (0: none)")
    parser.add_argument("--trainer-kills", type=int, default=3, help="SIGKILLed training runs (0: no trainer phase)")
    parser.add_argument("--trainer-steps", type=int, default=120,
                        help="steps of each training run (a checkpoint every 10; a multiple of 10)")
    parser.add_argument("--output", default="runs/benchmarks/soak.json")
    args = parser.parse_args(argv)
    if args.trainer_steps < 20 or args.trainer_steps % 10:
        parser.error(f"--trainer-steps must be a multiple of 10, at least 20; received {args.trainer_steps}")
    ids = np.random.RandomState(1).randint(0, VOCABULARY, (1, LENGTH)).astype(np.int32)
    rows, checks = [], []
    with tempfile.TemporaryDirectory() as workdir:
        base = os.path.join(workdir, "bench")
        save(NextToken(seed=0), os.path.join(base, "1"))
        save(NextToken(seed=1), os.path.join(workdir, "v2"))
        poll = ["--file_system_poll_wait_seconds=1"]
        process, rest_port, grpc_port = start_server(base, False, workdir, extra_flags=poll)
        ports = {"rest": rest_port, "grpc": grpc_port}
        calls = [lambda: rest_caller(ports["rest"], ids)(), lambda: grpc_caller(ports["grpc"], ids)()]
        load = Load(args.clients, calls).start()
        try:
            def phase(name, action, check, description):
                started = time.monotonic()
                detail = action() if action else ""
                remaining = args.duration - (time.monotonic() - started)
                if remaining > 0:
                    time.sleep(remaining)
                latencies, errors = load.take()
                ok = check(errors, detail)
                rows.append({"phase": name, "requests": len(latencies), "errors": len(errors),
                             "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                             "seconds": time.monotonic() - started, "check": description, "ok": ok,
                             "detail": detail, "first_errors": sorted(set(errors))[:3]})
                checks.append(ok)
                print(f"  {name}: {len(latencies)} requests, {len(errors)} errors, {description}: "
                      f"{'ok' if ok else 'FAILED'} {detail}", flush=True)

            phase("load", None, lambda errors, detail: not errors, "no errors")

            def swap():
                staging = os.path.join(base, "tmp-2")
                shutil.copytree(os.path.join(workdir, "v2"), staging)
                os.rename(staging, os.path.join(base, "2"))
                retired = wait_for(lambda: versions(rest_port).get(2, ("",))[0] == "AVAILABLE"
                                   and versions(rest_port).get(1, ("END",))[0] == "END", max(args.duration, 30))
                return "version 2 live, version 1 retired" if retired else "swap did not finish"

            phase("swap", swap, lambda errors, detail: not errors and "did not" not in detail,
                  "no errors while the version changes")

            def corrupt():
                folder = os.path.join(base, "3")
                os.makedirs(os.path.join(folder, "variables"))
                with open(os.path.join(folder, "saved_model.pb"), "wb") as handle:
                    handle.write(b"\x00 damaged")
                reported = wait_for(lambda: versions(rest_port).get(3, ("", ""))[1] != "", 30)
                state = versions(rest_port)
                if not reported:
                    return "version 3 never reported"
                return f"version 3 {state[3][0]} ({state[3][1][:60]}...); version 2 {state[2][0]}"

            phase("corrupt", corrupt, lambda errors, detail: not errors and "never" not in detail,
                  "version 2 keeps serving, version 3 says why it failed")

            def answer():
                return rest_json(ports["rest"], "POST", "/v1/models/bench:predict",
                                 {"inputs": {"token_ids": ids.tolist()}}, timeout=30)[1]

            before = answer()

            def kill():
                nonlocal process
                os.kill(process.pid, signal.SIGKILL)
                process.wait(30)
                started = time.monotonic()
                shutil.rmtree(os.path.join(base, "3"))  # the operator removes the damaged version
                process, ports["rest"], ports["grpc"] = start_server(base, False, workdir, extra_flags=poll)
                back = wait_for(lambda: versions(ports["rest"]).get(2, ("",))[0] == "AVAILABLE", 120)
                return f"serving again {time.monotonic() - started:.1f} s after the kill" if back else "did not come back"

            phase("kill", kill, lambda errors, detail: "did not" not in detail and answer() == before,
                  "back to serving, same answer as before the kill")
        finally:
            load.finish()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        rows.append(generate_load(workdir, args.clients, args.duration))
        checks.append(rows[-1]["ok"])
        if args.exporter_kills:
            rows.append(exporter_kills(workdir, args.exporter_kills))
            checks.append(rows[-1]["ok"])
        if args.trainer_kills:
            rows.append(trainer_kills(workdir, args.trainer_kills, args.trainer_steps))
            checks.append(rows[-1]["ok"])

    print(f"\n{args.clients} clients (half REST, half gRPC), {args.duration:.0f} s of load per phase, "
          f"{os.cpu_count()} CPUs")
    print(f"{'phase':<9} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8}  check")
    for row in rows:
        print(f"{row['phase']:<9} {row['requests']:>8} {row['errors']:>6} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
              f"  {'ok' if row['ok'] else 'FAILED'}: {row['check']} ({row['detail'] or '-'})")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"clients": args.clients, "duration_s": args.duration, "rows": rows}, handle, indent=2)
    print(f"wrote {args.output}")
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
