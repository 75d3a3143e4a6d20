"""Generation speed: ours vs keras-hub's `GPT2CausalLM.generate`, Python vs exported vs served.

    python -m benchmarks.generation                           # small and gpt2_small
    python -m benchmarks.generation --presets gpt2_small --batch-sizes 1 8
    python -m benchmarks.generation --presets gpt2_tiny --no-served   # Python only

For each preset and batch size: prompts of 16 tokens, 112 new tokens (128 in
all), greedy, random weights, no stop token. Each run is compiled and warmed up
once, then the runs are timed in turn, --repeats rounds (medians):

- ours cached, compiled as a plain graph and with XLA (`jit_compile`), and ours
  recomputing the whole sequence every step;
- keras-hub's GPT-2 at the same configuration, compiled the same two ways;
- the exported `generate` signature (a byte tokenizer in the graph; 16-byte
  prompts), called in-process on the reloaded SavedModel;
- served by the embedded server: the gRPC `Generation/StreamGenerate` stream
  (one token per step) and the OpenAI-compatible REST stream, with the time to
  the first token and tokens per second.

New tokens per second is batch * 112 / seconds. Prints a table and writes JSON.
"""

import argparse
import dataclasses
import json
import os
import statistics
import time

import keras
import keras_hub
import numpy as np

from benchmarks.timing import round_robin
from keras_transformer.models import GPTBackbone, GPTCausalLM, GPTConfig, get_preset

PROMPT, NEW = 16, 112
BYTE_VOCABULARY = 259
# "small": the configuration the speed goals name (vocabulary 8192, width 256, 4 layers, 4 heads).
SMALL = GPTConfig(vocabulary_size=8192, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024,
                  dropout=0.0, max_sequence_length=256)


def config_for(name):
    """A GPT config by preset name, or "small"; at least the byte tokenizer's 259 ids (so the exported
    signature can hold it), no dropout."""
    config = SMALL if name == "small" else get_preset(name, "gpt")
    return dataclasses.replace(config, vocabulary_size=max(config.vocabulary_size, BYTE_VOCABULARY), dropout=0.0)


def keras_hub_model(config, jit_compile):
    model = _keras_hub_model(config)
    model.compile(sampler="greedy", jit_compile=jit_compile)
    return model


def _keras_hub_model(config):
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
    parser.add_argument("--presets", nargs="+", default=["small", "gpt2_small"], help='GPT presets, or "small"')
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="runs/benchmarks/generation.json")
    parser.add_argument("--no-uncached", dest="uncached", action="store_false",
                        help="skip decoding without the cache (slow at gpt2_small)")
    parser.add_argument("--no-served", dest="served", action="store_false",
                        help="skip the exported signature and the served streams")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    rows = []
    for preset in args.presets:
        config = config_for(preset)
        ours = GPTCausalLM(GPTBackbone(**config.to_dict()))
        theirs = {"graph": keras_hub_model(config, False), "XLA": keras_hub_model(config, True)}
        for model in theirs.values():
            model.set_weights(theirs["graph"].get_weights())
        exported = export_generate(ours, preset) if args.served else None
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
                "keras-hub GPT2CausalLM": lambda: theirs["graph"].generate(hub_inputs, stop_token_ids=None),
                "keras-hub GPT2CausalLM, XLA": lambda: theirs["XLA"].generate(hub_inputs, stop_token_ids=None),
            }
            if args.uncached:
                runs["ours, uncached"] = lambda: ours.generate(inputs, NEW, use_cache=False)
            if exported is not None:
                signature = exported["signature"]
                request = generate_request(batch, rng)
                runs["exported generate signature"] = lambda: signature(**request)
            for name, seconds in round_robin(runs, args.repeats).items():
                rows.append({"preset": preset, "batch": batch, "implementation": name,
                             "seconds": seconds, "tokens_per_second": batch * NEW / seconds})
                print(f"  {preset} batch {batch} {name}: {seconds:.3f}s", flush=True)

            if exported is not None:
                rows += served_rows(exported["base"], preset, batch, args.repeats)
        if exported is not None:
            exported["tmp"].cleanup()

    print(f"\nbackend={keras.backend.backend()}, prompt {PROMPT}, {NEW} new tokens, greedy")
    print(f"{'preset':<12} {'batch':>5} {'implementation':<30} {'tokens/s':>10} {'vs cached':>10}")
    for row in rows:
        cached = next(r for r in rows if r["preset"] == row["preset"] and r["batch"] == row["batch"]
                      and r["implementation"] == "ours, cached")
        row["speed_vs_ours_cached"] = row["tokens_per_second"] / cached["tokens_per_second"]
        first = f"  first token {row['first_token_seconds'] * 1000:.0f} ms" if "first_token_seconds" in row else ""
        print(f"{row['preset']:<12} {row['batch']:>5} {row['implementation']:<30} "
              f"{row['tokens_per_second']:>10.1f} {row['speed_vs_ours_cached']:>9.2f}x{first}")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"backend": keras.backend.backend(), "prompt": PROMPT, "new_tokens": NEW, "rows": rows},
                  handle, indent=2)
    print(f"wrote {args.output}")


