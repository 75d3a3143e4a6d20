"""Every generation control against transformers' generate (tests/fixtures/huggingface/*/controls.json).

transformers ran each prompt alone; here the prompts run as one padded batch
(right- and left-padded), so these also check that padding changes nothing,
beam search included.
"""

import json
import os

import numpy as np
import pytest

from tests.generation.test_generate import FIXTURES, fixture

CONTROLS = {case: json.load(open(os.path.join(FIXTURES, case, "controls.json"))) for case in ("gpt2", "t5_v1_0")}
GPT_LEFT = {"greedy", "repetition_penalty", "no_repeat_ngram_size", "beam", "beam_controls"}


def _batch(prompts, left):
    width = max(len(p) for p in prompts)
    ids = np.zeros((len(prompts), width), "int32")
    mask = np.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        span = slice(width - len(prompt), width) if left else slice(0, len(prompt))
        ids[row, span], mask[row, span] = prompt, 1
    return ids, mask


def _expected(row, stop_ids):
    """transformers' row up to its first stop id (kept); later positions are its padding."""
    row = list(row)
    for position, token in enumerate(row):
        if token in stop_ids:
            return row[: position + 1]
    return row


def _run(case, name, left=False):
    model, _ = fixture(case)
    data = CONTROLS[case]
    kwargs = dict(data["cases"][name]["kwargs"])
    if case == "gpt2":
        ids, mask = _batch(data["prompts"], left)
        inputs = {"token_ids": ids, "padding_mask": mask}
        starts = np.full(len(ids), ids.shape[1]) if left else mask.sum(1)
    else:
        ids, mask = _batch(data["prompts"], False)
        inputs = {"encoder_token_ids": ids, "encoder_padding_mask": mask}
        starts = np.ones(len(ids), int)
    output = model.generate(inputs, return_log_probs=True, **kwargs)
    n = kwargs.get("num_return_sequences", 1)
    starts = np.repeat(starts, n)
    stop_ids = kwargs.get("eos_token_id", model.generation_config.get("eos_token_id"))
    stop_ids = [stop_ids] if isinstance(stop_ids, int) else list(stop_ids)
    return output, starts, stop_ids, data["cases"][name]


@pytest.mark.parametrize("case,name", [(c, n) for c in CONTROLS for n in CONTROLS[c]["cases"]])
def test_control_equals_transformers(case, name):
    output, starts, stop_ids, want = _run(case, name)
    for row, start in enumerate(starts):
        got = output["token_ids"][row][output["padding_mask"][row]][start:]
        np.testing.assert_array_equal(got, _expected(want["tokens"][row], stop_ids), err_msg=f"row {row}")
    if "sequence_scores" in want:
        np.testing.assert_allclose(output["sequence_scores"], want["sequence_scores"], rtol=1e-4, atol=1e-4)
    else:
        for row, log_probs in enumerate(want["log_probs"]):
            np.testing.assert_allclose(output["log_probs"][row][: len(log_probs)], log_probs, atol=1e-4)


@pytest.mark.parametrize("name", sorted(GPT_LEFT))
def test_left_padded_prompts_give_the_same_tokens(name):
    right, starts, _, _ = _run("gpt2", name)
    left, left_starts, _, _ = _run("gpt2", name, left=True)
    for row in range(len(starts)):
        new_right = right["token_ids"][row][right["padding_mask"][row]][starts[row]:]
        new_left = left["token_ids"][row][left["padding_mask"][row]]
        np.testing.assert_array_equal(new_left[len(new_left) - len(new_right):], new_right)
    # Left-padded in, left-padded out: the prompts keep their columns.
    ids, mask = _batch(CONTROLS["gpt2"]["prompts"], True)
    np.testing.assert_array_equal(left["token_ids"][: len(ids), : ids.shape[1]], ids)
