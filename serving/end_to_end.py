"""The whole pipeline on the embedded defaults, end to end: `python -m serving.end_to_end`.

1. Pre-trains a small GPT on the built-in corpus (the standard library's
   documentation) with its byte tokenizer: `python -m training pretrain`.
2. Fine-tunes a small BERT classifier on labelled lines made from the same
   corpus (docstring openings labelled `returns` when they start with
   "Return(s)", else `other`): `python -m training classify`.
3. Exports both as TensorFlow Serving SavedModels (`python -m
   keras_transformer.export export`) and verifies them in a TensorFlow-only
   process.
4. Starts the embedded server on free loopback ports with a `models.config`
   naming both models (`python -m serving`).
5. Generates text over REST and gRPC, classifies lines over both, checks the
   two protocols agree, prints what came back.
6. Stops the server with SIGTERM and checks it exited cleanly.

Each heavy step runs in its own process, as a user would run it; this module
imports only the clients. Everything goes under `--output` (default
runs/end_to_end). Exit status 0 when every step worked.
"""

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from serving.client import GrpcClient, RestClient, ServingClientError

PROMPTS = ["Return the", "This module provides"]
LINES = [
    "Return a new list containing all items from the iterable in ascending order.",
    "This module provides access to the mathematical functions defined by the C standard.",
]


def run(step, command, log_dir):
    """Runs one step's command, its output to a log file; stops the job if it fails."""
    log_path = os.path.join(log_dir, f"{step}.log")
    print(f"[{step}] {' '.join(command[1:])}", flush=True)
    started = time.time()
    with open(log_path, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if code != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f"[{step}] failed with exit status {code}; last output ({log_path}):\n{tail}")
    print(f"[{step}] done in {time.time() - started:.0f}s (log: {log_path})", flush=True)


def labelled_lines(path, per_class=600, words=12, seed=0):
    """`returns<TAB>text` for docstrings that open with "Return(s)", `other<TAB>text` for the
    rest, balanced, from the built-in corpus (first `words` words of each)."""
    from keras_transformer.text.corpus import split_documents, stdlib_documents

    train, _ = split_documents(stdlib_documents())
    classes = {"returns": [], "other": []}
    for document in train:
        tokens = document.split()[:words]
        label = "returns" if tokens[0] in ("Return", "Returns") else "other"
        classes[label].append(f"{label}\t{' '.join(tokens)}")
    lines = classes["returns"][:per_class] + classes["other"][:per_class]
    random.Random(seed).shuffle(lines)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_available(client, models, deadline):
    while time.time() < deadline:
        try:
            if all(any(v["state"] == "AVAILABLE" for v in client.status(m)) for m in models):
                return
        except (ServingClientError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not make {models} available in time")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/end_to_end")
    parser.add_argument("--gpt-steps", type=int, default=400)
    parser.add_argument("--bert-steps", type=int, default=300)
    args = parser.parse_args(argv)
    started = time.time()
    out = os.path.abspath(args.output)
    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    python = sys.executable

    run("train-gpt", [python, "-m", "training", "pretrain", "--family", "gpt", "--steps", str(args.gpt_steps),
                      "--output", f"{out}/gpt", "--overwrite", "--verbose", "0"], logs)
    labelled_lines(f"{out}/classify.txt")
    run("train-bert", [python, "-m", "training", "classify", "--data", f"{out}/classify.txt",
                       "--steps", str(args.bert_steps), "--learning-rate", "1e-3", "--output", f"{out}/bert",
                       "--overwrite", "--verbose", "0"], logs)
    for name in ("gpt", "bert"):
        run(f"export-{name}", [python, "-m", "keras_transformer.export", "export", f"{out}/{name}",
                               f"{out}/models/{name}", "--model-name", name], logs)
        run(f"verify-{name}", [python, "-m", "keras_transformer.export", "verify", f"{out}/models/{name}",
                               "--model-name", name], logs)

    config = os.path.join(out, "models.config")
    with open(config, "w") as handle:
        handle.write("model_config_list {\n" + "".join(
            f'  config {{ name: "{n}" base_path: "{out}/models/{n}" model_platform: "tensorflow" }}\n'
            for n in ("gpt", "bert")) + "}\n")
    grpc_port, rest_port = free_port(), free_port()
    server_log = open(os.path.join(logs, "server.log"), "w")
    print(f"[serve] python -m serving --port={grpc_port} --rest_api_port={rest_port} "
          f"--model_config_file={config}", flush=True)
    server = subprocess.Popen(
        [python, "-m", "serving", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={config}"],
        stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        rest, grpc = RestClient(f"127.0.0.1:{rest_port}"), GrpcClient(f"127.0.0.1:{grpc_port}")
        wait_until_available(rest, ["gpt", "bert"], time.time() + 180)
        settings = dict(max_new_tokens=40, temperature=0.8, top_p=0.95, seed=7)  # seeded per row
        rest_text = rest.generate("gpt", PROMPTS, **settings)
        grpc_text = grpc.generate("gpt", PROMPTS, **settings)
        if list(rest_text) != list(grpc_text):
            raise SystemExit(f"REST and gRPC generated different text: {rest_text!r} vs {grpc_text!r}")
        print("\nGenerated (GPT, top-p 0.95, temperature 0.8, REST == gRPC):")
        for prompt, text in zip(PROMPTS, rest_text):
            print(f"  {prompt!r} -> {text!r}")
        text = np.array([line.encode() for line in LINES], dtype=object)
        rest_out = rest.predict("bert", {"text": text}, signature_name="classify")
        grpc_out = grpc.predict("bert", {"text": text}, signature_name="classify")
        np.testing.assert_allclose(rest_out["probabilities"], grpc_out["probabilities"], rtol=1e-6)
        print("\nClassified (BERT, REST == gRPC):")
        for line, label, probabilities in zip(LINES, rest_out["label"], rest_out["probabilities"]):
            label = label.decode() if isinstance(label, bytes) else label
            print(f"  {label:<9} p={np.max(probabilities):.2f}  {line}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            code = "killed"
        server_log.close()
    if code != 0:
        raise SystemExit(f"the server did not stop cleanly on SIGTERM (exit status {code})")
    print(f"\nserver stopped cleanly; everything done in {time.time() - started:.0f}s (files under {out})")


if __name__ == "__main__":
    main()
