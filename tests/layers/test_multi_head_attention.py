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
    if layer.get_config()["use_gate"]:
        w["g_kernel"] = layer._gate_dense.kernel
        if layer.use_bias:
            w["g_bias"] = layer._gate_dense.bias
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
        (
            {"num_heads": 2, "key_dim": 4, "use_gate": True, "sliding_window": 2, "output_shape": (2, 3)},
            {"query": normal(BATCH, QLEN, DIM)},
            {"use_causal_mask": True},
            (BATCH, QLEN, 2, 3),
        ),
        (
            {"num_heads": 2, "key_dim": 2, "attention_axes": (1, 2)},
            {"query": normal(BATCH, 2, 3, DIM), "value": normal(BATCH, 2, 3, DIM)},
            {},
            (BATCH, 2, 3, DIM),
        ),
    ],
    ids=["self", "cross-gqa", "causal-padded-noscale", "scores", "gate-window-tuple", "axes"],
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
        {"num_heads": 4, "key_dim": 2, "num_key_value_heads": 2, "use_gate": True, "sliding_window": 2},
    ],
    ids=["mha", "mqa", "rotary", "gqa-gate-window"],
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
        ({"attention_mask": np.ones((BATCH, QLEN))}, "attention_mask"),  # (2, 5) is no (query, key)
        ({"attention_mask": np.ones((1, BATCH, 1, QLEN, QLEN))}, "attention_mask"),
        ({"attention_bias": np.ones((QLEN,), "float32")}, "attention_bias"),
        ({"attention_bias": np.ones((BATCH, 3, QLEN, QLEN), "float32")}, "attention_bias"),
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


# ------------------------------------------- Keras' arguments, ours too


def reference_over_axes(q, v, weights, num_heads, attention_axes):
    """NumPy float64 attention for (batch, X, T, dim) inputs over axis 2 or axes (1, 2).

    Axis 2: X is one more batch axis. Axes (1, 2): X*T positions form one sequence.
    Returns (output, scores) in Keras' layout: scores (batch, X, heads, T, T) or
    (batch, heads, X, T, X, T).
    """
    b, x, t, d = q.shape
    if attention_axes == 2:
        out, probs = reference.attention(q.reshape(b * x, t, d), v.reshape(b * x, t, d), weights, num_heads)
        return out.reshape(b, x, t, -1), probs.reshape(b, x, num_heads, t, t)
    out, probs = reference.attention(q.reshape(b, x * t, d), v.reshape(b, x * t, d), weights, num_heads)
    return out.reshape(b, x, t, -1), probs.reshape(b, num_heads, x, t, x, t)


@pytest.mark.parametrize("attention_axes", [2, (1, 2)], ids=["one-axis", "two-axes"])
def test_attention_axes_on_rank4_inputs_match_reference(attention_axes):
    layer = MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=attention_axes)
    q, v = normal(BATCH, 3, 4, DIM), normal(BATCH, 3, 4, DIM)
    layer(q, v)
    randomize(layer)
    out, scores = layer(q, v, return_attention_scores=True)
    want, want_scores = reference_over_axes(q, v, weights_of(layer), 2, attention_axes)
    assert_allclose(out, want, atol=1e-5)
    assert_allclose(scores, want_scores, atol=1e-5)
    assert_allclose(layer(q, v), want, atol=1e-5)  # the fused path too


@pytest.mark.parametrize("scores", [False, True], ids=["fused", "with-scores"])
def test_gate_and_sliding_window_match_reference(scores):
    layer = MultiHeadAttention(num_heads=4, key_dim=3, num_key_value_heads=2, use_gate=True, sliding_window=2)
    x = normal(BATCH, QLEN, DIM)
    layer(x)
    randomize(layer)
    pad = padding(BATCH, QLEN, [5, 4])  # every query keeps a key in its window
    got = layer(x, padding_mask=pad, use_causal_mask=True, return_attention_scores=scores)
    i, j = np.arange(QLEN)[:, None], np.arange(QLEN)[None, :]
    band = (np.abs(i - j) < 2) & reference.causal(QLEN, QLEN)
    mask = band[None] & pad[:, None, :].astype(bool)
    want, probs = reference.attention(x, x, weights_of(layer), 4, 2, mask=mask)
    if scores:
        got, got_probs = got
        assert_allclose(got_probs, probs, atol=1e-5)
    assert_allclose(got, want, atol=1e-5)


