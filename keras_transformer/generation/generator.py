"""`generate()` and `stream_generate()`: Python entry points of the decoding core.

They check the prompts, left-align them (per-row position offsets make a
prompt decode the same whatever its padding), resolve the settings
(`keras_transformer.generation.config`), build the logits processor and the
token chooser, and run `keras_transformer.generation.decoding` compiled
(a `tf.function`, XLA on request, or `jax.jit`). Compiled functions are kept
on the model, keyed by every Python-level setting.
"""

import itertools
import json

import keras
import numpy as np
from keras import ops

from keras_transformer.generation import config as generation_config
from keras_transformer.generation import decoding
from keras_transformer.generation.choosers import SamplerChooser
from keras_transformer.generation.processors import processor_for
from keras_transformer.generation.samplers import get_sampler


def generate(model, inputs, max_new_tokens=None, sampler=None, stop_token_ids=None, use_cache=True,
             jit_compile="auto", run_eagerly=False, return_log_probs=False, tokenizer=None, task=None,
             seed=None, **settings):
    """Generates token ids from a causal LM or a seq2seq LM.

    Args:
        model: a task model with `generation_adapter()` (GPTCausalLM, T5Seq2SeqLM).
        inputs: causal: `token_ids` (batch, length) and optional
            `padding_mask`, right- OR left-padded. Seq2seq:
            `encoder_token_ids` and optional `encoder_padding_mask`.
        max_new_tokens: tokens to add to every row, > 0 (default: from
            `max_length`, as transformers does).
        sampler: "greedy", "random", "top_k", "top_p", "beam", or a keras-hub
            sampler (overrides `do_sample` / `num_beams`).
        stop_token_ids: ids that end a row (kept as its last token); default
            the model's `eos_token_id` setting.
        use_cache: False recomputes the whole sequence every step.
        jit_compile: TensorFlow: XLA on, off, or "auto" (on when a GPU is
            present). JAX always runs under `jax.jit`.
        run_eagerly: op by op, uncompiled (debugging).
        return_log_probs: add `log_probs` (batch, new): each new token's
            log-probability (beam search: `sequence_scores` instead).
        tokenizer: needed for `stop_strings` (anything with `detokenize`).
        task: a key of the model's `task_specific_params` (T5: "summarization", ...).
        seed: seeds the random samplers.
        **settings: Hugging Face `GenerationConfig` names: do_sample,
            temperature, top_k, top_p, num_beams, length_penalty,
            early_stopping, num_return_sequences, repetition_penalty,
            no_repeat_ngram_size, min_new_tokens, min_length, bad_words_ids,
            suppress_tokens, forced_bos_token_id, forced_eos_token_id,
            max_length, decoder_start_token_id, stop_strings.

    Returns:
        dict with `token_ids` (batch * num_return_sequences, length) int32 —
        causal: prompt then continuation, in the prompt's padding layout;
        seq2seq: the start token then the output — and `padding_mask`
        (same shape) bool, True at the prompt and the new tokens (a stop
        token included).
    """
    run = _Run(model, inputs, max_new_tokens, sampler, stop_token_ids, use_cache, jit_compile, run_eagerly,
               task, seed, settings)
    if run.settings["stop_strings"]:
        for _ in run.stream(tokenizer, chunk=4):
            pass
        return run.outputs(run.last_state, return_log_probs)
    if run.beams > 1:
        tokens, mask, scores = run.compiled("beam")(*run.arrays())
        outputs = run.assemble(tokens, mask)
        if return_log_probs:
            outputs["sequence_scores"] = ops.convert_to_numpy(scores)
        return outputs
    state = run.compiled("decode")(*run.arrays())
    return run.outputs(state, return_log_probs)


def stream_generate(model, inputs, max_new_tokens=None, chunk=1, tokenizer=None, **kwargs):
    """Yields the new tokens as they are made: dicts `token_ids` (batch, n) and `padding_mask` (batch, n).

    Each item holds the next `chunk` positions (False where a row had already
    ended). Same arguments as `generate` (beam search excluded); the tokens
    equal `generate`'s.
    """
    keys = ("sampler", "stop_token_ids", "use_cache", "jit_compile", "run_eagerly", "task", "seed")
    options = {key: kwargs.pop(key, None) for key in keys}
    options["use_cache"] = True if options["use_cache"] is None else options["use_cache"]
    options["jit_compile"] = options["jit_compile"] or "auto"
    run = _Run(model, inputs, max_new_tokens, options["sampler"], options["stop_token_ids"], options["use_cache"],
               options["jit_compile"], bool(options["run_eagerly"]), options["task"], options["seed"], kwargs)
    if run.beams > 1:
        raise ValueError("stream_generate does not support beam search (num_beams > 1)")
    yield from run.stream(tokenizer, chunk)


