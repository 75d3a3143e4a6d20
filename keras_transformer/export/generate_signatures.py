"""`generate` signatures: text in, text out, the decoding core and its cache inside the graph.

Inputs (every one (batch,), or (1,) to use one value for all rows):
    prompt (GPT) / text (T5)  string
    max_new_tokens  int32    1 <= n; GPT: n < max_sequence_length; T5: n <= max_sequence_length
    temperature     float32  0 = greedy; > 0 samples (see keras_transformer.generation.choosers.RowChooser)
    top_k           int32    0 = off
    top_p           float32  in (0, 1]; 1 = off
    seed            int64    the row's random stream (equal requests give equal outputs)
Outputs:
    generated_text  (batch,) string: the new tokens only, stop token excluded
    token_ids       (batch, length) int32: GPT prompt + new tokens; T5 the decoder
                    start id + new tokens; 0 after each row's end
    padding_mask    (batch, length) int32: 1 up to each row's end (a stop token
                    included), as `model.generate` returns it
    prompt_length   (batch,) int32: prompt tokens kept (T5: encoder tokens, `</s>` included)
    log_probs       (batch, max(max_new_tokens)) float32: each new token's
                    log-probability under the chooser's scores (0 past a row's end)
    token_texts     (batch, length) string: each id of `token_ids` detokenized alone

Streaming (`generate_start` + `generate_next`, exported with `generate`): a
server produces tokens a few at a time with the decoding state carried as
tensors between calls, on any TensorFlow Serving build.
    generate_start  the `generate` inputs -> `state_*` tensors (cache, token
                    buffer, settings), the prompt already run through the model
    generate_next   `state_*` + `steps` (1,) int32 -> the next `state_*` and, for
                    this call's window of up to `steps` positions, `token_ids`,
                    `padding_mask`, `log_probs`, `token_texts` (each token
                    detokenized alone); `generated_text` (every new token so far)
                    and `done` (batch,) int32 (1 once a row has ended)

The loop is `keras_transformer.generation.decoding`, the one `model.generate`
runs, with the task model's own adapter; the per-row settings go to a
`RowChooser`, and the controls of the model's `generation_config` (an imported
checkpoint's repetition penalty, n-gram ban, bad words, ...) are fixed at
export. Truncation: a GPT prompt keeps its last `max_sequence_length -
max_new_tokens` tokens (the most recent context); a T5 input keeps its first
`max_sequence_length - 1` tokens, then `</s>`. Empty GPT prompts and settings
out of range are rejected (INVALID_ARGUMENT). Rows stop at the tokenizer's end
token (`</s>` / `[SEP]`) unless other stop ids were given at export. Ids the
tokenizer cannot decode (model vocabulary larger than the tokenizer's) are
never generated.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.export import text_graph
from keras_transformer.export.model_signatures import model_config
from keras_transformer.export.signature_spec import Signature, assert_all, checked, row_settings
from keras_transformer.generation import decoding
from keras_transformer.generation.choosers import RowChooser
from keras_transformer.generation.config import resolve
from keras_transformer.generation.processors import processor_for

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


def _processor(model, stop_ids, vocabulary_limit, seq2seq):
    """The model's own generation controls (an imported generation_config.json), fixed at export."""
    resolved = resolve(getattr(model, "generation_config", None))
    return processor_for(resolved, model_config(model).vocabulary_size, stop_ids, seq2seq=seq2seq,
                         vocabulary_limit=vocabulary_limit)


def _chooser(settings):
    return RowChooser(settings["temperature"], settings["top_k"], settings["top_p"], settings["seed"])


def _decode(model, encoder, prompt, prompt_mask, settings, stop_ids, vocabulary_limit):
    """The decoding core on left-aligned prompts; (token_ids, valid) right-aligned again, and log_probs."""
    processor = _processor(model, stop_ids, vocabulary_limit, encoder is not None)
    token_ids, valid, log_probs = decoding.decode(model.generation_adapter(), processor, _chooser(settings),
                                                  encoder, prompt, prompt_mask, settings["max_new_tokens"])
    return decoding.right_align(token_ids, valid) + (log_probs,)


ROW_SETTINGS = ("temperature", "top_k", "top_p", "seed")
SCALARS = ("index", "prompt_length")  # carried as (batch,) copies: every served tensor has a batch axis


def _state_tensors(state, settings):
    """The core's state dict (plus the row settings) as flat `state_*` tensors."""
    batch = tf.shape(state["tokens"])[0]
    flat = {}
    for name, value in state.items():
        if name == "model_state":
            flat.update({f"state_model_{i}": t for i, t in enumerate(tf.nest.flatten(value))})
        else:
            flat[f"state_{name}"] = tf.fill([batch], value) if name in SCALARS else value
    flat.update({f"state_{name}": settings[name] for name in ROW_SETTINGS})
    return flat