def test_masks_of_every_broadcastable_rank_agree():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = normal(BATCH, QLEN, DIM)
    layer(x)
    randomize(layer)
    tril = reference.causal(QLEN, QLEN)
    want, _ = reference.attention(x, x, weights_of(layer), 2, mask=np.broadcast_to(tril, (BATCH, QLEN, QLEN)))
    for mask in (tril, tril[None], np.tile(tril, (BATCH, 1, 1)), np.tile(tril, (BATCH, 2, 1, 1)).astype("int32")):
        assert_allclose(layer(x, attention_mask=mask), want, atol=1e-5)
    # A per-head (batch, heads, query, key) mask: head 0 causal, head 1 sees everything.
    per_head = np.stack([np.tile(tril, (BATCH, 1, 1)), np.ones((BATCH, QLEN, QLEN), bool)], axis=1)
    _, scores = layer(x, attention_mask=per_head, return_attention_scores=True)
    scores = ops.convert_to_numpy(scores)
    assert np.all(scores[:, 0][:, ~tril] == 0) and np.all(scores[:, 1] > 0)


def test_query_value_and_key_masks_are_all_honoured():
    """As in Keras, value and key masks both mask keys; an explicit query_mask masks rows.

    (Keras' own layer reads the query mask only off the query tensor.)
    """
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    q, v, k = normal(BATCH, QLEN, DIM), normal(BATCH, KLEN, DIM), normal(BATCH, KLEN, DIM)
    layer(q, v, k)
    theirs(q, v, k)
    randomize(layer)
    theirs.set_weights(layer.get_weights())
    qm, vm, km = padding(BATCH, QLEN, [5, 4]), padding(BATCH, KLEN, [6, 4]), padding(BATCH, KLEN, [3, 6])
    key_masks = dict(value_mask=vm, key_mask=km)
    assert_allclose(layer(q, v, k, **key_masks), theirs(q, v, k, **key_masks), atol=1e-5)
    got = layer(q, v, k, query_mask=qm, **key_masks)
    explicit = (qm[:, :, None] & vm[:, None, :] & km[:, None, :]).astype(bool)
    assert_allclose(got, layer(q, v, k, attention_mask=explicit), atol=1e-5)
    assert_allclose(layer(q, v, k, padding_mask=vm & km), layer(q, v, k, value_mask=vm, key_mask=km), atol=1e-6)


@pytest.mark.parametrize(
    "init_kwargs,shapes",
    [
        ({"num_heads": 2, "key_dim": 4}, ((BATCH, QLEN, DIM), (BATCH, KLEN, DIM))),
        ({"num_heads": 2, "key_dim": 4, "use_gate": True, "output_shape": (2, 3)},
         ((BATCH, QLEN, DIM), (BATCH, KLEN, DIM))),
        ({"num_heads": 2, "key_dim": 2, "value_dim": 3, "attention_axes": 2, "use_bias": False},
         ((BATCH, 2, QLEN, DIM), (BATCH, 2, KLEN, DIM))),
    ],
    ids=["plain", "gate-tuple-output", "axes-no-bias"],
)
def test_weights_copy_both_ways_with_keras(init_kwargs, shapes):
    q, v = normal(*shapes[0]), normal(*shapes[1])
    ours, theirs = MultiHeadAttention(**init_kwargs), keras.layers.MultiHeadAttention(**init_kwargs)
    ours(q, v)
    theirs(q, v)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    theirs.set_weights([normal(*w.shape) * 0.5 for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())  # Keras -> ours
    assert_allclose(ours(q, v), theirs(q, v), atol=1e-5)
    fresh = keras.layers.MultiHeadAttention(**init_kwargs)
    fresh(q, v)
    fresh.set_weights(ours.get_weights())  # ours -> Keras
    assert_allclose(fresh(q, v), ours(q, v), atol=1e-5)


def test_regularizers_and_constraints_reach_every_projection():
    layer = MultiHeadAttention(
        num_heads=2, key_dim=4, use_gate=True, kernel_regularizer="l2", bias_regularizer="l1",
        kernel_constraint="non_neg",
    )
    layer(normal(BATCH, QLEN, DIM))
    assert len(layer.losses) == 10  # 5 kernels, 5 biases: query, key, value, gate, output
    for dense in (layer.query_dense, layer.key_dense, layer.value_dense, layer._gate_dense, layer.output_dense):
        assert isinstance(dense.kernel.constraint, keras.constraints.NonNeg)
    config = MultiHeadAttention.from_config(layer.get_config()).get_config()
    assert config["kernel_regularizer"]["class_name"] == "L2"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_heads": 1.5, "key_dim": 4}, "argument `num_heads`"),
        ({"num_heads": 2, "key_dim": 4, "value_dim": 0}, "argument `value_dim`"),
        ({"num_heads": 2, "key_dim": 4, "output_shape": 8.0}, "Invalid `output_shape`"),
        ({"num_heads": 2, "key_dim": 4, "sliding_window": 0}, "sliding_window"),
        ({"num_heads": 2, "key_dim": 4, "attention_axes": "1"}, "attention_axes"),
        ({"num_heads": 2, "key_dim": 4, "flash_attention": True, "dropout": 0.1}, "Dropout is not supported"),
        ({"num_heads": 2, "key_dim": 4, "use_scale": "no"}, "use_scale"),
        ({"num_heads": 2, "key_dim": 4, "rotary_max_wavelength": 0}, "rotary_max_wavelength"),
    ],
)
def test_keras_errors_and_ours(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


def test_key_value_shape_mismatch_is_keras_error():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    with pytest.raises(ValueError, match="must be equal"):
        layer(normal(BATCH, QLEN, DIM), normal(BATCH, KLEN, DIM), normal(BATCH, QLEN, DIM))


def test_flash_attention_follows_the_keras_switch():
    keras.config.disable_flash_attention()
    try:
        assert MultiHeadAttention(num_heads=2, key_dim=4)._flash_attention is False
        keras.config.enable_flash_attention()  # "when possible": the backend decides
        assert MultiHeadAttention(num_heads=2, key_dim=4)._flash_attention is None
        assert MultiHeadAttention(num_heads=2, key_dim=4).get_config()["flash_attention"] is None
    finally:
        keras.config.disable_flash_attention()
    layer = MultiHeadAttention(num_heads=2, key_dim=4, flash_attention=False)
    assert MultiHeadAttention.from_config(layer.get_config())._flash_attention is False


def _model(layer, shape=(QLEN, DIM)):
    x = keras.Input(shape)
    return keras.Model(x, layer(x, use_causal_mask=True))


def test_lora_on_projections_trains_only_lora_and_reloads(tmp_path):
    layer = MultiHeadAttention(num_heads=2, key_dim=4, num_key_value_heads=1, use_rotary_embedding=True)
    model = _model(layer)
    x = normal(BATCH, QLEN, DIM)
    before = ops.convert_to_numpy(model(x))
    frozen = ops.convert_to_numpy(layer.query_dense.kernel)
    layer.query_dense.enable_lora(2)
    layer.value_dense.enable_lora(2)
    assert_allclose(model(x), before, atol=1e-6)  # lora_b starts at zero
    names = sorted(w.path.split("/")[-1] for w in layer.trainable_weights)
    assert names.count("lora_kernel_a") == 2 and names.count("lora_kernel_b") == 2
    assert not any(w is layer.query_dense._kernel for w in layer.trainable_weights)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, normal(BATCH, QLEN, DIM), epochs=2, verbose=0)
    assert_allclose(layer.query_dense._kernel, frozen)
    after = ops.convert_to_numpy(model(x))
    assert not np.allclose(after, before)
    model.save(tmp_path / "lora.keras")
    assert_allclose(keras.saving.load_model(tmp_path / "lora.keras")(x), after, atol=1e-6)