class _Run:
    """One generate call: checked arrays, resolved settings, processor, chooser."""

    def __init__(self, model, inputs, max_new_tokens, sampler, stop_token_ids, use_cache, jit_compile,
                 run_eagerly, task, seed, settings):
        if not hasattr(model, "generation_adapter"):
            raise ValueError(f"{type(model).__name__} cannot generate (it has no generation_adapter)")
        self.model = model
        self.seq2seq = hasattr(model, "encode")
        config = model.backbone.model_config
        if sampler is not None and not isinstance(sampler, str) and type(sampler).__name__ == "BeamSampler":
            settings.setdefault("num_beams", sampler.num_beams)
            sampler = "beam"
        if sampler == "beam":
            settings.setdefault("num_beams", 4)
        sampler_names = {key: settings.pop(key) for key in ("temperature", "top_k", "top_p")
                         if key in settings and sampler not in (None, "beam")}
        self.settings = s = generation_config.resolve(getattr(model, "generation_config", None), task=task,
                                                      max_new_tokens=max_new_tokens, **settings)
        if sampler is None or sampler == "beam":
            self.beams = s["num_beams"] if sampler is None or sampler == "beam" else 1
        else:
            self.beams = 1
        if sampler == "beam" and self.beams == 1:
            sampler = "greedy"
        self.stop_ids = (tuple(int(i) for i in stop_token_ids) if stop_token_ids is not None
                         else s["eos_token_id"])
        if self.seq2seq:
            ids, mask, _ = _prompt(inputs, "encoder_token_ids", "encoder_padding_mask", config)
            self.encoder = (ids, mask)
            start = s["decoder_start_token_id"]
            start = 0 if start is None else int(start)
            self.prompt = np.full((ids.shape[0], 1), start, "int32")
            self.prompt_mask = np.ones_like(self.prompt)
            self.left = self.full = True
            new = s["max_new_tokens"] or max(s["max_length"] - 1, 1)
        else:
            ids, mask, left = _prompt(inputs, "token_ids", "padding_mask", config)
            self.left = left
            self.encoder = None
            # Rows already end at the last column when every prompt has the longest length.
            prompt, prompt_mask = (ids, mask) if mask[:, -1].all() else _aligned(model, "left", ids, mask)
            self.prompt = np.asarray(prompt, "int32")
            self.prompt_mask = np.asarray(prompt_mask, "int32")
            self.full = bool(self.prompt_mask[:, 0].all())  # no row padded: nothing to move back
            new = s["max_new_tokens"] or max(s["max_length"] - ids.shape[1], 1)
            total = ids.shape[1] + new
            if total > config.max_sequence_length:
                raise ValueError(
                    f"the longest prompt ({ids.shape[1]} positions) plus max_new_tokens={new} is "
                    f"{total} tokens, more than the model's context max_sequence_length={config.max_sequence_length}")
        self.max_new_tokens = int(new)
        self.processor = processor_for(s, config.vocabulary_size, self.stop_ids, self.seq2seq)
        if sampler is None:
            sampler = "greedy"
            if s["do_sample"]:
                sampler = "top_p" if s["top_p"] < 1.0 else ("top_k" if s["top_k"] else "random")
                sampler_names = {"temperature": s["temperature"], "top_p": s["top_p"],
                                 "top_k": s["top_k"] or None}
        if isinstance(sampler, str) and sampler != "greedy":
            sampler_names["seed"] = seed
        self.sampler = get_sampler(sampler, **sampler_names)
        self.chooser = SamplerChooser(self.sampler)
        self.use_cache, self.jit_compile, self.run_eagerly = use_cache, jit_compile, run_eagerly
        self.key = (json.dumps({k: v for k, v in s.items() if k != "stop_strings"}, sort_keys=True, default=str),
                    json.dumps(self.sampler.get_config(), sort_keys=True, default=str), self.stop_ids,
                    use_cache, jit_compile, run_eagerly, keras.config.dtype_policy().name)
        # A later call with equal settings reuses the compiled functions and their sampler.
        samplers = model.__dict__.setdefault("_keras_transformer_generate_samplers", {})
        self.sampler = samplers.setdefault(self.key, self.sampler)
        self.chooser = SamplerChooser(self.sampler)
        _reset_seed(self.sampler)

    def arrays(self):
        batch = self.prompt.shape[0]
        max_new = np.full((batch,), self.max_new_tokens, "int32")
        encoder = tuple(ops.convert_to_tensor(a) for a in self.encoder) if self.encoder else ()
        return (encoder, ops.convert_to_tensor(self.prompt), ops.convert_to_tensor(self.prompt_mask),
                ops.convert_to_tensor(max_new))

    def compiled(self, kind, steps=None):
        functions = self.model.__dict__.setdefault("_keras_transformer_generate_functions", {})
        key = (kind, steps, self.max_new_tokens) + self.key
        if key not in functions:
            adapter = self.model.generation_adapter(self.use_cache)
            processor, chooser, s = self.processor, self.chooser, self.settings
            new = self.max_new_tokens
            # JAX traces under `jit` with static shapes: size the buffer from the Python value.
            static_new = new if keras.backend.backend() == "jax" else None

            if kind == "decode":
                def function(encoder, prompt, mask, max_new):
                    state = decoding.start(adapter, encoder or None, prompt, mask, max_new, static_new)
                    return decoding.advance(adapter, processor, chooser, decoding.seeded(state, chooser))
            elif kind == "beam":
                def function(encoder, prompt, mask, max_new):
                    return decoding.beam_search(adapter, processor, encoder or None, prompt, mask, new, self.beams,
                                                s["length_penalty"], s["early_stopping"], s["num_return_sequences"])
            elif kind == "start":
                def function(encoder, prompt, mask, max_new):
                    state = decoding.start(adapter, encoder or None, prompt, mask, max_new, static_new)
                    return decoding.seeded(state, chooser)
            else:
                def function(state):
                    return decoding.advance(adapter, processor, chooser, state, steps)
            functions[key] = function if self.run_eagerly else _compile(function, self.model, chooser,
                                                                          self.jit_compile)
        return functions[key]

    def stream(self, tokenizer, chunk):
        if self.settings["stop_strings"] and tokenizer is None:
            raise ValueError("stop_strings needs a `tokenizer` (with `detokenize`) to read the text")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer; received chunk={chunk!r}")
        state = self.compiled("start")(*self.arrays())
        step = self.compiled("advance", chunk)
        prompt_length = self.prompt.shape[1]
        position = prompt_length
        total = prompt_length + self.max_new_tokens
        while position < total:
            state = step(state)
            if self.settings["stop_strings"]:
                state = self._apply_stop_strings(state, tokenizer, prompt_length)
            end = min(position + chunk, total)
            tokens = ops.convert_to_numpy(state["tokens"])[:, position:end]
            valid = ops.convert_to_numpy(state["valid"])[:, position:end]
            self.last_state = state
            yield {"token_ids": np.where(valid, tokens, 0).astype("int32"), "padding_mask": valid}
            position = end
            if bool(np.all(ops.convert_to_numpy(state["done"]))):
                break
        self.last_state = state

    def _apply_stop_strings(self, state, tokenizer, prompt_length):
        """Ends rows whose new text contains a stop string, after the token that completed it."""
        tokens = ops.convert_to_numpy(state["tokens"])
        valid = ops.convert_to_numpy(state["valid"]).copy()
        done = ops.convert_to_numpy(state["done"]).copy()
        changed = False
        for row in np.flatnonzero(~done):
            new = tokens[row, prompt_length:][valid[row, prompt_length:]]
            for count in range(1, len(new) + 1):
                text = _text(tokenizer, new[:count])
                if any(stop in text for stop in self.settings["stop_strings"]):
                    valid[row, prompt_length + count:] = False
                    done[row] = changed = True
                    break
        if changed:
            state = dict(state)
            state["valid"] = ops.convert_to_tensor(valid)
            state["done"] = ops.convert_to_tensor(done)
            state["tokens"] = ops.convert_to_tensor(np.where(valid, tokens, 0).astype("int32"))
        return state

    def outputs(self, state, return_log_probs):
        tokens, valid, log_probs = decoding.finish(state)
        outputs = self.assemble(tokens, valid)
        if return_log_probs:
            new_valid = ops.convert_to_numpy(valid)[:, self.prompt.shape[1]:]
            outputs["log_probs"] = np.where(new_valid, ops.convert_to_numpy(log_probs), 0.0).astype("float32")
        return outputs

    def assemble(self, tokens, valid):
        if not self.left and not self.full:  # back to the caller's right padding
            tokens, valid = _aligned(self.model, "right", tokens, valid)
        tokens, valid = ops.convert_to_numpy(tokens).astype("int32"), ops.convert_to_numpy(valid).astype(bool)
        return {"token_ids": np.where(valid, tokens, 0).astype("int32"), "padding_mask": valid}


