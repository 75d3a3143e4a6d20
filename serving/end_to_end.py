"""The whole pipeline on the embedded defaults, end to end: `python -m serving.end_to_end`.

1. Pre-trains a small GPT on the built-in corpus (the standard library's
   documentation) with a WordPiece tokenizer trained on that corpus:
   `python -m training pretrain`.
2. Fine-tunes a small BERT classifier (its own WordPiece tokenizer) on
   labelled lines made from the same corpus (docstring openings labelled `returns` when they start with
   "Return(s)", else `other`): `python -m training classify`.
3. Draws the trained BERT's attention maps for one sentence (a PNG grid of
   layers x heads and an HTML head view): `python -m keras_transformer.inspect
   attention`.
4. Exports both models as TensorFlow Serving SavedModels (`python -m
   keras_transformer.export export`) and verifies them in a TensorFlow-only
   process.
5. Starts the embedded server on free loopback ports with a `models.config`
   naming both models (`python -m serving`).
6. Generates text over REST and gRPC, classifies lines over both, checks the
   two protocols agree, prints what came back and how many of the generated
   words are words of the corpus.
7. Stops the server with SIGTERM and checks it exited cleanly.

Each heavy step runs in its own process, as a user would run it, with its
output in `OUTPUT/logs/STEP.log`; the console gets one line per step with its
time. Everything goes under `--output` (default runs/end_to_end). Exit status
0 when every step worked.
"""

import argparse
import os
import random
import signal
import socket
import string
import subprocess
import sys
import time
import traceback

import numpy as np

PROMPTS = ["Return the", "This module provides"]
ATTENTION_SENTENCE = "Return the number of items in the list."
LINES = [
    "Return a new list containing all items from the iterable in ascending order.",
    "This module provides access to the mathematical functions defined by the C standard.",
]


def run(step, command, log_dir, summary=None):
    """Runs one step's command with its output in a log file; prints one line with its time (and the log's
    line that starts with `summary`, if any); stops the job if it fails."""
    log_path = os.path.join(log_dir, f"{step}.log")
    started = time.time()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    with open(log_path, encoding="utf-8", errors="replace") as log:
        output = log.read()
    if code != 0:
        raise SystemExit(f"[{step}] failed with exit status {code}; last output ({log_path}):\n{output[-3000:]}")
    found = [line.strip() for line in output.splitlines() if summary and line.strip().startswith(summary)]
    print(f"[{step}] {time.time() - started:.0f}s" + (f"  {found[-1]}" if found else ""), flush=True)
    return output


def corpus_words():
    """Every word of the built-in corpus (lowercased, punctuation stripped at both ends)."""
    from keras_transformer.text.corpus import stdlib_documents

    return {word for document in stdlib_documents() for word in _words(document)}


def _words(text):
    words = (word.strip(string.punctuation).lower() for word in text.split())
    return [word for word in words if word]


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


def wait_until_available(client, models, deadline, client_error):
    while time.time() < deadline:
        try:
            if all(any(v["state"] == "AVAILABLE" for v in client.status(m)) for m in models):
                return
        except (client_error, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not make {models} available in time")


def _quiet_stderr(log_path):
    """Sends this process's own stderr (TensorFlow's start-up messages when the clients import it) to a log;
    returns a writable stream to the real stderr, for failures."""
    sys.stderr.flush()
    console = os.fdopen(os.dup(2), "w", buffering=1)
    log = open(log_path, "a")
    os.dup2(log.fileno(), 2)
    return console


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/end_to_end")
    parser.add_argument("--gpt-steps", type=int, default=500)
    parser.add_argument("--bert-steps", type=int, default=300)
    args = parser.parse_args(argv)
    started = time.time()
    out = os.path.abspath(args.output)
    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    log_path = os.path.join(logs, "end_to_end.log")
    console = _quiet_stderr(log_path)
    try:
        _job(args, out, logs, started)
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=console)
            return 1
        raise
    except Exception as error:  # noqa: BLE001 - the console gets one line, the log the traceback
        traceback.print_exc()
        print(f"error: {type(error).__name__}: {error} (traceback in {log_path})", file=console)
        return 1
    return 0


