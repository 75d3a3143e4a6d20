import itertools

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.layers import MultiHeadAttention
from tests import reference
from tests.test_case import assert_allclose, run_layer_test

RNG = np.random.default_rng(0)
BATCH, QLEN, KLEN, DIM = 2, 5, 6, 8


def normal(*shape):
    return RNG.normal(size=shape).astype("float32")


def padding(batch, length, lengths):
    return (np.arange(length)[None, :] < np.asarray(lengths)[:, None]).astype("int32")


def weights_of(layer):
    """The layer's weights by role, for the NumPy reference."""
    w = {
        "q_kernel": layer.query_dense.kernel,
        "k_kernel": layer.key_dense.kernel,
        "v_kernel": layer.value_dense.kernel,
        "o_kernel": layer.output_dense.kernel,
    }
    if layer.use_bias:
        w.update(
            q_bias=layer.query_dense.bias,
            k_bias=layer.key_dense.bias,
            v_bias=layer.value_dense.bias,
            o_bias=layer.output_dense.bias,
        )
    return {k: ops.convert_to_numpy(v) for k, v in w.items()}


def randomize(layer):
    """Non-trivial biases too (initialised to zero), so a bias bug shows."""
    layer.set_weights([normal(*w.shape) * 0.5 for w in layer.get_weights()])


# ------------------------------------------------------------------ harness


@pytest.mark.parametrize(
    "init_kwargs,input_data,call_kwargs,expected_shape",
    [
        ({"num_heads": 2, "key_dim": 4}, {"query": normal(BATCH, QLEN, DIM)}, {}, (BATCH, QLEN, DIM)),
        (
            {"num_heads": 4, "key_dim": 3, "num_key_value_heads": 2, "output_shape": 7},
            {"query": normal(BATCH, QLEN, DIM), "value": normal(BATCH, KLEN, 6)},
            {},
            (BATCH, QLEN, 7),
        ),
        (
            {"num_heads": 2, "key_dim": 4, "use_bias": False, "use_scale": False},
            {"query": normal(BATCH, QLEN, DIM), "padding_mask": padding(BATCH, QLEN, [5, 3])},
            {"use_causal_mask": True},
            (BATCH, QLEN, DIM),
        ),
        (
            {"num_heads": 2, "key_dim": 4},
            {"query": normal(BATCH, QLEN, DIM), "value": normal(BATCH, KLEN, DIM)},
            {"return_attention_scores": True},
            ((BATCH, QLEN, DIM), (BATCH, 2, QLEN, KLEN)),
        ),
    ],
    ids=["self", "cross-gqa", "causal-padded-noscale", "scores"],
)
def test_layer_harness(init_kwargs, input_data, call_kwargs, expected_shape):
    run_layer_test(MultiHeadAttention, init_kwargs, input_data, expected_shape, call_kwargs)


def test_layer_harness_rotary():
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": 2, "key_dim": 4, "use_rotary_embedding": True},
        {"query": normal(BATCH, QLEN, DIM)},
        (BATCH, QLEN, DIM),
        {"use_causal_mask": True},
        expected_num_trainable_weights=8,
    )


# -------------------------------------------------------------- numerics

MASK_SOURCES = ["padding", "causal", "attention_mask", "bias"]


@pytest.mark.parametrize(
    "sources",
    [c for r in range(len(MASK_SOURCES) + 1) for c in itertools.combinations(MASK_SOURCES, r)],
    ids=lambda c: "+".join(c) or "none",
)
@pytest.mark.parametrize("scores", [False, True], ids=["fused", "with-scores"])
def test_matches_reference_for_every_mask_combination(sources, scores):
    layer = MultiHeadAttention(num_heads=4, key_dim=3, num_key_value_heads=2)
    x = normal(BATCH, QLEN, DIM)
    layer(x)
    randomize(layer)
    kwargs, mask = {}, np.ones((BATCH, QLEN, QLEN), dtype=bool)
    bias = None
    if "padding" in sources:
        pad = padding(BATCH, QLEN, [5, 2])
        kwargs["padding_mask"] = pad
        mask &= pad[:, None, :].astype(bool)
    if "causal" in sources:
        kwargs["use_causal_mask"] = True
        mask &= reference.causal(QLEN, QLEN)[None]
    if "attention_mask" in sources:
        explicit = RNG.random((BATCH, QLEN, QLEN)) > 0.3
        explicit[:, :, 0] = True  # every query keeps at least one key
        kwargs["attention_mask"] = explicit.astype("int32")
        mask &= explicit
    if "bias" in sources:
        bias = normal(1, 4, QLEN, QLEN)
        kwargs["attention_bias"] = bias
    got = layer(x, return_attention_scores=scores, **kwargs)
    want, probs = reference.attention(
        x, x, weights_of(layer), 4, 2, mask=mask if sources else None, bias=bias
    )
    if scores:
        got, got_probs = got
        assert_allclose(got_probs, probs, atol=1e-5)
    assert_allclose(got, want, atol=1e-5)


def test_unscaled_and_unbiased_match_reference():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, use_bias=False, use_scale=False)
    q, v = normal(BATCH, QLEN, DIM), normal(BATCH, KLEN, DIM)
    layer(q, v)
    randomize(layer)
    want, _ = reference.attention(q, v, weights_of(layer), 2, use_scale=False)
    assert_allclose(layer(q, v), want, atol=1e-5)


def test_separate_key_tensor_matches_reference():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)
    q, v, k = normal(BATCH, QLEN, DIM), normal(BATCH, KLEN, 5), normal(BATCH, KLEN, 7)
    layer(q, v, k)
    randomize(layer)
    want, _ = reference.attention(q, v, weights_of(layer), 2, key=k)
    assert_allclose(layer(q, v, k), want, atol=1e-5)