def export_generate(model, preset):
    """Exports `generate` (byte tokenizer, no stop id) to a temporary base path; reloads it."""
    import tempfile

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)

    from keras_transformer.export import export
    from keras_transformer.text.tokenizers import train_tokenizer

    tmp = tempfile.TemporaryDirectory()
    base = os.path.join(tmp.name, "gpt")
    path = export(model, base, tokenizer=train_tokenizer("bytes", num_sentinels=0), signatures=["generate"],
                  stop_token_ids=[], model_name="gpt", warmup=False)
    print(f"  {preset}: exported to {path}", flush=True)
    return {"tmp": tmp, "base": base, "signature": tf.saved_model.load(path).signatures["generate"]}


def _prompts(batch, rng):
    return [bytes(rng.integers(97, 123, PROMPT).astype("uint8")).decode() for _ in range(batch)]


def generate_request(batch, rng):
    import tensorflow as tf

    return {"prompt": tf.constant(_prompts(batch, rng)), "max_new_tokens": tf.fill([batch], NEW),
            "temperature": tf.zeros([batch]), "top_k": tf.zeros([batch], tf.int32), "top_p": tf.ones([batch]),
            "seed": tf.zeros([batch], tf.int64)}


def served_rows(base, preset, batch, repeats):
    """The embedded server streaming the same work over gRPC and REST: first-token time and tokens/s."""
    import grpc
    import openai
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from serving import ModelServer, ServerOptions

    rng = np.random.default_rng(batch)
    prompts = _prompts(batch, rng)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "gpt"
    for name, value in {"prompt": np.array([p.encode() for p in prompts], object),
                        "max_new_tokens": np.array([NEW], "int32"), "temperature": np.array([0.0], "float32"),
                        "top_k": np.array([0], "int32"), "top_p": np.array([1.0], "float32"),
                        "seed": np.array([0], "int64"), "steps": np.array(1, "int32")}.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    rows = []
    options = ServerOptions(model_name="gpt", model_base_path=base, port=0, rest_api_port=0,
                            file_system_poll_wait_seconds=0, rest_api_timeout_in_ms=0)
    with ModelServer(options) as server, grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stream = channel.unary_stream("/keras_transformer.serving.Generation/StreamGenerate",
                                      request_serializer=predict_pb2.PredictRequest.SerializeToString,
                                      response_deserializer=predict_pb2.PredictResponse.FromString)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.rest_port}/v3", api_key="unused",
                               max_retries=0, timeout=600)

        def grpc_run():
            return iter(stream(request, timeout=600))

        def rest_run():
            return iter(client.completions.create(model="gpt", prompt=prompts, max_tokens=NEW, temperature=0,
                                                  stream=True))

        for name, run in (("served, gRPC stream (1 token/step)", grpc_run),
                          ("served, REST SSE (4 tokens/step)", rest_run)):
            first, total = [], []
            for attempt in range(repeats + 1):  # the first one warms up
                start = time.perf_counter()
                items = run()
                next(items)
                first_token = time.perf_counter() - start
                for _ in items:
                    pass
                if attempt:
                    first.append(first_token)
                    total.append(time.perf_counter() - start)
            seconds = statistics.median(total)
            rows.append({"preset": preset, "batch": batch, "implementation": name, "seconds": seconds,
                         "tokens_per_second": batch * NEW / seconds, "first_token_seconds": statistics.median(first)})
            print(f"  {preset} batch {batch} {name}: {seconds:.3f}s, first token {rows[-1]['first_token_seconds']:.3f}s",
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