def _text(tokenizer, ids):
    text = tokenizer.detokenize(np.asarray(ids, "int32"))
    text = ops.convert_to_numpy(text) if not isinstance(text, (str, bytes)) else text
    text = text.item() if hasattr(text, "item") else text
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _prompt(inputs, ids_key, mask_key, config):
    """Checks a prompt batch; returns (ids, mask, left_padded) as NumPy arrays."""
    if not isinstance(inputs, dict) or ids_key not in inputs:
        raise ValueError(f"generate() needs a dict with `{ids_key}`; received {type(inputs).__name__}"
                         + (f" with keys {sorted(inputs)}" if isinstance(inputs, dict) else ""))
    ids = np.asarray(ops.convert_to_numpy(inputs[ids_key]))
    if ids.ndim != 2 or ids.shape[1] == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`{ids_key}` must be a non-empty integer (batch, length) array; "
                         f"received dtype {ids.dtype}, shape {ids.shape}")
    mask = inputs.get(mask_key)
    mask = np.ones_like(ids, bool) if mask is None else np.asarray(ops.convert_to_numpy(mask)).astype(bool)
    if mask.shape != ids.shape:
        raise ValueError(f"`{mask_key}` shape {mask.shape} differs from `{ids_key}` shape {ids.shape}")
    lengths = mask.sum(axis=1)
    if np.any(lengths == 0):
        raise ValueError(f"empty prompt: row(s) {np.flatnonzero(lengths == 0).tolist()} have no real tokens")
    positions = np.arange(ids.shape[1])[None]
    right = np.all(mask == (positions < lengths[:, None]))
    left = np.all(mask == (positions >= ids.shape[1] - lengths[:, None]))
    if not (right or left):
        raise ValueError(f"prompts must be right-padded or left-padded: `{mask_key}` must be ones then zeros "
                         f"in every row, or zeros then ones")
    vocabulary = config.vocabulary_size
    bad = mask & ((ids < 0) | (ids >= vocabulary))
    if np.any(bad):
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"token id {ids[row, col]} at ({row}, {col}) is outside the vocabulary "
                         f"[0, {vocabulary})")
    return ids.astype("int32"), mask.astype("int32"), bool(left and not right)


