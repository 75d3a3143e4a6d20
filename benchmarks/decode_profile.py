"""Where a cached decoding's time goes: ours vs keras-hub's GPT-2, split into parts.

    python -m benchmarks.decode_profile                       # the small configuration
    python -m benchmarks.decode_profile --preset gpt2_small --batch-sizes 1

Each part is one compiled function (a plain graph, and XLA), ours and
keras-hub's timed alternately (median of --repeats, after a warm-up), prompt
16 + 112 new tokens, greedy:

- `model steps`: the prefill and 112 cached model steps in one while loop,
  the next token fed back by argmax and nothing else (ours: the task
  adapter's `prefill`/`step`; keras-hub: `GPT2CausalLM.call_with_cache`);
- `decoding loop`: the whole compiled decoding (ours: `decoding.start` +
  `advance` with the processor and chooser `generate` builds; keras-hub: its
  `generate_step`);
- `generate()`: the public call, with its Python work on both sides
  (checks, padding layout, settings; keras-hub: its input normalisation).

`loop - steps` is the bookkeeping of the decoding loop (processors, token
choice, buffers, stop checks); `generate() - loop` is the per-call Python
overhead. Prints a table and writes JSON.
"""

import argparse
import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from benchmarks.generation import NEW, PROMPT, _keras_hub_model, config_for
from benchmarks.timing import ours_against_keras_hub
from keras_transformer.models import GPTBackbone, GPTCausalLM


def argmax_loop(prefill, step, prompt, total):
    """prefill + (total - prompt length) steps, argmax fed back: the model's share of a decoding."""
    logits, state = prefill(prompt)

    def body(index, logits, state):
        token = ops.cast(ops.argmax(logits, axis=-1), "int32")[:, None]
        logits, state = step(token, state, index)
        return index + 1, logits, state

    index = ops.convert_to_tensor(ops.shape(prompt)[1], "int32")
    _, logits, _ = ops.while_loop(lambda i, *_: i < total, body, (index, logits, state))
    return logits


def parts(ours, theirs, prompt, jit):
    total = PROMPT + NEW
    mask = np.ones_like(prompt)
    adapter = ours.generation_adapter()
    ones = ops.ones_like(prompt)

    def our_steps(prompt):
        return argmax_loop(lambda p: adapter.prefill(None, p, ones, total), adapter.step, prompt, total)

    def their_prefill(p):
        # keras-hub seeds its cache with one pass over the whole padded length (prompt + new).
        padded = ops.concatenate([p, ops.zeros((ops.shape(p)[0], total - PROMPT), "int32")], axis=1)
        hidden, cache = theirs._build_cache(padded)
        return theirs.backbone.token_embedding(hidden[:, PROMPT - 1], reverse=True), cache

    def their_step(token, cache, index):
        logits, _, cache = theirs.call_with_cache(token, cache, index)
        return logits[:, 0], cache

    def their_steps(prompt):
        return argmax_loop(their_prefill, their_step, prompt, total)

    ours.generate({"token_ids": prompt, "padding_mask": mask}, NEW, jit_compile=jit)  # compiles the loop
    functions = ours.__dict__["_keras_transformer_generate_functions"]
    our_loop = next(f for key, f in functions.items() if key[0] == "decode" and jit in key[7:8])
    arrays = ((), tf.constant(prompt), tf.constant(mask), tf.fill([prompt.shape[0]], NEW))
    padded = np.zeros((prompt.shape[0], total), "int32")
    padded[:, :PROMPT] = prompt
    hub_inputs = {"token_ids": padded, "padding_mask": padded != 0}
    theirs.compile(sampler="greedy", jit_compile=jit)
    theirs.make_generate_function()
    their_generate_step = theirs.generate_function
    hub_tensors = {k: tf.constant(v) for k, v in hub_inputs.items()}
    return {
        "model steps": (tf.function(our_steps, jit_compile=jit, autograph=False), (tf.constant(prompt),),
                        tf.function(their_steps, jit_compile=jit, autograph=False), (tf.constant(prompt),)),
        "decoding loop": (our_loop, arrays, lambda x: their_generate_step(x, None), (hub_tensors,)),
        "generate()": (lambda: ours.generate({"token_ids": prompt, "padding_mask": mask}, NEW, jit_compile=jit), (),
                       lambda: theirs.generate(hub_inputs, stop_token_ids=None), ()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", help='a GPT preset, or "small" (vocabulary 8192, width 256, 4 layers)')
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--output", default="runs/benchmarks/decode_profile.json")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    config = config_for(args.preset)
    ours = GPTCausalLM(GPTBackbone(**config.to_dict()))
    theirs = _keras_hub_model(config)  # its own random weights: greedy timing does not depend on them
    rows = []
    for batch in args.batch_sizes:
        prompt = np.random.default_rng(batch).integers(1, config.vocabulary_size, (batch, PROMPT)).astype("int32")
        for jit in (False, True):
            for part, (mine, my_args, hub, hub_args) in parts(ours, theirs, prompt, jit).items():
                row = ours_against_keras_hub(lambda: mine(*my_args), lambda: hub(*hub_args), args.repeats)
                rows.append({"batch": batch, "xla": jit, "part": part, **row})
                print(f"  batch {batch} {'XLA' if jit else 'graph'} {part}: ours {row['ours_ms']:.1f} ms, "
                      f"keras-hub {row['keras_hub_ms']:.1f} ms", flush=True)
    print(f"\n{args.preset}: prompt {PROMPT} + {NEW} new tokens, greedy")
    print(f"{'batch':>5} {'compile':<6} {'part':<14} {'ours ms':>9} {'keras-hub ms':>13} {'speed':>7}")
    for row in rows:
        print(f"{row['batch']:>5} {'XLA' if row['xla'] else 'graph':<6} {row['part']:<14} {row['ours_ms']:>9.1f} "
              f"{row['keras_hub_ms']:>13.1f} {row['speed_vs_keras_hub']:>6.2f}x")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"config": dataclasses.asdict(config), "prompt": PROMPT, "new_tokens": NEW, "rows": rows},
                  handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
