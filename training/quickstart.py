"""End-to-end quick start on the embedded defaults.

    python -m training                       # defaults: a few hundred steps on CPU
    python -m training --steps 50 --output runs/quickstart

Builds a small GPT-style causal language model from `keras_transformer.layers`
(token + learned position embedding, pre-norm decoder blocks, tied output
projection), trains it with `model.fit` on byte-level ids of the built-in
corpus (the standard library's documentation), reports validation loss against
the corpus' unigram entropy, saves a `.keras` file and reloads it to check
the outputs match.
"""

import argparse
import math
import os
import time

import numpy as np

import keras
from keras_transformer.layers import TokenAndPositionEmbedding, TransformerDecoderBlock
from keras_transformer.text.corpus import split_documents, stdlib_documents

PAD = 0
VOCABULARY_SIZE = 257  # bytes shifted by one; 0 is padding


def encode(documents, sequence_length):
    """Concatenates byte ids (+1) of the documents, cut into full rows."""
    ids = np.frombuffer("\n".join(documents).encode("utf-8"), dtype=np.uint8).astype("int32") + 1
    rows = len(ids) // (sequence_length + 1)
    return ids[: rows * (sequence_length + 1)].reshape(rows, sequence_length + 1)


def build_model(sequence_length, hidden_dim=64, num_layers=2, num_heads=4):
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    embedding = TokenAndPositionEmbedding(
        VOCABULARY_SIZE, sequence_length, hidden_dim, name="embedding"
    )
    x = embedding(token_ids)
    for i in range(num_layers):
        x = TransformerDecoderBlock(
            num_heads,
            4 * hidden_dim,
            activation="gelu_approximate",
            normalize_first=True,
            name=f"decoder_block_{i}",
        )(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = embedding(x, reverse=True)  # tied output projection
    return keras.Model(token_ids, logits, name="quickstart_gpt")


def unigram_entropy(rows):
    counts = np.bincount(rows.ravel(), minlength=VOCABULARY_SIZE).astype("float64")
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--output", default="runs/quickstart", help="where the .keras file goes")
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error(f"--steps must be positive; received {args.steps}")

    keras.utils.set_random_seed(0)
    started = time.time()
    train_docs, validation_docs = split_documents(stdlib_documents())
    train = encode(train_docs, args.sequence_length)
    validation = encode(validation_docs, args.sequence_length)[:256]
    print(
        f"corpus: {len(train_docs)} train / {len(validation_docs)} validation documents, "
        f"{train.size} train byte tokens"
    )

    model = build_model(args.sequence_length)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=3e-3, weight_decay=0.01, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    rows = train[rng.choice(len(train), size=args.steps * args.batch_size, replace=True)]
    x_val, y_val = validation[:, :-1], validation[:, 1:]
    before = model.evaluate(x_val, y_val, verbose=0)
    model.fit(rows[:, :-1], rows[:, 1:], batch_size=args.batch_size, epochs=1, verbose=2)
    after = model.evaluate(x_val, y_val, verbose=0)
    entropy = unigram_entropy(train)
    print(
        f"validation loss {before:.3f} -> {after:.3f} nats/byte "
        f"(uniform {math.log(VOCABULARY_SIZE):.3f}, unigram entropy {entropy:.3f})"
    )

    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    difference = float(np.max(np.abs(reloaded.predict(x_val[:4], verbose=0) - model.predict(x_val[:4], verbose=0))))
    print(f"saved {path}; reloaded outputs differ by at most {difference:.2e}")
    print(f"done in {time.time() - started:.0f}s")
    if not after < before:
        raise SystemExit("training did not lower the validation loss")
    if difference > 1e-5:
        raise SystemExit("the reloaded model does not reproduce the outputs")