def _from_state_tensors(flat, model_state_structure):
    state = {name[len("state_"):]: value for name, value in flat.items()
             if name.startswith("state_") and not name.startswith("state_model_")}
    state.update({name: state[name][0] for name in SCALARS})
    count = len(tf.nest.flatten(model_state_structure))
    state["model_state"] = tf.nest.pack_sequence_as(model_state_structure,
                                                    [flat[f"state_model_{i}"] for i in range(count)])
    settings = {name: state.pop(name) for name in ROW_SETTINGS}
    return state, settings


def _token_texts(tokenizer, token_ids):
    """(batch, n) ids -> (batch, n) strings, each id detokenized alone."""
    shape = tf.shape(token_ids)
    texts = tokenizer.detokenize(tf.reshape(token_ids, [-1, 1]))
    return tf.reshape(texts, shape)


def stream_signatures(model, tokenizer, stop_ids, text_name, prepare, sample):
    """`generate_start` and `generate_next` for a model whose `generate` signature is built by `prepare`.

    prepare(inputs) -> (encoder or None, left-aligned prompt, prompt_mask, settings) in the graph.
    """
    vocabulary_limit = _limit(model, tokenizer)
    seq2seq = hasattr(model, "encode")
    structure = {}

    def start(inputs):
        encoder, prompt, prompt_mask, settings = prepare(inputs)
        state = decoding.start(model.generation_adapter(), encoder, prompt, prompt_mask, settings["max_new_tokens"])
        structure["model_state"] = tf.nest.map_structure(lambda t: t.dtype, state["model_state"])
        return _state_tensors(state, settings)

    # The state's tensors and shapes (batch and lengths dynamic, model sizes fixed) come from one trace of `start`.
    traced_start = tf.function(start, autograph=False).get_concrete_function(_specs(text_name))
    start_specs = traced_start.structured_outputs
    state_specs = {name: tf.TensorSpec(spec.shape, spec.dtype, name=name) for name, spec in start_specs.items()}
    next_specs = dict(state_specs, steps=tf.TensorSpec([None], tf.int32, name="steps"))

    def next_(inputs):
        state, settings = _from_state_tensors(inputs, structure["model_state"])
        steps = assert_steps(inputs["steps"])
        processor = _processor(model, stop_ids, vocabulary_limit, seq2seq)
        before = state["index"]
        state = decoding.advance(model.generation_adapter(), processor, _chooser(settings), state, steps)
        end = tf.minimum(before + steps, tf.shape(state["tokens"])[1])
        window = state["tokens"][:, before:end]
        window_valid = state["valid"][:, before:end]
        new_start = before - state["prompt_length"]
        log_probs = state["log_probs"][:, new_start:new_start + (end - before)]
        starts = tf.fill([tf.shape(window)[0]], state["prompt_length"])
        outputs = _state_tensors(state, settings)
        outputs.update({
            "token_ids": tf.where(window_valid, window, 0),
            "padding_mask": tf.cast(window_valid, tf.int32),
            "log_probs": tf.where(window_valid, log_probs, 0.0),
            "token_texts": _token_texts(tokenizer, window),
            "generated_text": _generated_text(tokenizer, state["tokens"], tf.cast(state["valid"], tf.int32),
                                              starts, stop_ids),
            "done": tf.cast(state["done"], tf.int32),
        })
        return outputs

    def assert_steps(steps):
        check = assert_all((tf.size(steps) == 1) & (steps >= 1), "steps must be one integer >= 1; received", steps)
        with tf.control_dependencies([check]):
            return tf.reshape(steps, [-1])[0]

    # generate_next's sample (its warm-up request) is the state generate_start makes from the same sample.
    next_sample = {name: value.numpy() for name, value in traced_start(
        **{name: tf.constant(value) for name, value in sample.items()}).items()}
    next_sample["steps"] = np.array([2], "int32")
    description = (f"streaming: the `generate` inputs -> the decoding state (state_* tensors) for "
                   f"`generate_next`; {text_name} as in `generate`.")
    next_description = ("streaming: state_* and `steps` -> up to `steps` more tokens per row (token_ids, "
                        "padding_mask, log_probs, token_texts), generated_text so far, done, and the next state_*.")
    return [Signature("generate_start", _specs(text_name), start, description, dict(sample), uses_tokenizer=True),
            Signature("generate_next", next_specs, next_, next_description, next_sample, uses_tokenizer=True)]


