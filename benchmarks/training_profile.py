"""Where a training step's time goes: ours vs keras-hub, part by part (TensorFlow).

    python -m benchmarks.training_profile                        # small, graph: a few minutes a family
    python -m benchmarks.training_profile --jit-compile          # the same with XLA
    python -m benchmarks.training_profile --config real --families gpt --repeats 5

For each family, our task model and keras-hub's at one configuration, built as
`benchmarks/training.py` builds them (GPT causal LM; BERT masked LM with
`--masked` predicted positions; T5 on span-corruption shapes, the decoder
as long as the targets of an encoder row of `--sequence-length` (29 for 128),
tied head): `small`
(vocabulary 8192, width 256, 4 layers, 4 heads, feed-forward 1024; T5 with a
gated ReLU feed-forward) or `real` (bert_base, gpt2_small, t5_small shapes).
Random weights and batches, dropout `--dropout`, AdamW 1e-4, sparse
cross-entropy on the logits, no metrics.

Each row is one compiled function (`tf.function`, XLA with `--jit-compile`),
ours and keras-hub's called in turn, one call at a time, median of
`--repeats` calls after a warm-up, in wall time and in the process's CPU
time (every thread's; on a shared machine it moves less than the wall time):

- forward: the task model called with training=True;
- + loss: and `compute_loss` (the compiled loss);
- + gradients: and the gradients of every trainable variable;
- train step: `fit`'s own train function (`make_train_function`: the above
  plus the optimizer update), on one batch;
- the parts, each forward and forward + backward (gradients of its weights and
  its float inputs): the embeddings (up to the embedding dropout; T5: the
  encoder's), one block in the middle of a stack (T5: an encoder block and a
  decoder block, given the position bias as their stack hands it over: ours
  the bias alone, keras-hub's with the masks folded in), and the head + loss
  (from the final hidden states: GPT and T5 the tied vocabulary projection, T5
  after its rescale; BERT the gather of the masked positions, its transform
  and the projection).

`hub/ours` is keras-hub's time over ours: above 1, ours is faster. `graph
ops` counts the ops of each traced function before TensorFlow optimizes it
(the work the Python code asks for; small shapes pay per op). With
`--trace`, the TensorFlow profiler records three train steps of each model
and the table lists the op types that took the most time (for graph mode:
under XLA a compiled cluster is one op). Prints a table per family and
writes JSON.
"""

import argparse
import glob
import json
import os
import tempfile
import types
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from benchmarks.generation import SMALL
from benchmarks.timing import ours_against_keras_hub
from benchmarks.training import models
from keras_transformer.models import get_preset
from keras_transformer.text.span_corruption import span_corruption_lengths

FAMILIES = ("gpt", "bert", "t5")
REAL_PRESETS = {"gpt": "gpt2_small", "bert": "bert_base", "t5": "t5_small"}


def shapes(family, config):
    """(namespace of hidden_dim, num_layers, num_heads, sequence_length; vocabulary; gated)."""
    if config == "small":
        preset, gated = SMALL, family == "t5"
    else:
        preset = get_preset(REAL_PRESETS[family], family)
        gated = getattr(preset, "gated_feed_forward", False)
    if preset.intermediate_dim != 4 * preset.hidden_dim:
        raise ValueError(f"{family}: the benchmark's models have a feed-forward of 4 * hidden_dim")
    size = types.SimpleNamespace(hidden_dim=preset.hidden_dim, num_layers=preset.num_layers,
                                 num_heads=preset.num_heads, sequence_length=None)
    return size, preset.vocabulary_size, gated


