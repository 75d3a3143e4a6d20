"""Training throughput: the input pipeline against the training step, and ours against keras-hub.

    python benchmarks/training.py                        # CPU-sized: a few minutes on 2 cores
    python benchmarks/training.py --families gpt --steps 20 --hidden-dim 256

For each family (GPT causal LM, BERT masked LM, T5 span corruption), one
small configuration (random weights, dropout 0, float32, byte tokenizer,
the built-in corpus), global batch `--batch-size` of `--sequence-length`
tokens. Tokens per step count every position the model computes (T5: encoder
plus decoder positions). Reported per family, in tokens per second:

- pipeline: `training.data.training_stream` alone (tokenize, pack, mask or
  corrupt, shuffle, batch), iterated as fast as it goes;
- ours, cached batches: `fit` of our model on batches from that stream held
  in memory, so the step alone is timed: what training consumes;
- ours, live pipeline: `fit` on the stream itself, the pipeline running
  beside the step (on a 2-core CPU they share the cores; each fit starts a
  new iterator, which first fills the 4096-row shuffle buffer);
- keras-hub, cached batches: `fit` of keras-hub's model of the same
  configuration (GPT2CausalLM / BertMaskedLM / T5Seq2SeqLM, preprocessor=None)
  on the same cached batches, compiled the same way (AdamW 1e-4, sparse
  cross-entropy on the logits, no metrics, jit_compile "auto").

pipeline / consumption > 1 means the step, not the input, is the bottleneck.
Each model is warmed up (compiled) on 2 steps first; each figure is the
median of `--repeats` fits of `--steps` steps, the three fits of a family
alternating. Prints a table, writes JSON.
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings

# This script is benchmarks/training.py: without its own folder on the path, `import training`
# finds the training package, not this file.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import keras  # noqa: E402
import keras_hub  # noqa: E402

from keras_transformer.models import (  # noqa: E402
    BertBackbone,
    BertConfig,
    BertMaskedLM,
    GPTBackbone,
    GPTCausalLM,
    GPTConfig,
    T5Backbone,
    T5Config,
    T5Seq2SeqLM,
)
from keras_transformer.text.corpus import stdlib_documents  # noqa: E402
from keras_transformer.text.tokenizers import train_tokenizer  # noqa: E402
from training import data  # noqa: E402
from training.config import TrainConfig  # noqa: E402


def models(family, args, vocabulary, dropout=0.0, gated_feed_forward=False):
    """(ours, keras-hub's) task models of one configuration (`args`: hidden_dim, num_layers, num_heads,
    sequence_length; the feed-forward is 4 * hidden_dim wide; `gated_feed_forward`: T5 only)."""
    h, layers, heads, ffn, length = args.hidden_dim, args.num_layers, args.num_heads, 4 * args.hidden_dim, \
        args.sequence_length
    if family == "gpt":
        config = GPTConfig(vocabulary_size=vocabulary, num_layers=layers, num_heads=heads, hidden_dim=h,
                           intermediate_dim=ffn, dropout=dropout, max_sequence_length=length)
        theirs = keras_hub.models.GPT2Backbone(vocabulary_size=vocabulary, num_layers=layers, num_heads=heads,
                                               hidden_dim=h, intermediate_dim=ffn, dropout=dropout,
                                               max_sequence_length=length)
        return GPTCausalLM(GPTBackbone(**config.to_dict())), keras_hub.models.GPT2CausalLM(theirs, preprocessor=None)
    if family == "bert":
        config = BertConfig(vocabulary_size=vocabulary, num_layers=layers, num_heads=heads, hidden_dim=h,
                            intermediate_dim=ffn, dropout=dropout, max_sequence_length=length)
        theirs = keras_hub.models.BertBackbone(vocabulary_size=vocabulary, num_layers=layers, num_heads=heads,
                                               hidden_dim=h, intermediate_dim=ffn, dropout=dropout,
                                               max_sequence_length=length)
        return BertMaskedLM(BertBackbone(**config.to_dict())), keras_hub.models.BertMaskedLM(theirs, preprocessor=None)
    key_dim = h // heads
    config = T5Config(vocabulary_size=vocabulary, num_layers=layers, num_decoder_layers=layers, num_heads=heads,
                      key_dim=key_dim, hidden_dim=h, intermediate_dim=ffn, dropout=dropout, activation="relu",
                      gated_feed_forward=gated_feed_forward, tie_word_embeddings=True, scale_decoder_outputs=True)
    theirs = keras_hub.models.T5Backbone(vocabulary_size=vocabulary, num_layers=layers, num_heads=heads,
                                         hidden_dim=h, intermediate_dim=ffn, key_value_dim=key_dim, dropout=dropout,
                                         activation="relu", use_gated_activation=gated_feed_forward,
                                         tie_embedding_weights=True)
    return T5Seq2SeqLM(T5Backbone(**config.to_dict())), keras_hub.models.T5Seq2SeqLM(theirs, preprocessor=None)


def pipeline_rate(stream, steps, tokens_per_step):
    iterator = iter(stream)
    for _ in range(3):  # warm up: traces the maps, fills the shuffle buffer
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * tokens_per_step / (time.perf_counter() - start)


def compiled(model, dataset):
    model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(dataset, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)  # trace and compile
    return model


def fit_rates(runs, tokens_per_step, repeats):
    """Median tokens/s of each (model, dataset, steps); the runs alternate, so load changes hit all alike."""
    seconds = [[] for _ in runs]
    for _ in range(repeats):
        for (model, dataset, steps), samples in zip(runs, seconds):
            start = time.perf_counter()
            model.fit(dataset, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
            samples.append(time.perf_counter() - start)
    return [steps * tokens_per_step / statistics.median(samples) for (_, _, steps), samples in zip(runs, seconds)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=["gpt", "bert", "t5"], choices=["gpt", "bert", "t5"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per model (median)")
    parser.add_argument("--output", default="runs/benchmarks/training.json")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    # Masked-LM training leaves BERT's pooler without gradients (both libraries); keras-hub's T5
    # attention warns that it drops Keras masks (it takes the padding masks as inputs instead).
    warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooled_dense")
    warnings.filterwarnings("ignore", message=r"Layer '(self|cross)_attention' \(of type T5MultiHeadAttention\)")
    documents = stdlib_documents()
    rows = []
    for family in args.families:
        config = TrainConfig(family=family, batch_size=args.batch_size, sequence_length=args.sequence_length)
        tokenizer = train_tokenizer("bytes", num_sentinels=data.num_sentinels(config, family))
        shapes = data.shapes_for(config, family, args.sequence_length)
        corpus = data.Corpus(documents, [], "built-in")
        stream = data.training_stream(config, family, tokenizer, corpus, shapes, 0)
        tokens = args.batch_size * shapes.tokens_per_row
        cached = stream.take(args.steps + 2).cache().repeat()
        for _ in cached.take(args.steps + 2):  # fill the cache
            pass
        ours, theirs = models(family, args, int(tokenizer.vocabulary_size()))
        row = {"family": family, "tokens_per_step": tokens, "parameters_ours": ours.count_params(),
               "parameters_keras_hub": theirs.count_params()}
        row["pipeline"] = pipeline_rate(stream, args.steps * 5, tokens)
        live = data.training_stream(config, family, tokenizer, corpus, shapes, 0)
        runs = [(compiled(ours, cached), cached, args.steps), (compiled(theirs, cached), cached, args.steps),
                (ours, live, args.steps)]
        row["ours_cached"], row["keras_hub_cached"], row["ours_live"] = fit_rates(runs, tokens, args.repeats)
        row["pipeline_over_consumption"] = row["pipeline"] / row["ours_cached"]
        rows.append(row)
        print(f"  {family}: " + ", ".join(f"{k} {v:,.0f}" for k, v in row.items() if isinstance(v, float)), flush=True)

    print(f"\nbackend={keras.backend.backend()}, batch {args.batch_size} x {args.sequence_length}, "
          f"{args.num_layers} layers, width {args.hidden_dim}, {args.steps} timed steps; tokens/s")
    header = f"{'family':<6} {'pipeline':>10} {'ours cached':>12} {'ours live':>10} {'keras-hub':>10} " \
             f"{'ours/hub':>9} {'pipeline/step':>14}"
    print(header)
    for r in rows:
        print(f"{r['family']:<6} {r['pipeline']:>10,.0f} {r['ours_cached']:>12,.0f} {r['ours_live']:>10,.0f} "
              f"{r['keras_hub_cached']:>10,.0f} {r['ours_cached'] / r['keras_hub_cached']:>8.2f}x "
              f"{r['pipeline_over_consumption']:>13.1f}x")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"backend": keras.backend.backend(), "arguments": vars(args), "rows": rows}, handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