def test_fully_masked_rows_stay_finite():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = normal(BATCH, QLEN, DIM)
    out = layer(x, padding_mask=np.zeros((BATCH, QLEN), "int32"))
    assert np.all(np.isfinite(ops.convert_to_numpy(out)))


def test_dropout_only_when_training():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5, seed=3)
    x = normal(BATCH, QLEN, DIM)
    inference = layer(x, training=False)
    assert_allclose(layer(x, training=False), inference)
    assert not np.allclose(ops.convert_to_numpy(layer(x, training=True)), ops.convert_to_numpy(inference))


# ---------------------------------------------------- drop-in for Keras


@pytest.mark.parametrize("case", ["causal", "implicit-masks", "attention-mask", "scores"])
def test_drop_in_for_keras_multi_head_attention(case):
    """Same weights, same call -> same outputs as keras.layers.MultiHeadAttention."""
    ids = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]], "int32")
    embed = keras.layers.Embedding(10, DIM, mask_zero=True)
    # (Keras' own layer fails on JAX when value_dim != key_dim, so they are equal here.)
    ours = MultiHeadAttention(num_heads=2, key_dim=4, output_shape=6)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, output_shape=6)
    q, v = normal(2, 6, DIM), normal(2, 6, DIM)
    theirs(q, v)
    ours(q, v)
    ours.set_weights(theirs.get_weights())
    kwargs = {}
    if case == "causal":
        kwargs["use_causal_mask"] = True
    if case == "implicit-masks":
        q = v = embed(ids)  # Keras mask from mask_zero
        kwargs["use_causal_mask"] = True
    if case == "attention-mask":
        m = RNG.random((2, 6, 6)) > 0.4
        m[:, :, 0] = True
        kwargs["attention_mask"] = m
    if case == "scores":
        kwargs["return_attention_scores"] = True
    assert_allclose(ours(q, v, **kwargs), theirs(q, v, **kwargs), atol=1e-5)


# ------------------------------------------------------------------ cache


@pytest.mark.parametrize(
    "init_kwargs",
    [
        {"num_heads": 2, "key_dim": 4},
        {"num_heads": 4, "key_dim": 2, "num_key_value_heads": 1},
        {"num_heads": 2, "key_dim": 4, "use_rotary_embedding": True},
    ],
    ids=["mha", "mqa", "rotary"],
)
def test_cached_decoding_equals_full_sequence(init_kwargs):
    """Prefill 3 tokens, then one at a time: equals one causal pass."""
    layer = MultiHeadAttention(**init_kwargs)
    x = normal(BATCH, QLEN, DIM)
    pad = padding(BATCH, QLEN, [5, 4])
    full = layer(x, padding_mask=pad, use_causal_mask=True)
    cache = layer.initial_cache(BATCH, QLEN)
    out, cache = layer.call_with_cache(x[:, :3], cache, 0, padding_mask=pad)
    steps = [out]
    for i in range(3, QLEN):
        out, cache = layer.call_with_cache(x[:, i : i + 1], cache, i, padding_mask=pad)
        steps.append(out)
    assert_allclose(ops.concatenate(steps, axis=1), full, atol=1e-5)


def test_cached_decoding_in_compiled_loop():
    """The cache index may be traced (a while-loop counter under jit)."""
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = normal(BATCH, QLEN, DIM)
    full = layer(x, use_causal_mask=True)
    outputs = ops.zeros((BATCH, QLEN, DIM))

    def body(i, cache, outputs):
        token = ops.slice(x, [0, i, 0], [BATCH, 1, DIM])
        out, cache = layer.call_with_cache(token, cache, i)
        return i + 1, cache, ops.slice_update(outputs, [0, i, 0], out)

    _, _, outputs = ops.while_loop(
        lambda i, c, o: i < QLEN, body, (0, layer.initial_cache(BATCH, QLEN), outputs)
    )
    assert_allclose(outputs, full, atol=1e-5)


def test_cross_attention_cache_equals_call():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    q, enc = normal(BATCH, QLEN, DIM), normal(BATCH, KLEN, DIM)
    pad = padding(BATCH, KLEN, [6, 3])
    full = layer(q, enc, padding_mask=pad)
    cache = layer.compute_cross_attention_cache(enc)
    out, same = layer.call_with_cache(q, cache, padding_mask=pad)
    assert_allclose(out, full, atol=1e-5)
    assert_allclose(same, cache)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_heads": 4, "key_dim": 4, "num_key_value_heads": 3}, "num_key_value_heads"),
        ({"num_heads": 0, "key_dim": 4}, "num_heads"),
        ({"num_heads": 2, "key_dim": -1}, "key_dim"),
        ({"num_heads": 2, "key_dim": 4, "dropout": 1.5}, "dropout"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"padding_mask": np.ones((BATCH, 1, QLEN))}, "padding_mask"),
        ({"attention_mask": np.ones((BATCH, QLEN))}, "attention_mask"),
        ({"attention_bias": np.ones((QLEN, QLEN), "float32")}, "attention_bias"),
    ],
)
def test_masks_of_wrong_rank(kwargs, match):
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    with pytest.raises(ValueError, match=match):
        layer(normal(BATCH, QLEN, DIM), **kwargs)


def test_bad_cache():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = normal(BATCH, 1, DIM)
    layer(x)
    with pytest.raises(ValueError, match="cache"):
        layer.call_with_cache(x, ops.zeros((BATCH, 2, QLEN, 3, 4)), 0)
    with pytest.raises(ValueError, match="value_dim"):
        MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3).initial_cache(1, 4)
