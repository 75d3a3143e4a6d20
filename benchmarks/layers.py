"""Side-by-side layer benchmark: ours against Keras and keras-hub, in one run.

    python benchmarks/layers.py --size small    # seconds, for a quick check
    python benchmarks/layers.py                 # CPU-sized shapes
    python benchmarks/layers.py --size gpu      # larger shapes, bfloat16
    KERAS_BACKEND=jax python benchmarks/layers.py --size gpu --output runs/benchmarks/layers-gpu.json

Three comparisons, each a median over repeated runs after warm-up, all compiled
(`jit_compile=True` / `jax.jit`), reported as times and ratios:

1. attention training step (forward + backward + optimizer, padding + causal
   masks): our `MultiHeadAttention` vs `keras.layers.MultiHeadAttention`;
2. encoder block training step: our `TransformerEncoderBlock` vs keras-hub's
   `TransformerEncoder` (post-norm, GELU, padding mask);
3. decoding one token at cache length L: our `call_with_cache` vs recomputing
   causal attention over all L tokens (what a decoder without a cache does).
   A cached step should grow about linearly in L, the recompute quadratically.
"""

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np

import keras_hub
from keras_transformer.layers import MultiHeadAttention, TransformerEncoderBlock

SIZES = {
    "small": dict(batch=2, length=64, hidden=64, heads=4, ffn=256, decode=(64, 256),
                  policy="float32", steps=10),
    "cpu": dict(batch=4, length=256, hidden=256, heads=4, ffn=1024, decode=(128, 512, 2048),
                policy="float32", steps=10),
    "gpu": dict(batch=16, length=2048, hidden=1024, heads=16, ffn=4096, decode=(512, 2048, 4096),
                policy="mixed_bfloat16", steps=30),
}


def jit(fn):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    return fn


def median_seconds(runs, steps, warmup=3):
    """Median seconds of each run; runs alternate, so load changes hit all alike."""
    for run in runs:
        for _ in range(warmup):
            run()
    times = [[] for _ in runs]
    for _ in range(steps):
        for run, samples in zip(runs, times):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def train_step(build_output, inputs):
    """One compiled `train_on_batch` of a model around one layer, as a callable."""
    symbolic = {k: keras.Input(v.shape[1:], dtype=str(v.dtype), name=k) for k, v in inputs.items()}
    model = keras.Model(symbolic, build_output(symbolic))
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    target = np.zeros(model.output.shape[1:], "float32")[None].repeat(len(inputs["x"]), 0)
    return lambda: model.train_on_batch(inputs, target)


def attention_case(s, rng):
    x = rng.normal(size=(s["batch"], s["length"], s["hidden"])).astype("float32")
    lengths = rng.integers(s["length"] // 2, s["length"] + 1, s["batch"])
    pad = (np.arange(s["length"])[None] < lengths[:, None]).astype("int32")
    inputs = {"x": x, "pad": pad}
    key_dim = s["hidden"] // s["heads"]

    def ours(t):
        layer = MultiHeadAttention(s["heads"], key_dim)
        return layer(t["x"], padding_mask=t["pad"], use_causal_mask=True)

    def theirs(t):
        mask = keras.ops.expand_dims(keras.ops.cast(t["pad"], "bool"), 1)  # (batch, 1, key)
        layer = keras.layers.MultiHeadAttention(s["heads"], key_dim)
        return layer(t["x"], t["x"], attention_mask=mask, use_causal_mask=True)

    theirs_s, ours_s = median_seconds([train_step(theirs, inputs), train_step(ours, inputs)], s["steps"])
    return [
        ("attention train step", "keras.layers.MultiHeadAttention", theirs_s),
        ("attention train step", "ours", ours_s),
    ]


def encoder_case(s, rng):
    x = rng.normal(size=(s["batch"], s["length"], s["hidden"])).astype("float32")
    pad = np.ones((s["batch"], s["length"]), "int32")
    pad[0, s["length"] // 2 :] = 0
    inputs = {"x": x, "pad": pad}

    def ours(t):
        return TransformerEncoderBlock(s["heads"], s["ffn"], activation="gelu")(t["x"], padding_mask=t["pad"])

    def theirs(t):
        block = keras_hub.layers.TransformerEncoder(s["ffn"], s["heads"], activation="gelu")
        return block(t["x"], padding_mask=t["pad"])

    theirs_s, ours_s = median_seconds([train_step(theirs, inputs), train_step(ours, inputs)], s["steps"])
    return [
        ("encoder block train step", "keras_hub.layers.TransformerEncoder", theirs_s),
        ("encoder block train step", "ours", ours_s),
    ]


def decode_case(s, rng):
    rows = []
    key_dim = s["hidden"] // s["heads"]
    layer = MultiHeadAttention(s["heads"], key_dim, dtype=keras.config.dtype_policy())
    for length in s["decode"]:
        x = rng.normal(size=(s["batch"], length, s["hidden"])).astype("float32")
        layer(x[:, :1])  # build
        cache = layer.initial_cache(s["batch"], length)
        _, cache = layer.call_with_cache(keras.ops.convert_to_tensor(x), cache, 0)  # full cache
        token = keras.ops.convert_to_tensor(x[:, -1:])
        index = keras.ops.convert_to_tensor(length - 1, "int32")
        step = jit(lambda t, c, i: layer.call_with_cache(t, c, i)[0])
        full = jit(lambda seq: layer(seq, use_causal_mask=True)[:, -1:])
        seq = keras.ops.convert_to_tensor(x)
        cached_s, full_s = median_seconds(
            [lambda: keras.ops.convert_to_numpy(step(token, cache, index)),
             lambda: keras.ops.convert_to_numpy(full(seq))],
            s["steps"],
        )
        rows.append((f"decode 1 token, cache length {length}", "recompute all tokens", full_s))
        rows.append((f"decode 1 token, cache length {length}", "ours, call_with_cache", cached_s))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--only", choices=["attention", "encoder", "decode"], action="append")
    parser.add_argument("--output", default="runs/benchmarks/layers.json")
    args = parser.parse_args(argv)
    s = SIZES[args.size]
    keras.config.set_dtype_policy(s["policy"])
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    cases = {"attention": attention_case, "encoder": encoder_case, "decode": decode_case}
    rows = []
    for name in args.only or list(cases):
        rows.extend(cases[name](s, rng))

    print(f"backend={keras.backend.backend()} size={args.size} policy={s['policy']} "
          f"batch={s['batch']} length={s['length']} hidden={s['hidden']} heads={s['heads']}")
    print(f"{'benchmark':<40} {'implementation':<38} {'ms':>9} {'vs first':>9}")
    results, baseline = [], {}
    for bench, impl, seconds in rows:
        baseline.setdefault(bench, seconds)
        ratio = seconds / baseline[bench]
        print(f"{bench:<40} {impl:<38} {seconds * 1e3:>9.3f} {ratio:>8.2f}x")
        results.append({"benchmark": bench, "implementation": impl, "ms": seconds * 1e3,
                        "ratio_to_first": ratio})
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"backend": keras.backend.backend(), "size": args.size, "config": s,
                   "results": results}, handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