# --------------------------------------------------------------- compiling


def _compile_pure(function, jit_compile=False, **tf_options):
    """`function` of arrays (no variables) compiled by the backend's own compiler; PyTorch runs it eagerly."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=jit_compile, autograph=False, **tf_options)
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function


def _compile(function, model, chooser, jit_compile):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if jit_compile == "auto":
            jit_compile = bool(tf.config.list_physical_devices("GPU"))
        return _compile_pure(function, jit_compile=bool(jit_compile))
    if backend == "jax":
        import jax

        sampler_variables = chooser.variables

        def stateless(state, *arrays):
            sampler_values, trainable, non_trainable = state
            mapping = itertools.chain(
                zip(sampler_variables, sampler_values),
                zip(model.trainable_variables, trainable),
                zip(model.non_trainable_variables, non_trainable),
            )
            with keras.StatelessScope(state_mapping=mapping) as scope:
                outputs = function(*arrays)
                updated = [scope.get_current_value(v) for v in sampler_variables]
            updated = [old if new is None else new for old, new in zip(sampler_values, updated)]
            return outputs, updated

        jitted = jax.jit(stateless)

        def call(*arrays):
            state = (
                [v.value for v in sampler_variables],
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
            )
            outputs, updated = jitted(state, *arrays)
            for variable, value in zip(sampler_variables, updated):
                variable.assign(value)
            return outputs

        return call
    return function


def _aligned(model, side, tokens, valid):
    """`decoding.left_align` / `right_align`, compiled once per model (eager ops cost more than decoding
    a few tokens); returns NumPy arrays."""
    functions = model.__dict__.setdefault("_keras_transformer_generate_functions", {})
    key = ("align", side)
    if key not in functions:
        function = decoding.left_align if side == "left" else decoding.right_align
        functions[key] = _compile_pure(function, reduce_retracing=True)
    tokens, valid = functions[key](ops.convert_to_tensor(tokens, "int32"), ops.convert_to_tensor(valid, "bool"))
    return ops.convert_to_numpy(tokens), ops.convert_to_numpy(valid)


def _reset_seed(sampler):
    """Seeded samplers restart from their seed, so equal calls give equal tokens."""
    generator = getattr(sampler, "seed_generator", None)
    if generator is not None and getattr(sampler, "seed", None) is not None:
        initial = sampler.__dict__.setdefault("_initial_seed_state", np.array(generator.state.numpy()))
        generator.state.assign(initial)
