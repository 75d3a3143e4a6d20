"""LoRA vs full fine-tuning of a BERT-base-sized classifier: trainable parameters, step time, peak memory.

    python -m benchmarks.lora                              # bert_base, batch 8 x 128, 10 steps
    python -m benchmarks.lora --steps 3 --batch-size 4 --sequence-length 64 --rank 8

Each mode runs in its own process (peak resident memory is per process):
a `BertClassifier` on the `bert_base` config (random weights, 2 classes),
compiled with Adam, then `train_on_batch` on random ids; the first step
(tracing) is dropped and the median of the rest is reported. LoRA freezes
the backbone and trains rank-R adapters on the query and value projections
plus the classification head. Prints a table and writes JSON.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def measure(mode, rank, steps, batch_size, sequence_length):
    import keras
    import numpy as np

    from keras_transformer.models import BertClassifier

    keras.utils.set_random_seed(0)
    model = BertClassifier.from_preset("bert_base", num_classes=2)
    if mode == "lora":
        model.backbone.enable_lora(rank)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 30000, (batch_size, sequence_length)).astype("int32"),
         "segment_ids": np.zeros((batch_size, sequence_length), "int32"),
         "padding_mask": np.ones((batch_size, sequence_length), "int32")}
    y = rng.integers(0, 2, (batch_size,))
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    return {"mode": mode, "rank": rank if mode == "lora" else None, "trainable_parameters": trainable,
            "total_parameters": int(model.count_params()), "median_step_seconds": statistics.median(times[1:]),
            "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--output", default="runs/benchmarks/lora.json")
    parser.add_argument("--only", choices=["full", "lora"], help=argparse.SUPPRESS)  # one mode, JSON to stdout
    args = parser.parse_args(argv)
    if args.only:
        print(json.dumps(measure(args.only, args.rank, args.steps, args.batch_size, args.sequence_length)))
        return
    rows = []
    for mode in ("full", "lora"):
        command = [sys.executable, __file__, "--only", mode, "--rank", str(args.rank), "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--sequence-length", str(args.sequence_length)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    full, lora = rows
    print(f"{'mode':<6} {'trainable':>12} {'step (s)':>9} {'peak MiB':>9}")
    for row in rows:
        print(f"{row['mode']:<6} {row['trainable_parameters']:>12,} {row['median_step_seconds']:>9.3f} "
              f"{row['peak_memory_mib']:>9.0f}")
    ratios = {"trainable": lora["trainable_parameters"] / full["trainable_parameters"],
              "step_time": lora["median_step_seconds"] / full["median_step_seconds"],
              "peak_memory": lora["peak_memory_mib"] / full["peak_memory_mib"]}
    print("lora / full: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    import keras

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump({"backend": keras.backend.backend(), "batch_size": args.batch_size,
                   "sequence_length": args.sequence_length, "steps": args.steps, "rows": rows, "ratios": ratios},
                  handle, indent=2)


if __name__ == "__main__":
    main()