def test_int8_quantize_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    model = _model(MultiHeadAttention(num_heads=2, key_dim=4, num_key_value_heads=1, use_gate=True))
    x = normal(BATCH, QLEN, DIM)
    float_out = ops.convert_to_numpy(model(x))
    model.quantize("int8")
    layer = model.layers[-1]
    for dense in (layer.query_dense, layer.key_dense, layer.value_dense, layer._gate_dense, layer.output_dense):
        assert keras.backend.standardize_dtype(dense._kernel.dtype) == "int8"
    quantized = ops.convert_to_numpy(model(x))
    assert np.mean((quantized - float_out) ** 2) < 1e-3
    assert not np.array_equal(quantized, float_out)
    model.save(tmp_path / "int8.keras")
    reloaded = keras.saving.load_model(tmp_path / "int8.keras")
    assert keras.backend.standardize_dtype(reloaded.layers[-1].query_dense._kernel.dtype) == "int8"
    assert_allclose(reloaded(x), quantized, atol=1e-6)


def test_dtype_policy_map_quantizes_named_projections():
    policy_map = keras.dtype_policies.DTypePolicyMap()
    for name in ("query", "value"):
        policy_map[f"mha/{name}"] = keras.dtype_policies.QuantizedDTypePolicy("int8", "float32")
    layer = MultiHeadAttention(num_heads=2, key_dim=4, num_key_value_heads=1, dtype=policy_map, name="mha")
    layer.build((BATCH, QLEN, DIM))
    dtypes = {d.name: keras.backend.standardize_dtype(d._kernel.dtype)
              for d in (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense)}
    assert dtypes == {"query": "int8", "key": "float32", "value": "int8", "attention_output": "float32"}
    assert layer(normal(BATCH, QLEN, DIM)).shape == (BATCH, QLEN, DIM)


def test_config_saved_before_subclassing_keras_still_loads():
    old = {
        "name": "self_attention", "trainable": True, "dtype": "float32", "num_heads": 2, "key_dim": 4,
        "value_dim": 4, "dropout": 0.0, "use_bias": True, "output_shape": 6, "num_key_value_heads": 1,
        "use_scale": False, "use_rotary_embedding": True, "rotary_max_wavelength": 500,
        "flash_attention": None, "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
        "seed": None,
    }
    layer = MultiHeadAttention.from_config(old)
    assert layer(normal(BATCH, QLEN, DIM)).shape == (BATCH, QLEN, 6)
    assert (layer.num_key_value_heads, layer.use_scale, layer.rotary_max_wavelength) == (1, False, 500)
