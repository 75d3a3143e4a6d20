"""Keras' own MultiHeadAttention tests, run against our layer.

The installed `keras` wheel ships `keras/src/layers/attention/multi_head_attention_test.py`.
Its test case reaches the layer through the module-level name `layers`; here that name
resolves `MultiHeadAttention` to `keras_transformer.layers.MultiHeadAttention` (everything
else stays Keras'), and pytest collects the unchanged test case below. Whatever Keras skips
on a backend (flash attention on TensorFlow) it skips here too, for its own reasons.
"""

import importlib

import keras
import pytest

import keras_transformer.layers

try:
    _keras_tests = importlib.import_module("keras.src.layers.attention.multi_head_attention_test")
except ImportError:  # pragma: no cover - a keras build without its tests
    _keras_tests = None


class _OursForMultiHeadAttention:
    """`keras.src.layers` with MultiHeadAttention bound to ours."""

    def __getattr__(self, name):
        if name == "MultiHeadAttention":
            return keras_transformer.layers.MultiHeadAttention
        return getattr(keras.src.layers, name)


def test_the_keras_test_module_is_installed():
    # keras 3.15 wheels ship it; if a future wheel drops it, this says so instead of running nothing.
    assert _keras_tests is not None, "keras.src.layers.attention.multi_head_attention_test is not installed"


if _keras_tests is not None:
    _keras_tests.layers = _OursForMultiHeadAttention()

    class TestKerasOwnMultiHeadAttentionTestsOnOurs(_keras_tests.MultiHeadAttentionTest):
        """Every test method of Keras' MultiHeadAttentionTest, unchanged."""

    def test_the_binding_reaches_our_layer():
        assert _keras_tests.layers.MultiHeadAttention is keras_transformer.layers.MultiHeadAttention
        layer = _keras_tests.layers.MultiHeadAttention(num_heads=2, key_dim=4, num_key_value_heads=1)
        assert isinstance(layer, keras.layers.MultiHeadAttention) and layer.num_key_value_heads == 1


@pytest.fixture(autouse=True)
def _restore_flash_attention_setting():
    # Keras' tests switch flash attention on and off; leave the global setting as they found it.
    from keras.src.backend.common import global_state

    before = global_state.get_global_attribute("flash_attention")
    yield
    global_state.set_global_attribute("flash_attention", before)
