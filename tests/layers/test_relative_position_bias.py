import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.layers import RelativePositionBias
from keras_transformer.layers.relative_position_bias import relative_position_bucket
from tests import reference
from tests.test_case import assert_allclose, check_training, run_layer_test

BATCH, QLEN, KLEN, DIM, HEADS = 2, 5, 6, 8, 2


def normal(*shape):
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def buckets(rel, bidirectional, num_buckets, max_distance):
    rel = ops.convert_to_tensor(np.asarray(rel, "int32"))
    return ops.convert_to_numpy(relative_position_bucket(rel, bidirectional, num_buckets, max_distance))


def layer_with_table(**kwargs):
    """A built layer whose table entry (bucket b, head h) is b * 10 + h."""
    layer = RelativePositionBias(num_heads=HEADS, **kwargs)
    layer.build((None, None, DIM))
    table = (np.arange(layer.num_buckets)[:, None] * 10 + np.arange(HEADS)[None, :])
    layer.set_weights([table.astype("float32")])
    return layer, table


def expected_bias(table, query_positions, key_length, **bucket_kwargs):
    """(1, heads, query, key) from the NumPy bucket reference."""
    rel = np.arange(key_length)[None, :] - np.asarray(query_positions)[:, None]
    b = reference.t5_relative_position_bucket(rel, **bucket_kwargs)
    return np.transpose(table[b], (2, 0, 1))[None]


def compiled_with_traced_start(layer, query_length, key_length):
    """A jit-compiled model calling `layer(q, k, start_index=s)`, `s` a traced scalar."""
    q = keras.Input(shape=(query_length, DIM), name="q")
    k = keras.Input(shape=(key_length, DIM), name="k")
    start = keras.Input(shape=(), dtype="int32", name="start")
    model = keras.Model({"q": q, "k": k, "start": start}, layer(q, k, start_index=start[0]))
    model.compile(jit_compile=True)

    def run(start_value):
        feed = {
            "q": np.zeros((BATCH, query_length, DIM), "float32"),
            "k": np.zeros((BATCH, key_length, DIM), "float32"),
            "start": np.full((BATCH,), start_value, "int32"),
        }
        return model.predict(feed, batch_size=BATCH, verbose=0)

    return run


# ------------------------------------------------------------------ harness


def test_layer_harness():
    # The output has batch 1 (it broadcasts over the logits' batch), which the
    # harness's `fit` check cannot pair with batch-2 inputs: trained below.
    run_layer_test(
        RelativePositionBias,
        {"num_heads": HEADS, "num_buckets": 8, "max_distance": 16},
        {"query": normal(BATCH, QLEN, DIM), "key": normal(BATCH, KLEN, DIM)},
        (1, HEADS, QLEN, KLEN),
        expected_num_trainable_weights=1,
        run_training_check=False,
    )


def test_layer_harness_self_attention_unidirectional():
    run_layer_test(
        RelativePositionBias,
        {"num_heads": HEADS, "num_buckets": 6, "max_distance": 10, "bidirectional": False},
        {"query": normal(BATCH, QLEN, DIM)},
        (1, HEADS, QLEN, QLEN),
        run_training_check=False,
        run_saving_check=False,
    )


def test_training_lowers_a_loss():
    # Batch-1 inputs, so `fit` can pair them with the batch-1 bias.
    query = keras.Input(shape=(QLEN, DIM), name="query")
    bias = RelativePositionBias(num_heads=HEADS, num_buckets=8, max_distance=16)(query)
    check_training(keras.Model({"query": query}, bias), {"query": normal(1, QLEN, DIM)})


# ------------------------------------------------------------------ buckets


@pytest.mark.parametrize(
    "bidirectional,num_buckets,max_distance",
    [(True, 32, 128), (False, 32, 128), (True, 8, 16), (False, 10, 20), (True, 6, 9), (False, 2, 5)],
)
def test_buckets_match_numpy_reference(bidirectional, num_buckets, max_distance):
    rel = np.arange(-300, 301)
    got = buckets(rel, bidirectional, num_buckets, max_distance)
    want = reference.t5_relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
    np.testing.assert_array_equal(got, want)
    assert got.min() >= 0 and got.max() == num_buckets - 1


# Hand-computed with num_buckets=32, max_distance=128.
# Bidirectional: 16 buckets a side, max_exact 8; large r -> 8 + int(log(r/8)/log(16)*8),
# capped at 15; positive offsets add 16.
BIDIRECTIONAL = {0: 0, 1: 17, -1: 1, -7: 7, 7: 23, -8: 8, 8: 24, -12: 9, -16: 10,
                 -32: 12, -64: 14, -127: 15, -128: 15, -200: 15, 200: 31}
# Unidirectional: 32 buckets, max_exact 16; large r -> 16 + int(log(r/16)/log(8)*16), cap 31;
# keys after the query (rel > 0) share bucket 0.
UNIDIRECTIONAL = {0: 0, 5: 0, 200: 0, -1: 1, -15: 15, -16: 16, -32: 21, -64: 26,
                  -100: 30, -128: 31, -200: 31}


