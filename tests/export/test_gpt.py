"""GPT export: serving_default parity in a TensorFlow-only process, and the in-graph `generate`."""

import numpy as np
import pytest
import tensorflow as tf

from tests.export.helpers import max_abs_diff, run_in_serving_process, text_array


def _ids_batch(rng, batch, length, lengths, vocabulary):
    ids = rng.integers(1, vocabulary, (batch, length)).astype("int32")
    mask = (np.arange(length)[None] < np.asarray(lengths)[:, None]).astype("int32")
    return {"token_ids": ids * mask, "padding_mask": mask}


def test_serving_default_matches_keras_in_fresh_process(gpt_export, tmp_path):
    model, _, path = gpt_export
    rng = np.random.default_rng(0)
    first = _ids_batch(rng, 3, 7, [7, 4, 1], 259)
    second = _ids_batch(rng, 2, 12, [12, 9], 259)  # another batch size and length
    calls = [("serving_default", first), ("serving_default", second),
             ("serving_default_int64", {k: v.astype("int64") for k, v in second.items()})]
    outputs, modules = run_in_serving_process(path, calls, tmp_path)
    assert "keras_transformer" not in modules
    for (_, inputs), served in zip(calls, outputs):
        expected = model({k: v.astype("int32") for k, v in inputs.items()}, training=False)["logits"]
        assert served["logits"].shape == tuple(expected.shape)
        assert max_abs_diff(served["logits"], expected) < 1e-5


def _generate_inputs(prompts, max_new_tokens=5, temperature=0.0, top_k=0, top_p=1.0, seed=0):
    n = len(prompts)
    return {
        "prompt": text_array(prompts),
        "max_new_tokens": np.full([n], max_new_tokens, "int32"),
        "temperature": np.full([n], temperature, "float32"),
        "top_k": np.full([n], top_k, "int32"),
        "top_p": np.full([n], top_p, "float32"),
        "seed": np.full([n], seed, "int64") if np.ndim(seed) == 0 else np.asarray(seed, "int64"),
    }


@pytest.fixture(scope="module")
def loaded_gpt(gpt_export):
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(gpt_export[2]).signatures


def _call(signature, inputs):
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def test_greedy_generate_equals_model_generate(gpt_export, loaded_gpt):
    model, tokenizer, _ = gpt_export
    prompts = ["def main(", "x", "The standard library"]
    served = _call(loaded_gpt["generate"], _generate_inputs(prompts, max_new_tokens=6))
    ids = [list(p.encode("utf-8")) for p in prompts]  # byte tokenizer: ids are the bytes
    length = max(map(len, ids))
    token_ids = np.array([row + [0] * (length - len(row)) for row in ids], "int32")
    mask = (token_ids > 0).astype("int32")
    end_id = tokenizer.token_to_id("</s>")
    expected = model.generate({"token_ids": token_ids, "padding_mask": mask}, max_new_tokens=6,
                              stop_token_ids=[end_id])
    np.testing.assert_array_equal(served["padding_mask"], expected["padding_mask"].astype("int32"))
    np.testing.assert_array_equal(served["token_ids"], expected["token_ids"] * expected["padding_mask"])
    np.testing.assert_array_equal(served["prompt_length"], [len(r) for r in ids])
    for row, text in enumerate(served["generated_text"]):
        new = [i for i in expected["token_ids"][row][len(ids[row]):][expected["padding_mask"][row][len(ids[row]):]]
               if i != end_id]
        assert text == bytes(new).decode("utf-8", errors="replace").encode("utf-8")


def test_sampling_is_seeded_per_row(loaded_gpt):
    prompts = ["abc", "abc", "abc"]
    inputs = _generate_inputs(prompts, max_new_tokens=8, temperature=1.5, top_k=50, top_p=0.95, seed=[7, 7, 8])
    first = _call(loaded_gpt["generate"], inputs)
    again = _call(loaded_gpt["generate"], inputs)
    np.testing.assert_array_equal(first["token_ids"], again["token_ids"])
    np.testing.assert_array_equal(first["token_ids"][0], first["token_ids"][1])  # same seed, same row
    assert not np.array_equal(first["token_ids"][0], first["token_ids"][2])
    # A row's output does not depend on the rest of its batch.
    alone = _call(loaded_gpt["generate"], {k: v[2:] for k, v in inputs.items()})
    np.testing.assert_array_equal(alone["token_ids"][0], first["token_ids"][2][: alone["token_ids"].shape[1]])


def test_top_k_one_is_greedy_and_settings_broadcast(loaded_gpt):
    prompts = ["hello", "hi"]
    greedy = _call(loaded_gpt["generate"], _generate_inputs(prompts))
    inputs = _generate_inputs(prompts, temperature=2.0, top_k=1, seed=[1, 2])
    inputs.update({k: inputs[k][:1] for k in ("max_new_tokens", "temperature", "top_k", "top_p")})  # one value for all rows
    np.testing.assert_array_equal(_call(loaded_gpt["generate"], inputs)["token_ids"], greedy["token_ids"])


@pytest.mark.parametrize("name, value, message", [
    ("max_new_tokens", 0, "max_new_tokens must be in"),
    ("max_new_tokens", 500, "max_new_tokens must be in"),
    ("temperature", -1.0, "temperature must be >= 0"),
    ("top_p", 0.0, "top_p must be in"),
])
def test_bad_generate_settings_are_rejected(loaded_gpt, name, value, message):
    inputs = _generate_inputs(["hello"])
    inputs[name] = np.array([value], inputs[name].dtype)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _call(loaded_gpt["generate"], inputs)


def test_empty_prompt_and_bad_ids_are_rejected(loaded_gpt):
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one token"):
        _call(loaded_gpt["generate"], _generate_inputs(["ok", ""]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"token ids must be in \[0, 259\)"):
        _call(loaded_gpt["serving_default"], {"token_ids": np.array([[1, 300]], "int32"),
                                              "padding_mask": np.ones([1, 2], "int32")})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sequence length must be in \[1, max_sequence_length=128\]"):
        _call(loaded_gpt["serving_default"], {"token_ids": np.ones([1, 129], "int32"),
                                              "padding_mask": np.ones([1, 129], "int32")})


def test_long_prompts_keep_their_end(gpt_export, loaded_gpt):
    prompt = "".join(chr(ord("a") + i % 26) for i in range(200))
    served = _call(loaded_gpt["generate"], _generate_inputs([prompt], max_new_tokens=8))
    kept = 128 - 8
    assert served["prompt_length"][0] == kept
    np.testing.assert_array_equal(served["token_ids"][0, :kept], list(prompt[-kept:].encode()))


def test_no_side_channel_files_beside_the_graph(gpt_export):
    """Token-id ranges are checked by the graph itself, so no server needs a file of ours."""
    import os

    _, _, version_dir = gpt_export
    assert sorted(os.listdir(os.path.join(version_dir, "assets.extra"))) == [
        "README.md", "keras_transformer_export.json", "keras_transformer_reference.npz", "tf_serving_warmup_requests"]