def _reference(model, stop_ids, inputs, max_new_tokens):
    """`model.generate` (Python, greedy, eager) on the prompt ids the graph made."""
    result = model.generate(inputs, max_new_tokens=max_new_tokens, stop_token_ids=stop_ids or None,
                            sampler="greedy", run_eagerly=True)
    return {"token_ids": result["token_ids"] * result["padding_mask"],
            "padding_mask": result["padding_mask"].astype("int32")}


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

    def prepare(inputs):
        ids, settings = preprocess(inputs)
        prompt, prompt_mask = decoding.left_align(*text_graph.to_dense(ids, 0))
        return None, prompt, prompt_mask, settings

    def function(inputs):
        ids, settings = preprocess(inputs)
        prompt, prompt_mask = decoding.left_align(*text_graph.to_dense(ids, 0))
        token_ids, valid, log_probs = _decode(model, None, prompt, prompt_mask, settings, stop_ids, vocabulary_limit)
        starts = tf.cast(ids.row_lengths(), tf.int32)
        width = tf.reduce_max(starts + settings["max_new_tokens"])  # the longest row's end
        token_ids, mask = token_ids[:, :width], tf.cast(valid[:, :width], tf.int32)
        return {"generated_text": _generated_text(tokenizer, token_ids, mask, starts, stop_ids),
                "token_ids": token_ids, "padding_mask": mask, "prompt_length": starts, "log_probs": log_probs,
                "token_texts": _token_texts(tokenizer, token_ids)}

    traced = tf.function(preprocess, input_signature=[_specs("prompt")], autograph=False)

    def reference(sample):
        ids, settings = traced(sample)
        token_ids, mask = text_graph.to_dense(ids, 0)
        return _reference(model, stop_ids, {"token_ids": token_ids.numpy(), "padding_mask": mask.numpy()},
                          int(settings["max_new_tokens"][0]))

    sample = _sample("prompt", ["the ", "import os"])
    return [Signature(
        "generate", _specs("prompt"), function,
        f"prompt -> continuation (cached decoding in the graph); prompts keep their last "
        f"{max_length} - max_new_tokens tokens; stops at ids {list(stop_ids)}.",
        sample, reference if vocabulary_limit is None else None, uses_tokenizer=True,
    )] + stream_signatures(model, tokenizer, stop_ids, "prompt", prepare, sample)


def t5_generate(model, tokenizer, special, stop_ids):
    special.require("T5 generate", "end_id")
    max_length = model_config(model).max_sequence_length
    vocabulary_limit = _limit(model, tokenizer)
    start_id = resolve(getattr(model, "generation_config", None))["decoder_start_token_id"] or 0

    def preprocess(inputs):
        encoder_ids, encoder_mask = text_graph.pack_t5_encoder(
            text_graph.tokenize(tokenizer, inputs["text"]), special, max_length)
        return encoder_ids, encoder_mask, _settings(inputs, tf.shape(encoder_ids)[0], max_length)

    def prepare(inputs):
        encoder_ids, encoder_mask, settings = preprocess(inputs)
        prompt = tf.fill([tf.shape(encoder_ids)[0], 1], tf.constant(start_id, tf.int32))
        return (encoder_ids, encoder_mask), prompt, tf.ones_like(prompt), settings

    def function(inputs):
        encoder, prompt, prompt_mask, settings = prepare(inputs)
        token_ids, valid, log_probs = _decode(model, encoder, prompt, prompt_mask, settings, stop_ids,
                                              vocabulary_limit)
        mask = tf.cast(valid, tf.int32)
        starts = tf.ones_like(settings["max_new_tokens"])
        return {"generated_text": _generated_text(tokenizer, token_ids, mask, starts, stop_ids),
                "token_ids": token_ids, "padding_mask": mask, "log_probs": log_probs,
                "token_texts": _token_texts(tokenizer, token_ids),
                "prompt_length": tf.reduce_sum(tf.cast(encoder[1], tf.int32), axis=1)}

    traced = tf.function(preprocess, input_signature=[_specs("text")], autograph=False)

    def reference(sample):
        encoder_ids, encoder_mask, settings = traced(sample)
        return _reference(model, stop_ids, {"encoder_token_ids": encoder_ids.numpy(),
                                            "encoder_padding_mask": encoder_mask.numpy()},
                          int(settings["max_new_tokens"][0]))

    sample = _sample("text", ["translate: the cat", "summarize: a long text"])
    return [Signature(
        "generate", _specs("text"), function,
        f"text -> generated text (encoder once, cached decoder in the graph); inputs keep their first "
        f"{max_length - 1} tokens then </s>; stops at ids {list(stop_ids)}.",
        sample, reference if vocabulary_limit is None else None, uses_tokenizer=True,
    )] + stream_signatures(model, tokenizer, stop_ids, "text", prepare, sample)


def default_stop_ids(special, stop_token_ids):
    if stop_token_ids is not None:
        return tuple(int(i) for i in stop_token_ids)
    return (special.end_id,) if special.end_id is not None else ()