def batch(family, batch_size, length, vocabulary, masked, seed=0):
    """(x, y, sample_weight) of random ids, no padding, as tensors."""
    rng = np.random.default_rng(seed)

    def ids(n):
        return rng.integers(1, vocabulary, (batch_size, n)).astype("int32")

    def ones(n):
        return np.ones((batch_size, n), "int32")

    if family == "gpt":
        x, targets = {"token_ids": ids(length), "padding_mask": ones(length)}, length
    elif family == "bert":
        positions = np.sort([rng.choice(length, masked, replace=False) for _ in range(batch_size)], axis=1)
        x = {"token_ids": ids(length), "segment_ids": np.zeros((batch_size, length), "int32"),
             "padding_mask": ones(length), "mask_positions": positions.astype("int32")}
        targets = masked
    else:
        targets = span_corruption_lengths(length)[1]
        x = {"encoder_token_ids": ids(length), "encoder_padding_mask": ones(length),
             "decoder_token_ids": ids(targets), "decoder_padding_mask": ones(targets)}
    y, weights = ids(targets), np.ones((batch_size, targets), "float32")
    return {k: tf.constant(v) for k, v in x.items()}, tf.constant(y), tf.constant(weights)


def compile_and_build(model, data, jit):
    """Compiles both libraries' models alike (AdamW 1e-4, sparse cross-entropy on the logits, no
    metrics) and runs one `fit` step, which builds the optimizer and `model.train_function`."""
    model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=None, jit_compile=jit)
    model.fit(tf.data.Dataset.from_tensors(data), epochs=1, shuffle=False, verbose=0)
    return model


# ------------------------------------------------------------------ the whole model


def whole_model(model, data):
    """{row: (function, its inputs)} for the whole task model; fit's train function takes none
    (its iterator repeats the batch)."""
    x, y, weights = data

    def loss(x, y, weights):
        return model.compute_loss(x=x, y=y, y_pred=model(x, training=True), sample_weight=weights)

    def loss_and_gradients(x, y, weights):
        with tf.GradientTape() as tape:
            value = loss(x, y, weights)
        return value, tape.gradient(value, model.trainable_variables)

    iterator = iter(tf.data.Dataset.from_tensors(data).repeat())

    def train_step():
        logs = model.train_function(iterator)
        return logs.get_value() if hasattr(logs, "get_value") else logs

    return {
        "forward": (lambda x: model(x, training=True), (x,)),
        "+ loss": (loss, data),
        "+ gradients": (loss_and_gradients, data),
        "train step": (train_step, None),
    }


# --------------------------------------------------------------------- the parts


def embeddings_submodel(backbone, layer_name, input_names):
    """The backbone's graph from its id inputs up to `layer_name`'s output, as a model."""
    inputs = {name: backbone.input[name] for name in input_names}
    return keras.Model(inputs, backbone.get_layer(layer_name).output)


