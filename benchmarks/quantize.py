"""int8 vs float32 SavedModel of a BERT classifier: size on disk, latency, logits difference, accuracy.

    python -m benchmarks.quantize                       # 300 training steps, 50 timed calls
    python -m benchmarks.quantize --steps 60 --repeats 20

The task is the built-in classification task of the end-to-end job
(`serving.end_to_end.labelled_lines`: docstring openings labelled "returns"
or "other"), ids are bytes + 4 after a [CLS] id 1, the model a `BertClassifier`
on `bert_test` widened by `--hidden-dim`. The trained float32 model and its
`quantize("int8")` copy are exported (ids signature only) and loaded back
with TensorFlow alone; latency is the median `serving_default` call at batch
1 and 8 in this process (the server adds the same protocol cost to both).
Prints a table and writes JSON.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

LENGTH = 48


def encode(texts):
    import numpy as np

    ids = np.zeros((len(texts), LENGTH), "int32")
    for row, text in enumerate(texts):
        values = [1] + [b + 4 for b in text.encode("utf-8")][: LENGTH - 1]
        ids[row, : len(values)] = values
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids > 0).astype("int32")}


def size_on_disk(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--output", default="runs/benchmarks/quantize.json")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_transformer.export import export
    from keras_transformer.models import BertClassifier
    from serving.end_to_end import labelled_lines

    keras.utils.set_random_seed(0)
    work = tempfile.mkdtemp()
    labelled_lines(os.path.join(work, "task.txt"))
    lines = [line.split("\t", 1) for line in open(os.path.join(work, "task.txt"), encoding="utf-8").read().splitlines()]
    labels = np.array([label == "returns" for label, _ in lines], "int32")
    inputs = encode([text for _, text in lines])
    cut = int(0.8 * len(lines))
    train = {k: v[:cut] for k, v in inputs.items()}
    test = {k: v[cut:] for k, v in inputs.items()}
    h = args.hidden_dim
    model = BertClassifier.from_preset("bert_test", num_classes=2, backbone_overrides={
        "hidden_dim": h, "intermediate_dim": 4 * h, "num_heads": 4, "max_sequence_length": LENGTH})
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = 32
    epochs = max(1, round(args.steps * batch / cut))
    model.fit(train, labels[:cut], batch_size=batch, epochs=epochs, verbose=0)

    quantized = BertClassifier.from_config(model.get_config())
    quantized.set_weights(model.get_weights())
    quantized.quantize("int8")
    rows = {}
    for name, candidate in (("float32", model), ("int8", quantized)):
        version = export(candidate, os.path.join(work, name), warmup=False, model_name=name)
        loaded = tf.saved_model.load(version).signatures["serving_default"]
        call = lambda x: loaded(**{k: tf.constant(v) for k, v in x.items()})  # noqa: E731
        logits = np.concatenate([call({k: v[i:i + 64] for k, v in test.items()})["logits"].numpy()
                                 for i in range(0, len(labels) - cut, 64)])
        latency = {}
        for size in (1, 8):
            x = {k: v[:size] for k, v in test.items()}
            call(x)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call(x)
                times.append(time.perf_counter() - start)
            latency[size] = statistics.median(times) * 1e3
        rows[name] = {"size_bytes": size_on_disk(version), "latency_ms_batch_1": latency[1],
                      "latency_ms_batch_8": latency[8], "accuracy": float(np.mean(logits.argmax(-1) == labels[cut:])),
                      "logits": logits}
    difference = float(np.abs(rows["int8"]["logits"] - rows["float32"]["logits"]).max())
    for row in rows.values():
        row.pop("logits")
    print(f"{'model':<8} {'size KiB':>9} {'b1 ms':>7} {'b8 ms':>7} {'accuracy':>9}")
    for name, row in rows.items():
        print(f"{name:<8} {row['size_bytes'] / 1024:>9.0f} {row['latency_ms_batch_1']:>7.2f} "
              f"{row['latency_ms_batch_8']:>7.2f} {row['accuracy']:>9.3f}")
    ratios = {key: rows["int8"][key] / rows["float32"][key]
              for key in ("size_bytes", "latency_ms_batch_1", "latency_ms_batch_8")}
    print(f"int8 / float32: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
          + f"; max |logits difference| {difference:.4f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump({"backend": keras.backend.backend(), "hidden_dim": h, "train_steps": args.steps,
                   "test_rows": int(len(labels) - cut), "rows": rows, "ratios": ratios,
                   "max_abs_logits_difference": difference}, handle, indent=2)


if __name__ == "__main__":
    main()
