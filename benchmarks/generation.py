"""Generation speed: cached vs uncached decoding vs keras-hub's `GPT2CausalLM.generate`.

    python benchmarks/generation.py                           # gpt2_tiny and gpt2_small
    python benchmarks/generation.py --presets gpt2_small --batch-sizes 1 8

For each preset and batch size: prompts of 16 tokens, 112 new tokens (128 in
all), greedy, random weights. Ours cached (the default), ours recomputing the
whole sequence every step, and keras-hub's GPT-2 at the same configuration,
each compiled and warmed up once, then timed; "ours, cached" compiles as Keras
does by default (a `tf.function` graph on CPU, XLA on GPU), "XLA" forces XLA;
new tokens per second is
batch * 112 / seconds. Prints a table and writes JSON.
"""

import argparse
import json
import os
import statistics
import time

import keras
import keras_hub
import numpy as np

from keras_transformer.models import GPTCausalLM, get_preset

PROMPT, NEW = 16, 112


def timed(run, repeats):
    run()  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def keras_hub_model(config):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=config.vocabulary_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim,
        max_sequence_length=config.max_sequence_length,
        dropout=0.0,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["gpt2_tiny", "gpt2_small"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="runs/benchmarks/generation.json")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    rows = []
    for preset in args.presets:
        config = get_preset(preset, "gpt")
        ours = GPTCausalLM.from_preset(preset)
        theirs = keras_hub_model(config)
        for batch in args.batch_sizes:
            rng = np.random.default_rng(batch)
            prompt = rng.integers(1, config.vocabulary_size, (batch, PROMPT)).astype("int32")
            inputs = {"token_ids": prompt, "padding_mask": np.ones_like(prompt)}
            padded = np.zeros((batch, PROMPT + NEW), "int32")
            padded[:, :PROMPT] = prompt
            hub_inputs = {"token_ids": padded, "padding_mask": padded != 0}
            runs = {
                "ours, cached": lambda: ours.generate(inputs, NEW),
                "ours, cached, XLA": lambda: ours.generate(inputs, NEW, jit_compile=True),
                "ours, uncached": lambda: ours.generate(inputs, NEW, use_cache=False),
                "keras-hub GPT2CausalLM": lambda: theirs.generate(hub_inputs, stop_token_ids=None),
            }
            for name, run in runs.items():
                seconds = timed(run, args.repeats)
                rows.append({"preset": preset, "batch": batch, "implementation": name,
                             "seconds": seconds, "tokens_per_second": batch * NEW / seconds})
                print(f"  {preset} batch {batch} {name}: {seconds:.3f}s", flush=True)

    print(f"\nbackend={keras.backend.backend()}, prompt {PROMPT}, {NEW} new tokens, greedy")
    print(f"{'preset':<12} {'batch':>5} {'implementation':<26} {'tokens/s':>10} {'vs cached':>10}")
    for row in rows:
        cached = next(r for r in rows if r["preset"] == row["preset"] and r["batch"] == row["batch"]
                      and r["implementation"] == "ours, cached")
        row["speed_vs_ours_cached"] = row["tokens_per_second"] / cached["tokens_per_second"]
        print(f"{row['preset']:<12} {row['batch']:>5} {row['implementation']:<26} "
              f"{row['tokens_per_second']:>10.1f} {row['speed_vs_ours_cached']:>9.2f}x")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"backend": keras.backend.backend(), "prompt": PROMPT, "new_tokens": NEW, "rows": rows},
                  handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
