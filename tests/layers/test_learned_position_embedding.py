import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.layers import LearnedPositionEmbedding
from tests.test_case import assert_allclose, run_layer_test

BATCH, LENGTH, DIM, TABLE = 2, 5, 8, 8


def normal(*shape):
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def layer_with_table(sequence_length=TABLE, dim=DIM):
    """A built layer whose row p is p * 100 + arange(dim), so rows are recognisable."""
    layer = LearnedPositionEmbedding(sequence_length)
    layer.build((None, None, dim))
    table = (np.arange(sequence_length)[:, None] * 100 + np.arange(dim)[None, :]).astype("float32")
    layer.set_weights([table])
    return layer, table


def compiled_with_traced_start(layer, length, dim):
    """A jit-compiled model calling `layer(x, start_index=s)`, `s` a traced scalar."""
    x = keras.Input(shape=(length, dim), name="x")
    start = keras.Input(shape=(), dtype="int32", name="start")
    model = keras.Model({"x": x, "start": start}, layer(x, start_index=start[0]))
    model.compile(jit_compile=True)

    def run(x_value, start_value):
        feed = {"x": x_value, "start": np.full((len(x_value),), start_value, "int32")}
        return model.predict(feed, batch_size=len(x_value), verbose=0)

    return run


def test_layer_harness():
    layer, _ = run_layer_test(
        LearnedPositionEmbedding,
        {"sequence_length": TABLE},
        {"inputs": normal(BATCH, LENGTH, DIM)},
        (BATCH, LENGTH, DIM),
        expected_num_trainable_weights=1,
    )
    assert tuple(layer.embeddings.shape) == (TABLE, DIM)


def test_returns_table_rows_broadcast_over_batch():
    layer, table = layer_with_table()
    out = layer(normal(BATCH, LENGTH, DIM))
    assert tuple(out.shape) == (BATCH, LENGTH, DIM)
    for b in range(BATCH):
        assert_allclose(out[b], table[:LENGTH])


def test_full_table_length_is_allowed():
    layer, table = layer_with_table()
    assert_allclose(layer(np.zeros((1, TABLE, DIM), "float32"))[0], table)


@pytest.mark.parametrize("start", [4, "tensor"])
def test_start_index_slices_the_table(start):
    layer, table = layer_with_table()
    if start == "tensor":
        start = ops.convert_to_tensor(4, "int32")
    out = layer(np.zeros((BATCH, 3, DIM), "float32"), start_index=start)
    assert tuple(out.shape) == (BATCH, 3, DIM)
    assert_allclose(out[1], table[4:7])


def test_start_index_traced_inside_jit_compiled_model():
    layer, table = layer_with_table()
    run = compiled_with_traced_start(layer, 3, DIM)
    x = np.zeros((BATCH, 3, DIM), "float32")
    for start in (4, 0, 5):  # 5..7 ends exactly at the last row
        out = run(x, start)
        for b in range(BATCH):
            assert_allclose(out[b], table[start:start + 3])


def test_dynamic_length_in_compiled_model():
    layer, table = layer_with_table()
    x = keras.Input(shape=(None, DIM))
    model = keras.Model(x, layer(x))
    for length in (3, 6):
        out = model.predict(np.zeros((BATCH, length, DIM), "float32"), verbose=0)
        assert_allclose(out[0], table[:length])


def test_initializer_is_used_and_serialized():
    layer = LearnedPositionEmbedding(4, initializer="zeros")
    out = layer(normal(1, 3, DIM))
    np.testing.assert_array_equal(ops.convert_to_numpy(out), 0.0)
    config = layer.get_config()
    assert config["initializer"]["class_name"] == "Zeros"
    assert config["sequence_length"] == 4
    custom = keras.initializers.RandomNormal(stddev=0.5, seed=3)
    config = LearnedPositionEmbedding(4, initializer=custom).get_config()
    assert config["initializer"]["config"]["stddev"] == 0.5


def test_mixed_precision_output_dtype_and_float32_table():
    layer = LearnedPositionEmbedding(TABLE, dtype="mixed_float16")
    out = layer(normal(BATCH, LENGTH, DIM))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"


def test_sequence_longer_than_table_raises():
    layer = LearnedPositionEmbedding(4)
    with pytest.raises(ValueError, match=r"length=5.*sequence_length=4"):
        layer(np.zeros((BATCH, 5, DIM), "float32"))


def test_start_plus_length_past_table_raises():
    layer, _ = layer_with_table(sequence_length=6)
    layer(np.zeros((BATCH, 3, DIM), "float32"), start_index=3)  # rows 3..5: fits
    with pytest.raises(ValueError, match=r"start_index=4, length=3, sequence_length=6"):
        layer(np.zeros((BATCH, 3, DIM), "float32"), start_index=4)


def test_symbolic_sequence_longer_than_table_raises():
    with pytest.raises(ValueError, match=r"length=9.*sequence_length=8"):
        LearnedPositionEmbedding(8)(keras.Input(shape=(9, DIM)))


def test_negative_start_index_raises():
    layer, _ = layer_with_table()
    with pytest.raises(ValueError, match="start_index=-2"):
        layer(np.zeros((BATCH, 3, DIM), "float32"), start_index=-2)


@pytest.mark.parametrize("bad", [0, -3, 2.5, None, True])
def test_rejects_bad_sequence_length(bad):
    with pytest.raises(ValueError, match=r"received sequence_length="):
        LearnedPositionEmbedding(bad)