def family_parts(family, ours, theirs, x, y, weights, seed=1):
    """{part: ((our function, our inputs), (keras-hub's function, its inputs))}."""
    rng = np.random.default_rng(seed)
    mine, hub = ours.backbone, theirs.backbone
    width = mine.model_config.hidden_dim

    def hidden(length):
        return tf.constant(rng.standard_normal((y.shape[0], length, width)).astype("float32"))

    def loss(model, logits):
        return model.compute_loss(y=y, y_pred=logits, sample_weight=weights)

    if family == "gpt":
        ids, mask = x["token_ids"], x["padding_mask"]
        h = hidden(ids.shape[1])
        embed = ("embeddings_dropout", "embeddings_dropout", ["token_ids"])
        return _with_embeddings(mine, hub, embed, {"token_ids": ids}, {
            "block": ((lambda h, m: mine.decoder_blocks[1](h, decoder_padding_mask=m, training=True), (h, mask)),
                      (lambda h, m: hub.transformer_layers[1](h, decoder_padding_mask=m, training=True), (h, mask))),
            "head + loss": ((lambda h: loss(ours, {"logits": mine.token_embedding(h, reverse=True)}), (h,)),
                            (lambda h: loss(theirs, hub.token_embedding(h, reverse=True)), (h,))),
        })
    if family == "bert":
        ids, mask, positions = x["token_ids"], x["padding_mask"], x["mask_positions"]
        h = hidden(ids.shape[1])

        def our_head(h, positions):
            picked = ops.take_along_axis(h, ops.expand_dims(positions, -1), axis=1)  # (batch, masked, width)
            picked = ours.mlm_layer_norm(ours.mlm_dense(picked))
            return loss(ours, {"logits": ours.mlm_output_bias(mine.token_embedding(picked, reverse=True))})

        embed = ("embeddings_dropout", "embeddings_dropout", ["token_ids", "segment_ids"])
        return _with_embeddings(mine, hub, embed, {"token_ids": ids, "segment_ids": x["segment_ids"]}, {
            "block": ((lambda h, m: mine.encoder_blocks[1](h, padding_mask=m, training=True), (h, mask)),
                      (lambda h, m: hub.transformer_layers[1](h, padding_mask=m, training=True), (h, mask))),
            "head + loss": ((our_head, (h, positions)),
                            (lambda h, p: loss(theirs, theirs.masked_lm_head(h, p)), (h, positions))),
        })
    source_mask, target_mask = x["encoder_padding_mask"], x["decoder_padding_mask"]
    source, target = hidden(source_mask.shape[1]), hidden(target_mask.shape[1])
    # The biases as each stack hands them to its later blocks.
    our_source_bias = mine.encoder_relative_position_bias(source)
    our_target_bias = mine.decoder_relative_position_bias(target)
    source_attention, target_attention = source_mask[:, None, :], target_mask[:, None, :]
    _, hub_source_bias = hub.encoder_transformer_layers[0](source, attention_mask=source_attention)
    _, hub_target_bias = hub.decoder_transformer_layers[0](
        target, attention_mask=target_attention, encoder_hidden_states=source,
        encoder_attention_mask=source_attention, use_causal_mask=True)

    def our_decoder_block(h, encoded, m, source_m):
        return mine.decoder_blocks[1](h, encoded, decoder_padding_mask=m, encoder_padding_mask=source_m,
                                      self_attention_bias=our_target_bias, training=True)

    def hub_decoder_block(h, encoded, m, source_m):
        return hub.decoder_transformer_layers[1](
            h, attention_mask=m[:, None, :], position_bias=hub_target_bias, encoder_hidden_states=encoded,
            encoder_attention_mask=source_m[:, None, :], use_causal_mask=True, training=True)[0]

    embed = ("encoder_embedding_dropout", "encoder_embedding_dropout", ["encoder_token_ids"])
    return _with_embeddings(mine, hub, embed, {"encoder_token_ids": x["encoder_token_ids"]}, {
        "encoder block": (
            (lambda h, m: mine.encoder_blocks[1](h, padding_mask=m, attention_bias=our_source_bias,
                                                 training=True), (source, source_mask)),
            (lambda h, m: hub.encoder_transformer_layers[1](h, attention_mask=m[:, None, :],
                                                            position_bias=hub_source_bias, training=True)[0],
             (source, source_mask))),
        "decoder block": ((our_decoder_block, (target, source, target_mask, source_mask)),
                          (hub_decoder_block, (target, source, target_mask, source_mask))),
        "head + loss": ((lambda h: loss(ours, {"logits": ours._logits(h)}), (target,)),
                        (lambda h: loss(theirs, theirs._logits(h)), (target,))),
    })


def _with_embeddings(mine, hub, names, inputs, parts):
    our_layer, hub_layer, keys = names
    ours = embeddings_submodel(mine, our_layer, keys)
    theirs = embeddings_submodel(hub, hub_layer, keys)
    return {"embeddings": ((lambda x: ours(x, training=True), (inputs,)),
                           (lambda x: theirs(x, training=True), (inputs,))), **parts}