@pytest.mark.parametrize("bidirectional,table", [(True, BIDIRECTIONAL), (False, UNIDIRECTIONAL)])
def test_buckets_hand_computed(bidirectional, table):
    rel = list(table)
    want = [table[r] for r in rel]
    np.testing.assert_array_equal(buckets(rel, bidirectional, 32, 128), want)
    np.testing.assert_array_equal(reference.t5_relative_position_bucket(rel, bidirectional, 32, 128), want)


def test_bucket_function_keeps_shape():
    rel = np.arange(-6, 6).reshape(3, 4)
    assert buckets(rel, True, 32, 128).shape == (3, 4)


# ------------------------------------------------------------------ layer values


@pytest.mark.parametrize("bidirectional", [True, False])
def test_layer_matches_reference(bidirectional):
    kwargs = {"num_buckets": 8, "max_distance": 16, "bidirectional": bidirectional}
    layer, table = layer_with_table(**kwargs)
    out = layer(normal(BATCH, QLEN, DIM), normal(BATCH, 20, DIM))
    assert tuple(out.shape) == (1, HEADS, QLEN, 20)
    assert_allclose(out, expected_bias(table, np.arange(QLEN), 20, **kwargs))


def test_key_defaults_to_query():
    layer, _ = layer_with_table()
    query = normal(BATCH, QLEN, DIM)
    assert_allclose(layer(query), layer(query, query))
    assert tuple(layer(query).shape) == (1, HEADS, QLEN, QLEN)


def test_unidirectional_future_keys_share_bucket_zero():
    layer, table = layer_with_table(bidirectional=False)
    out = ops.convert_to_numpy(layer(normal(1, QLEN, DIM)))
    for h in range(HEADS):
        future = out[0, h][np.triu_indices(QLEN, k=0)]  # key >= query
        np.testing.assert_array_equal(future, table[0, h])
        assert out[0, h, 1, 0] == table[1, h]


@pytest.mark.parametrize("start", [4, "tensor"])
def test_start_index_slices_query_rows(start):
    layer, _ = layer_with_table(num_buckets=8, max_distance=16)
    full = ops.convert_to_numpy(layer(normal(BATCH, 7, DIM)))
    start = ops.convert_to_tensor(4, "int32") if start == "tensor" else start
    part = layer(normal(BATCH, 3, DIM), normal(BATCH, 7, DIM), start_index=start)
    assert tuple(part.shape) == (1, HEADS, 3, 7)
    assert_allclose(part, full[:, :, 4:7])


def test_start_index_traced_inside_jit_compiled_model():
    kwargs = {"num_buckets": 8, "max_distance": 16, "bidirectional": False}
    layer, table = layer_with_table(**kwargs)
    run = compiled_with_traced_start(layer, 1, 9)
    for start in (4, 0, 8):
        assert_allclose(run(start), expected_bias(table, [start], 9, **kwargs))


def test_mixed_precision_output_dtype_and_float32_table():
    layer = RelativePositionBias(num_heads=HEADS, dtype="mixed_bfloat16")
    out = layer(normal(BATCH, QLEN, DIM))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"


def test_config_holds_initializer():
    config = RelativePositionBias(num_heads=3, embeddings_initializer="zeros").get_config()
    assert config["embeddings_initializer"]["class_name"] == "Zeros"
    assert (config["num_heads"], config["num_buckets"], config["max_distance"]) == (3, 32, 128)
    assert config["bidirectional"] is True


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"num_heads": 0}, "received num_heads=0"),
        ({"num_heads": 2.0}, "received num_heads=2.0"),
        ({"num_heads": 2, "num_buckets": 1, "bidirectional": False}, "received num_buckets=1"),
        ({"num_heads": 2, "num_buckets": 0}, "received num_buckets=0"),
        ({"num_heads": 2, "num_buckets": 3}, "at least 4 when bidirectional=True; received num_buckets=3"),
        ({"num_heads": 2, "max_distance": 0}, "received max_distance=0"),
        ({"num_heads": 2, "num_buckets": 32, "max_distance": 8}, "received max_distance=8"),
        ({"num_heads": 2, "num_buckets": 8, "max_distance": 4, "bidirectional": False},
         "received max_distance=4"),
        ({"num_heads": 2, "bidirectional": "yes"}, "received bidirectional='yes'"),
    ],
)
def test_rejects_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        RelativePositionBias(**kwargs)


def test_smallest_valid_configs_build():
    RelativePositionBias(num_heads=1, num_buckets=4, max_distance=2)
    RelativePositionBias(num_heads=1, num_buckets=2, max_distance=2, bidirectional=False)


def test_rejects_negative_start_index():
    with pytest.raises(ValueError, match="start_index=-3"):
        RelativePositionBias(num_heads=HEADS)(normal(BATCH, QLEN, DIM), start_index=-3)
