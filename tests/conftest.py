import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests' models are tiny, so XLA (TensorFlow's jit_compile, every JAX call) spends its
# time compiling, not running: skip LLVM's expensive optimisation passes. The computation
# XLA builds is the same; only the machine code is less optimised. Child processes the tests
# start (CLIs, servers, fresh interpreters) inherit it. A value set by the caller wins.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _frozen_heap():
    """Keras runs `gc.collect()` each time a layer drops a variable (quantization, LoRA);
    with TensorFlow, JAX and PyTorch loaded that walks ~400k objects every time. What is
    still alive when a test module starts (modules, session fixtures) is moved out of the
    collector's way; the module's own garbage is collected as usual."""
    gc.collect()  # walks only what the previous module left
    gc.freeze()
    yield


@pytest.fixture(autouse=True)
def _fixed_seed_and_policy():
    """Every test starts from the same seed and the float32 policy."""
    keras.utils.set_random_seed(1337)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