def with_gradients(function):
    """forward + backward: the gradients of a scalar of the output (its sum) with respect to every
    variable the call read and every float input."""
    def run(*inputs):
        floats = [t for t in tf.nest.flatten(inputs) if t.dtype.is_floating]
        with tf.GradientTape() as tape:
            tape.watch(floats)
            value = tf.reduce_sum(function(*inputs))
        return value, tape.gradient(value, [*tape.watched_variables(), *floats])
    return run


# ------------------------------------------------------------------------ timing


def compiled(function, jit):
    return tf.function(function, jit_compile=jit, autograph=False)


def call(function, inputs):
    return function if inputs is None else (lambda: function(*inputs))


def graph_ops(function, inputs):
    """The number of ops in the traced graph of a `tf.function` (before TensorFlow optimizes it: a
    count of the work the Python code asks for), or None for fit's train function."""
    if inputs is None:
        return None
    return len(function.get_concrete_function(*inputs).graph.get_operations())


def profile_family(family, args):
    size, vocabulary, gated = shapes(family, args.config)
    size.sequence_length = args.sequence_length
    keras.utils.set_random_seed(0)
    ours, theirs = models(family, size, vocabulary, dropout=args.dropout, gated_feed_forward=gated)
    data = batch(family, args.batch_size, args.sequence_length, vocabulary, args.masked)
    for model in (ours, theirs):
        compile_and_build(model, data, args.jit_compile)
    rows = []

    def measure(part, mine, hub):
        """`mine` and `hub`: (function, its inputs, or None for a call without arguments)."""
        row = ours_against_keras_hub(call(*mine), call(*hub), args.repeats)
        row["ours_ops"], row["keras_hub_ops"] = graph_ops(*mine), graph_ops(*hub)
        rows.append({"part": part, **row})
        print(f"  {family} {part}: ours {row['ours_ms']:.1f} ms, keras-hub {row['keras_hub_ms']:.1f} ms "
              f"(CPU {row['ours_cpu_ms']:.1f} / {row['keras_hub_cpu_ms']:.1f} ms)", flush=True)

    jit = args.jit_compile
    ours_whole, hub_whole = whole_model(ours, data), whole_model(theirs, data)
    for part, (function, inputs) in ours_whole.items():
        hub_function, hub_inputs = hub_whole[part]
        if part != "train step":  # fit's function is compiled already, as fit compiles it
            function, hub_function = compiled(function, jit), compiled(hub_function, jit)
        measure(part, (function, inputs), (hub_function, hub_inputs))
    for part, ((mine, my_inputs), (hub, hub_inputs)) in family_parts(family, ours, theirs, *data).items():
        measure(part, (compiled(mine, jit), my_inputs), (compiled(hub, jit), hub_inputs))
        measure(f"{part} fwd+bwd", (compiled(with_gradients(mine), jit), my_inputs),
                (compiled(with_gradients(hub), jit), hub_inputs))
    result = {"family": family, "vocabulary_size": vocabulary, "gated_feed_forward": gated,
              "num_layers": size.num_layers, "hidden_dim": size.hidden_dim, "num_heads": size.num_heads,
              "target_length": int(data[1].shape[1]),
              "parameters_ours": ours.count_params(), "parameters_keras_hub": theirs.count_params(),
              "rows": rows}
    if args.trace:
        result["top_ops"] = {name: top_ops(step, args.top) for name, step in
                             (("ours", whole_model(ours, data)["train step"][0]),
                              ("keras-hub", whole_model(theirs, data)["train step"][0]))}
    return result


# ------------------------------------------------------------------- the trace


# Ops that run a function: their time is that of the ops inside, which are counted themselves.
_CALLS = ("PartitionedCall", "While", "If", "Case")