def _job(args, out, logs, started):
    python = sys.executable
    print(f"Everything goes under {out}; each step's output is in {logs}/STEP.log", flush=True)
    run("train-gpt", [python, "-m", "training", "pretrain", "--family", "gpt", "--steps", str(args.gpt_steps),
                      "--tokenizer-kind", "wordpiece", "--vocabulary-size", "2000", "--output", f"{out}/gpt",
                      "--overwrite", "--verbose", "0"], logs, summary="validation loss")
    labelled_lines(f"{out}/classify.txt")
    run("train-bert", [python, "-m", "training", "classify", "--data", f"{out}/classify.txt",
                       "--steps", str(args.bert_steps), "--learning-rate", "1e-3", "--tokenizer-kind", "wordpiece",
                       "--vocabulary-size", "2000", "--output", f"{out}/bert",
                       "--overwrite", "--verbose", "0"], logs, summary="validation loss")
    drawn = run("attention-bert", [python, "-m", "keras_transformer.inspect", "attention", f"{out}/bert",
                                   "--text", ATTENTION_SENTENCE, "--output", f"{out}/attention"], logs)
    pictures = [line.strip() for line in drawn.splitlines() if line.strip().endswith((".png", ".html"))]
    for name in ("gpt", "bert"):
        run(f"export-{name}", [python, "-m", "keras_transformer.export", "export", f"{out}/{name}",
                               f"{out}/models/{name}", "--model-name", name], logs)
        run(f"verify-{name}", [python, "-m", "keras_transformer.export", "verify", f"{out}/models/{name}",
                               "--model-name", name], logs, summary="OK")

    from serving.client import GrpcClient, RestClient, ServingClientError

    config = os.path.join(out, "models.config")
    with open(config, "w") as handle:
        handle.write("model_config_list {\n" + "".join(
            f'  config {{ name: "{n}" base_path: "{out}/models/{n}" model_platform: "tensorflow" }}\n'
            for n in ("gpt", "bert")) + "}\n")
    grpc_port, rest_port = free_port(), free_port()
    server_log = open(os.path.join(logs, "server.log"), "w")
    serving_started = time.time()
    server = subprocess.Popen(
        [python, "-m", "serving", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={config}"],
        stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        rest, grpc = RestClient(f"127.0.0.1:{rest_port}"), GrpcClient(f"127.0.0.1:{grpc_port}")
        wait_until_available(rest, ["gpt", "bert"], time.time() + 180, ServingClientError)
        print(f"[serve] {time.time() - serving_started:.0f}s  python -m serving --port={grpc_port} "
              f"--rest_api_port={rest_port} --model_config_file={config}", flush=True)
        settings = dict(max_new_tokens=24, temperature=0.7, top_p=0.9, seed=7)  # seeded per row
        rest_text = rest.generate("gpt", PROMPTS, **settings)
        grpc_text = grpc.generate("gpt", PROMPTS, **settings)
        if list(rest_text) != list(grpc_text):
            raise SystemExit(f"REST and gRPC generated different text: {rest_text!r} vs {grpc_text!r}")
        known = corpus_words()
        generated = [word for text in rest_text for word in _words(text)]
        share = sum(word in known for word in generated) / max(len(generated), 1)
        print("\nGenerated (GPT, top-p 0.9, temperature 0.7, REST == gRPC):")
        for prompt, text in zip(PROMPTS, rest_text):
            print(f"  {prompt!r} -> {text!r}")
        print(f"  {share:.0%} of the {len(generated)} generated words are words of the corpus")
        text = np.array([line.encode() for line in LINES], dtype=object)
        rest_out = rest.predict("bert", {"text": text}, signature_name="classify")
        grpc_out = grpc.predict("bert", {"text": text}, signature_name="classify")
        np.testing.assert_allclose(rest_out["probabilities"], grpc_out["probabilities"], rtol=1e-6)
        print("\nClassified (BERT, REST == gRPC):")
        for line, label, probabilities in zip(LINES, rest_out["label"], rest_out["probabilities"]):
            label = label.decode() if isinstance(label, bytes) else label
            print(f"  {label:<9} p={np.max(probabilities):.2f}  {line}")
        print(f"\nBERT's attention for {ATTENTION_SENTENCE!r}:")
        for path in pictures:
            print(f"  {path}")
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
    print(f"\nserver stopped cleanly; everything done in {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
