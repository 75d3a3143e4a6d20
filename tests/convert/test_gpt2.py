"""GPT-2 import: parity with Hugging Face outputs, layouts, and loud failures."""

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.convert import from_huggingface
from keras_transformer.convert import gpt2
from keras_transformer.convert.huggingface import WeightReader, read_checkpoint
from keras_transformer.models.gpt import GPTCausalLM
from tests.test_case import compiled, to_numpy

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface", "gpt2")
RELATIVE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def expected():
    with np.load(os.path.join(FIXTURE, "expected.npz")) as data:
        return dict(data)


@pytest.fixture(scope="module")
def model():
    return from_huggingface(FIXTURE)


def checkpoint():
    config, tensors = read_checkpoint(FIXTURE)
    return config, dict(tensors)


def convert(config, tensors):
    return gpt2.convert(config, WeightReader(tensors, source="test checkpoint"))


def assert_close(actual, wanted, where=None):
    """Within RELATIVE_TOLERANCE of the largest reference value; returns (max abs, max rel)."""
    actual, wanted = np.asarray(actual, "float64"), np.asarray(wanted, "float64")
    if where is not None:
        actual, wanted = actual[where], wanted[where]
    difference = np.abs(actual - wanted)
    relative = difference.max() / np.abs(wanted).max()
    assert relative < RELATIVE_TOLERANCE, f"max abs {difference.max():.3g}, relative {relative:.3g}"
    return float(difference.max()), float(relative)


def hidden_states(backbone, inputs):
    """[embeddings, block 0 .. block n-2 outputs, final norm], the Hugging Face layout
    (its last entry is ln_f of the last block, not the raw block output)."""
    taps = [backbone.embeddings_dropout.output]
    taps += [block.output for block in backbone.decoder_blocks[:-1]]
    taps.append(backbone.decoder_norm.output)
    return to_numpy(keras.Model(backbone.input, taps)(inputs))


def test_logits_and_hidden_states_match_hugging_face(model, expected):
    assert isinstance(model, GPTCausalLM)
    inputs = {"token_ids": expected["input_ids"], "padding_mask": expected["attention_mask"]}
    # Every position, padding included: with right padding GPT-2 and this model mask alike.
    logits = to_numpy(model(inputs)["logits"])
    report = {"logits": assert_close(logits, expected["logits"])}
    states = hidden_states(model.backbone, inputs)
    assert len(states) == len(expected["hidden_states"]) == 3
    for i, (state, wanted) in enumerate(zip(states, expected["hidden_states"])):
        report[f"hidden_states[{i}]"] = assert_close(state, wanted)
    print("GPT-2 parity (max abs, max abs / max |expected|):", report)


def test_tolerance_catches_the_exact_gelu_mistake(expected):
    """The manifest's sensitivity case: exact erf GELU for gelu_new moves the logits
    by ~6e-4; the parity tolerance must notice."""
    config, tensors = checkpoint()
    wrong = convert(dict(config, activation_function="gelu"), tensors)
    inputs = {"token_ids": expected["input_ids"], "padding_mask": expected["attention_mask"]}
    with pytest.raises(AssertionError, match="relative"):
        assert_close(to_numpy(wrong(inputs)["logits"]), expected["logits"])


def test_left_padded_batch_with_default_positions(model, expected):
    """forward() with positions 0..L-1 on a left-padded batch; real positions only."""
    inputs = {"token_ids": expected["left_input_ids"], "padding_mask": expected["left_attention_mask"]}
    logits = to_numpy(model(inputs)["logits"])
    real = expected["left_attention_mask"].astype(bool)
    assert np.all(np.isfinite(logits))
    print("left-padded:", assert_close(logits, expected["left_logits_default_positions"], where=real))
    # Sanity: positions matter, so the generate()-style positions give other logits here.
    other = expected["left_logits_generate_positions"][real]
    assert np.abs(logits[real] - other).max() > 0.1


def greedy_decode(model, tokens, prompt_length):
    """Greedy decoding in one compiled `keras.ops.while_loop` of single-token
    `call_with_cache` steps (the prompt is fed token by token too).

    tokens: (1, max_length) with the prompt first; prompt_length: scalar.
    Returns (tokens with the continuation written in, (1, max_length, vocab)
    logits of every step).
    """
    max_length = tokens.shape[1]
    vocabulary = model.backbone.model_config.vocabulary_size

    def step(index, tokens, logits, cache):
        token = ops.slice(tokens, [0, index], [1, 1])
        step_logits, cache = model.call_with_cache(token, cache, index)
        logits = ops.slice_update(logits, [0, index, 0], step_logits)
        chosen = ops.cast(ops.argmax(step_logits[:, -1], axis=-1), "int32")[:, None]  # (1, 1)
        following = ops.slice(tokens, [0, index + 1], [1, 1])
        written = ops.where(index + 1 >= prompt_length, chosen, following)  # keep the prompt
        tokens = ops.slice_update(tokens, [0, index + 1], written)
        return index + 1, tokens, logits, cache

    initial = (
        ops.convert_to_tensor(0, "int32"),
        tokens,
        ops.zeros((1, max_length, vocabulary), "float32"),
        model.initial_cache(1, max_length),
    )
    _, tokens, logits, _ = ops.while_loop(lambda i, *_: i < max_length - 1, step, initial)
    return tokens, logits