def top_ops(step, count, calls=3):
    """[(op type, ms, share)]: the op types a traced call of `step` spent most time in, the mean of
    `calls` calls (summed over threads, so shares of the ops' time, not of the wall time; under XLA a
    compiled cluster is one op)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    step()  # nothing left to trace or compile
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        for _ in range(calls):
            step()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        for path in glob.glob(os.path.join(folder, "plugins", "profile", "*", "*.xplane.pb")):
            with open(path, "rb") as handle:
                space.ParseFromString(handle.read())
    totals = {}
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                # Op events are named "op name:op type"; the executor's own events have no type.
                kind = plane.event_metadata[event.metadata_id].display_name
                if ":" in plane.event_metadata[event.metadata_id].name and kind and not kind.endswith(_CALLS):
                    totals[kind] = totals.get(kind, 0.0) + event.duration_ps / 1e9 / calls
    total = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:count]
    return [(kind, ms, ms / total) for kind, ms in ranked]


# -------------------------------------------------------------------------- main


def print_table(result, args):
    print(f"\n{result['family']} ({args.config}: {result['num_layers']} layers, width {result['hidden_dim']}, "
          f"vocabulary {result['vocabulary_size']}; batch {args.batch_size} x {args.sequence_length}"
          + (f", target {result['target_length']}" if result["family"] == "t5" else "")
          + f"; {'XLA' if args.jit_compile else 'graph'}, dropout {args.dropout})")
    print(f"{'':<24} {'---------- wall ----------':>28} {'---------- CPU -----------':>28} {'graph ops':>13}")
    print(f"{'part':<24} {'ours ms':>9} {'hub ms':>9} {'hub/ours':>8} {'ours ms':>9} {'hub ms':>9} {'hub/ours':>8} "
          f"{'ours':>6} {'hub':>6}")
    for row in result["rows"]:
        ops_ = "".join(f" {'' if row[k] is None else row[k]:>6}" for k in ("ours_ops", "keras_hub_ops"))
        print(f"{row['part']:<24} {row['ours_ms']:>9.1f} {row['keras_hub_ms']:>9.1f} "
              f"{row['speed_vs_keras_hub']:>7.2f}x {row['ours_cpu_ms']:>9.1f} {row['keras_hub_cpu_ms']:>9.1f} "
              f"{row['cpu_speed_vs_keras_hub']:>7.2f}x{ops_}")
    for name, ops_ in result.get("top_ops", {}).items():
        print(f"  top op types, a train step, {name}: "
              + ", ".join(f"{kind} {ms:.1f} ms ({share:.0%})" for kind, ms, share in ops_))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--config", default="small", choices=["small", "real"],
                        help="small: vocabulary 8192, width 256, 4 layers; real: gpt2_small, bert_base, t5_small")
    parser.add_argument("--jit-compile", action="store_true", help="compile every function with XLA")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--masked", type=int, default=20, help="BERT: masked positions per row")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per row and model (median); default 15 small, 5 real")
    parser.add_argument("--trace", action="store_true", help="also list the top op types of a traced train step")
    parser.add_argument("--top", type=int, default=8, help="op types listed with --trace")
    parser.add_argument("--output", default="runs/benchmarks/training_profile.json")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 15 if args.config == "small" else 5
    for name in ("batch_size", "sequence_length", "masked", "repeats", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1; received {getattr(args, name)}")
    if args.masked > args.sequence_length:
        parser.error(f"--masked must not exceed --sequence-length; received {args.masked} > {args.sequence_length}")
    if not 0 <= args.dropout < 1:
        parser.error(f"--dropout must lie in [0, 1); received {args.dropout}")
    # Masked-LM training leaves BERT's pooler without gradients (both libraries); keras-hub's T5
    # attention warns that it drops Keras masks (it takes the padding masks as inputs instead).
    warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooled_dense")
    warnings.filterwarnings("ignore", message=r"Layer '(self|cross)_attention' \(of type T5MultiHeadAttention\)")
    tf.get_logger().setLevel("ERROR")  # each part is its own tf.function: TensorFlow warns of retracing
    results = [profile_family(family, args) for family in args.families]
    for result in results:
        print_table(result, args)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"backend": keras.backend.backend(), "arguments": vars(args), "families": results}, handle,
                  indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
