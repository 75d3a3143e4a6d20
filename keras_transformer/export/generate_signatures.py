"""`generate` signatures: text in, text out, the decoding loop and its cache inside the graph.

Inputs (every one (batch,), or (1,) to use one value for all rows):
    prompt (GPT) / text (T5)  string
    max_new_tokens  int32    1 <= n; GPT: n < max_sequence_length; T5: n <= max_sequence_length
    temperature     float32  0 = greedy; > 0 samples (see keras_transformer.export.sampling)
    top_k           int32    0 = off
    top_p           float32  in (0, 1]; 1 = off
    seed            int64    the row's random stream (equal requests give equal outputs)
Outputs:
    generated_text  (batch,) string: the new tokens only, stop token excluded
    token_ids       (batch, length) int32: GPT prompt + new tokens; T5 the decoder
                    start id 0 + new tokens; 0 after each row's end
    padding_mask    (batch, length) int32: 1 up to each row's end (a stop token
                    included), as `model.generate` returns it
    prompt_length   (batch,) int32 (GPT only): prompt tokens kept

Truncation: a GPT prompt keeps its last `max_sequence_length - max_new_tokens`
tokens (the most recent context); a T5 input keeps its first
`max_sequence_length - 1` tokens, then `</s>`. Empty GPT prompts and
settings out of range are rejected (INVALID_ARGUMENT). Rows stop at the
tokenizer's end token (`</s>` / `[SEP]`) unless other stop ids were given at
export. Ids the tokenizer cannot decode (model vocabulary larger than the
tokenizer's) are never generated.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.export import text_graph
from keras_transformer.export.decoding import causal_generate, seq2seq_generate
from keras_transformer.export.model_signatures import model_config
from keras_transformer.export.signature import Signature, assert_all, checked, row_settings

SETTINGS = {  # name -> (dtype, greedy value used in samples)
    "max_new_tokens": (tf.int32, 4),
    "temperature": (tf.float32, 0.0),
    "top_k": (tf.int32, 0),
    "top_p": (tf.float32, 1.0),
    "seed": (tf.int64, 0),
}


def _specs(text_name):
    specs = {text_name: tf.TensorSpec([None], tf.string, name=text_name)}
    specs.update({name: tf.TensorSpec([None], dtype, name=name) for name, (dtype, _) in SETTINGS.items()})
    return specs


def _settings(inputs, batch, max_new_limit):
    """Per-row settings (batch,) and the checks of their ranges."""
    rows = {name: row_settings(inputs[name], batch, name, dtype) for name, (dtype, _) in SETTINGS.items()}
    checks = [
        assert_all((rows["max_new_tokens"] >= 1) & (rows["max_new_tokens"] <= max_new_limit),
                   f"max_new_tokens must be in [1, {max_new_limit}]; received", rows["max_new_tokens"]),
        assert_all(rows["temperature"] >= 0, "temperature must be >= 0 (0 = greedy); received", rows["temperature"]),
        assert_all(rows["top_k"] >= 0, "top_k must be >= 0 (0 = off); received", rows["top_k"]),
        assert_all((rows["top_p"] > 0) & (rows["top_p"] <= 1), "top_p must be in (0, 1]; received", rows["top_p"]),
    ]
    return checked(rows, checks)


def _generated_text(tokenizer, token_ids, padding_mask, starts, stop_ids):
    """Detokenized new tokens of each row (from `starts`, inside the mask, stop ids dropped)."""
    positions = tf.range(tf.shape(token_ids)[1])[None, :]
    keep = (positions >= starts[:, None]) & (padding_mask > 0)
    for stop in stop_ids:
        keep &= token_ids != stop
    return tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, keep))


def _sample(text_name, texts):
    sample = {text_name: np.array([t.encode("utf-8") for t in texts], dtype=object)}
    for name, (dtype, value) in SETTINGS.items():
        sample[name] = np.full([len(texts)], value, dtype.as_numpy_dtype)
    sample["seed"] = np.arange(len(texts), dtype="int64")
    return sample


def _limit(model, tokenizer):
    """Ids >= this are never generated (None when the tokenizer covers the model's vocabulary)."""
    size = tokenizer.vocabulary_size()
    return size if size < model_config(model).vocabulary_size else None


def gpt_generate(model, tokenizer, special, stop_ids):
    max_length = model_config(model).max_sequence_length
    vocabulary_limit = _limit(model, tokenizer)

    def preprocess(inputs):
        ids = text_graph.tokenize(tokenizer, inputs["prompt"])
        batch = ids.nrows(out_type=tf.int32)
        settings = _settings(inputs, batch, max_length - 1)
        lengths = ids.row_lengths()
        check = assert_all(lengths > 0, "generate: every prompt needs at least one token; prompt lengths:", lengths)
        ids = text_graph.keep_last(ids, max_length - settings["max_new_tokens"])
        with tf.control_dependencies([check]):
            return tf.identity(ids), settings

    def function(inputs):
        ids, settings = preprocess(inputs)
        token_ids, mask = causal_generate(model, ids, settings["max_new_tokens"], settings, stop_ids,
                                          vocabulary_limit)
        starts = tf.cast(ids.row_lengths(), tf.int32)
        return {"generated_text": _generated_text(tokenizer, token_ids, mask, starts, stop_ids),
                "token_ids": token_ids, "padding_mask": mask, "prompt_length": starts}

    traced = tf.function(preprocess, input_signature=[_specs("prompt")], autograph=False)

    def reference(sample):
        """`model.generate` (Python, greedy) on the same prompt ids."""
        ids, settings = traced(sample)
        token_ids, mask = text_graph.to_dense(ids, 0)
        new = int(settings["max_new_tokens"][0])
        result = model.generate({"token_ids": token_ids.numpy(), "padding_mask": mask.numpy()},
                                max_new_tokens=new, stop_token_ids=stop_ids or None, run_eagerly=True)
        return {"token_ids": result["token_ids"] * result["padding_mask"],
                "padding_mask": result["padding_mask"].astype("int32")}

    return Signature(
        "generate", _specs("prompt"), function,
        f"prompt -> continuation (cached decoding in the graph); prompts keep their last "
        f"{max_length} - max_new_tokens tokens; stops at ids {list(stop_ids)}.",
        _sample("prompt", ["the ", "import os"]),
        reference if vocabulary_limit is None else None, uses_tokenizer=True,
    )


def t5_generate(model, tokenizer, special, stop_ids):
    special.require("T5 generate", "end_id")
    max_length = model_config(model).max_sequence_length
    vocabulary_limit = _limit(model, tokenizer)

    def preprocess(inputs):
        encoder_ids, encoder_mask = text_graph.pack_t5_encoder(
            text_graph.tokenize(tokenizer, inputs["text"]), special, max_length)
        return encoder_ids, encoder_mask, _settings(inputs, tf.shape(encoder_ids)[0], max_length)

    def function(inputs):
        encoder_ids, encoder_mask, settings = preprocess(inputs)
        token_ids, mask = seq2seq_generate(model, encoder_ids, encoder_mask, settings["max_new_tokens"],
                                           settings, stop_ids, vocabulary_limit)
        starts = tf.ones_like(settings["max_new_tokens"])
        return {"generated_text": _generated_text(tokenizer, token_ids, mask, starts, stop_ids),
                "token_ids": token_ids, "padding_mask": mask}

    traced = tf.function(preprocess, input_signature=[_specs("text")], autograph=False)

    def reference(sample):
        encoder_ids, encoder_mask, settings = traced(sample)
        result = model.generate({"encoder_token_ids": encoder_ids.numpy(), "encoder_padding_mask": encoder_mask.numpy()},
                                max_new_tokens=int(settings["max_new_tokens"][0]), stop_token_ids=stop_ids or None,
                                run_eagerly=True)
        return {"token_ids": result["token_ids"] * result["padding_mask"],
                "padding_mask": result["padding_mask"].astype("int32")}

    return Signature(
        "generate", _specs("text"), function,
        f"text -> generated text (encoder once, cached decoder in the graph); inputs keep their first "
        f"{max_length - 1} tokens then </s>; stops at ids {list(stop_ids)}.",
        _sample("text", ["translate: the cat", "summarize: a long text"]),
        reference if vocabulary_limit is None else None, uses_tokenizer=True,
    )


def default_stop_ids(special, stop_token_ids):
    if stop_token_ids is not None:
        return tuple(int(i) for i in stop_token_ids)
    return (special.end_id,) if special.end_id is not None else ()