def test_cached_greedy_decoding_reproduces_hugging_face_generate(model, expected):
    """Same tokens and step logits as generate(), with one compiled loop for all prompts."""
    new_tokens = int(expected["gen_max_new_tokens"])
    prompts = expected["gen_prompts"]
    max_length = prompts.shape[1] + new_tokens
    decode = compiled(lambda tokens, length: greedy_decode(model, tokens, length))
    for row, length in enumerate(expected["gen_prompt_lengths"]):
        tokens = np.zeros((1, max_length), "int32")
        tokens[0, :length] = prompts[row, :length]
        tokens, logits = to_numpy(decode(tokens, np.array(length, "int32")))
        assert list(tokens[0, length : length + new_tokens]) == list(expected["gen_tokens"][row]), row
        steps = logits[0, length - 1 : length - 1 + new_tokens]
        assert_close(steps, expected["gen_step_logits"][row])


def test_gpt2_model_layout_and_lm_head_variants(model, expected):
    config, tensors = checkpoint()
    inputs = {"token_ids": expected["input_ids"], "padding_mask": expected["attention_mask"]}
    wanted = expected["logits"]

    # GPT2Model.save_pretrained: no "transformer." prefix, no head (tied projection used).
    bare = {name.removeprefix("transformer."): value for name, value in tensors.items()}
    assert_close(to_numpy(convert(config, bare)(inputs)["logits"]), wanted)

    # A head saved alongside the tied table, plus the causal-mask buffers: accepted.
    extra = dict(tensors, **{"lm_head.weight": tensors["transformer.wte.weight"]})
    extra["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 40, 40), "float32"))
    extra["transformer.h.0.attn.masked_bias"] = np.array(-1e4, "float32")
    assert_close(to_numpy(convert(config, extra)(inputs)["logits"]), wanted)

    # An untied head is loaded into the separate projection (transposed to (hidden, vocab)).
    untied = convert(dict(config, tie_word_embeddings=False), extra)
    assert not untied.backbone.model_config.tie_word_embeddings
    assert_close(to_numpy(untied(inputs)["logits"]), wanted)
    assert untied.count_params() == model.count_params() + 113 * 32

    mapped = gpt2.backbone_config(dict(config, n_inner=None, activation_function="gelu"))
    assert (mapped["intermediate_dim"], mapped["activation"]) == (128, "gelu")


def corrupted(change):
    config, tensors = checkpoint()
    change(config, tensors)
    return config, tensors


CORRUPTIONS = {
    "missing tensor": (
        lambda c, t: t.pop("transformer.h.1.mlp.c_fc.bias"),
        r"missing weight 'transformer\.h\.1\.mlp\.c_fc\.bias'",
    ),
    "extra tensor": (
        lambda c, t: t.update({"transformer.h.0.mlp.c_gate.weight": np.zeros((32, 37), "float32")}),
        r"unexpected weight\(s\).*transformer\.h\.0\.mlp\.c_gate\.weight",
    ),
    "wrong shape": (
        lambda c, t: t.update({"transformer.wpe.weight": np.zeros((39, 32), "float32")}),
        r"'transformer\.wpe\.weight' has shape \(39, 32\).*expects \(40, 32\)",
    ),
    "wrong attention shape": (
        lambda c, t: t.update({"transformer.h.1.attn.c_attn.weight": np.zeros((32, 64), "float32")}),
        r"'transformer\.h\.1\.attn\.c_attn\.weight' has shape \(32, 64\), expected \(32, 96\)",
    ),
    "wrong projection shape": (
        lambda c, t: t.update({"transformer.h.0.attn.c_proj.weight": np.zeros((32,), "float32")}),
        r"'transformer\.h\.0\.attn\.c_proj\.weight' has shape \(32,\)",
    ),
    "unsupported activation": (
        lambda c, t: c.update(activation_function="quick_gelu"),
        r"unsupported GPT-2 activation_function 'quick_gelu'",
    ),
    "unsupported attention scaling": (
        lambda c, t: c.update(scale_attn_by_inverse_layer_idx=True),
        r"scale_attn_by_inverse_layer_idx=True",
    ),
    "tied config, different head": (
        lambda c, t: t.update({"lm_head.weight": t["transformer.wte.weight"] + 1.0}),
        r"tie_word_embeddings=true but 'lm_head\.weight' differs",
    ),
    "untied config, no head": (
        lambda c, t: c.update(tie_word_embeddings=False),
        r"missing weight 'lm_head\.weight'",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_checkpoints_fail_loudly(case):
    change, message = CORRUPTIONS[case]
    config, tensors = corrupted(change)
    with pytest.raises(ValueError, match=message):
        convert(config, tensors)


def test_corrupted_folder_fails_through_from_huggingface(tmp_path):
    from safetensors.numpy import save_file

    config, tensors = checkpoint()
    tensors.pop("transformer.ln_f.bias")
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"missing weight 'transformer\.ln_f\.bias'"):
        from_huggingface(str(tmp_path))
