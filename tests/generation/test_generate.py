"""Generation against Hugging Face greedy outputs, cached vs uncached, samplers, bad requests."""

import os

import numpy as np
import pytest

from keras_transformer.convert import from_huggingface
from keras_transformer.generation import generate

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface")
_MODELS = {}


def fixture(case):
    """(imported model, expected arrays), imported once per test session."""
    if case not in _MODELS:
        _MODELS[case] = (
            from_huggingface(os.path.join(FIXTURES, case)),
            dict(np.load(os.path.join(FIXTURES, case, "expected.npz"))),
        )
    return _MODELS[case]


def gpt_prompts(expected):
    prompts = expected["gen_prompts"]
    return {
        "token_ids": np.where(prompts < 0, 0, prompts).astype("int32"),
        "padding_mask": (prompts >= 0).astype("int32"),
    }


def continuations(output, lengths, count):
    return np.stack([output["token_ids"][r, n : n + count] for r, n in enumerate(lengths)])


# ------------------------------------------------------------ parity


@pytest.mark.parametrize(
    "options",
    [{}, {"jit_compile": True}, {"run_eagerly": True}, {"use_cache": False}],
    ids=["cached-graph", "cached-xla", "cached-eager", "uncached"],
)
def test_gpt2_greedy_equals_transformers(options):
    """Prompts of lengths 3, 5, 8 in one right-padded batch; HF ran each alone."""
    model, expected = fixture("gpt2")
    steps = int(expected["gen_max_new_tokens"])
    output = generate(model, gpt_prompts(expected), steps, **options)
    lengths = expected["gen_prompt_lengths"]
    np.testing.assert_array_equal(continuations(output, lengths, steps), expected["gen_tokens"])
    # The prompt is kept, and each row gets exactly `steps` new tokens.
    np.testing.assert_array_equal(output["padding_mask"].sum(axis=1), lengths + steps)


def test_gpt2_stop_token_ends_its_row_only():
    model, expected = fixture("gpt2")
    prompts = gpt_prompts(expected)
    eos, row = int(expected["eos_token_id"]), int(expected["eos_prompt_index"])
    steps = int(expected["gen_max_new_tokens"])
    output = generate(model, prompts, steps, stop_token_ids=[eos])
    lengths = expected["gen_prompt_lengths"]
    want = expected["eos_gen_tokens"]
    want = want[want >= 0]
    n = lengths[row]
    kept = output["token_ids"][row][output["padding_mask"][row]]
    np.testing.assert_array_equal(kept[n:], want)  # HF's tokens, ending with the stop token
    assert kept[-1] == eos
    for other in set(range(3)) - {row}:  # the others run on to their full length
        assert output["padding_mask"][other].sum() == lengths[other] + steps


@pytest.mark.parametrize("case", ["t5_v1_0", "t5_v1_1"])
@pytest.mark.parametrize(
    "options", [{}, {"jit_compile": True}, {"use_cache": False}], ids=["cached", "cached-xla", "uncached"]
)
def test_t5_greedy_equals_transformers(case, options):
    model, expected = fixture(case)
    steps = int(expected["gen_max_new_tokens"])
    inputs = {"encoder_token_ids": expected["input_ids"], "encoder_padding_mask": expected["attention_mask"]}
    output = generate(model, inputs, steps, **options)
    assert np.all(output["token_ids"][:, 0] == 0)  # the decoder start token
    np.testing.assert_array_equal(output["token_ids"][:, 1:], expected["gen_tokens"])


def test_t5_stop_token():
    model, expected = fixture("t5_v1_0")
    steps = int(expected["gen_max_new_tokens"])
    inputs = {"encoder_token_ids": expected["input_ids"], "encoder_padding_mask": expected["attention_mask"]}
    eos, row = int(expected["eos_token_id"]), int(expected["eos_prompt_index"])
    output = generate(model, inputs, steps, stop_token_ids=[eos])
    want = expected["eos_gen_tokens"]
    want = want[want >= 0]
    kept = output["token_ids"][row][output["padding_mask"][row]]
    np.testing.assert_array_equal(kept[1:], want)
    assert kept[-1] == eos


# ----------------------------------------------------------- samplers


@pytest.mark.parametrize(
    "sampler,kwargs",
    [("random", {"seed": 3}), ("top_k", {"top_k": 4, "seed": 5}), ("top_p", {"top_p": 0.8, "seed": 7, "temperature": 0.7})],
)
def test_seeded_sampling_is_reproducible_and_cache_independent(sampler, kwargs):
    model, expected = fixture("gpt2")
    prompts = gpt_prompts(expected)
    first = generate(model, prompts, 6, sampler=sampler, **kwargs)
    again = generate(model, prompts, 6, sampler=sampler, **kwargs)
    uncached = generate(model, prompts, 6, sampler=sampler, use_cache=False, **kwargs)
    np.testing.assert_array_equal(first["token_ids"], again["token_ids"])
    np.testing.assert_array_equal(first["token_ids"], uncached["token_ids"])
    vocabulary = model.backbone.model_config.vocabulary_size
    assert first["token_ids"].min() >= 0 and first["token_ids"].max() < vocabulary


def test_single_beam_equals_greedy_and_wider_beams_run():
    model, expected = fixture("gpt2")
    prompts = gpt_prompts(expected)
    greedy = generate(model, prompts, 5)
    one_beam = generate(model, prompts, 5, sampler="beam", num_beams=1)
    np.testing.assert_array_equal(greedy["token_ids"], one_beam["token_ids"])
    wide = generate(model, prompts, 5, sampler="beam", num_beams=3)
    assert wide["token_ids"].shape == greedy["token_ids"].shape
    t5, t5_expected = fixture("t5_v1_1")
    beams = generate(
        t5,
        {"encoder_token_ids": t5_expected["input_ids"], "encoder_padding_mask": t5_expected["attention_mask"]},
        4,
        sampler="beam",
        num_beams=2,
    )
    assert beams["token_ids"].shape == (3, 5)


# --------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda p: {**p, "padding_mask": np.zeros_like(p["padding_mask"])}, "empty prompt"),
        (lambda p: {**p, "token_ids": p["token_ids"][:, :0], "padding_mask": p["padding_mask"][:, :0]}, "non-empty"),
        (lambda p: {**p, "padding_mask": np.concatenate([p["padding_mask"], p["padding_mask"]], 1),
                    "token_ids": np.concatenate([p["token_ids"], p["token_ids"]], 1)}, "left-padded"),
        (lambda p: {**p, "token_ids": p["token_ids"] + 1000}, "outside the vocabulary"),
        (lambda p: {"ids": p["token_ids"]}, "token_ids"),
    ],
)
def test_bad_prompts(change, match):
    model, expected = fixture("gpt2")
    with pytest.raises(ValueError, match=match):
        generate(model, change(gpt_prompts(expected)), 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": -3}, "max_new_tokens"),
        ({"max_new_tokens": 1000}, "max_sequence_length"),
        ({"max_new_tokens": 4, "sampler": "top_p", "top_p": 0.0}, "top_p"),
        ({"max_new_tokens": 4, "sampler": "top_p", "top_p": 1.5}, "top_p"),
        ({"max_new_tokens": 4, "sampler": "top_k", "top_k": 0}, "top_k"),
        ({"max_new_tokens": 4, "temperature": 0.0}, "temperature"),
        ({"max_new_tokens": 4, "sampler": "nucleus"}, "unknown sampler"),
    ],
)
def test_bad_requests(kwargs, match):
    model, expected = fixture("gpt2")
    with pytest.raises(ValueError, match=match):
        generate(model, gpt_prompts(expected), **kwargs)
