"""The shared test harness every layer (and later every model) passes.

`run_layer_test` checks, for one layer class and one set of constructor
arguments:
  * `get_config` holds every constructor argument, `from_config` round-trips;
  * eager and symbolic calls give the expected output shapes;
  * the layer works inside a functional model, whose output equals the eager one;
  * the model saves to `.keras` and loads back (no `custom_objects`) with
    identical outputs;
  * `jit_compile=True` gives the eager outputs;
  * a few `fit` steps lower a loss (when the layer has trainable weights);
  * under `mixed_float16` and `mixed_bfloat16` the layer computes in the
    policy's compute dtype, keeps float32 variables, and stays close to float32.

Inputs are a dict from call-argument name to a NumPy array; `call_kwargs` holds
the non-tensor call arguments. No layer- or model-specific branches live here.
"""

import inspect
import os
import tempfile

import keras
import numpy as np
from keras import ops

PRECISION_TOLERANCE = {"mixed_float16": 2e-2, "mixed_bfloat16": 8e-2}


def to_numpy(x):
    return keras.tree.map_structure(lambda t: ops.convert_to_numpy(t), x)


def compiled(fn):
    """`fn` compiled as the backend compiles a loop: XLA on TensorFlow, `jax.jit` on JAX.

    PyTorch runs it eagerly, as `generate` does there (no compilation step to check).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def assert_allclose(actual, expected, atol=1e-5, rtol=1e-5, msg=""):
    # Flattened: `predict` returns lists where a call returns tuples.
    actual, expected = keras.tree.flatten(to_numpy(actual)), keras.tree.flatten(to_numpy(expected))
    assert len(actual) == len(expected), f"{len(actual)} outputs, expected {len(expected)}"
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(
            np.asarray(a, dtype="float64"),
            np.asarray(e, dtype="float64"),
            atol=atol,
            rtol=rtol,
            err_msg=msg,
        )


def symbolic_inputs(input_data):
    """`keras.Input`s with a free batch axis, matching each array's dtype."""
    return {
        name: keras.Input(shape=array.shape[1:], dtype=str(array.dtype), name=name)
        for name, array in input_data.items()
    }


def check_config(layer_cls, layer):
    """Every constructor argument is in `get_config`; `from_config` round-trips."""
    config = layer.get_config()
    params = inspect.signature(layer_cls.__init__).parameters
    for name, param in params.items():
        if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        assert name in config, f"{layer_cls.__name__}.get_config() lacks `{name}`"
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config


def _float_outputs(outputs):
    return [
        o
        for o in keras.tree.flatten(outputs)
        if o is not None and "float" in keras.backend.standardize_dtype(o.dtype)
    ]


def check_training(model, input_data):
    """A few optimizer steps on one batch lower a mean-squared loss."""
    outputs = model(input_data)
    targets = [
        np.random.default_rng(1).normal(size=ops.shape(o)).astype("float32")
        for o in _float_outputs(outputs)
    ]
    float_model = keras.Model(model.inputs, _float_outputs(model.outputs))
    float_model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    batch = dict(input_data)
    before = float_model.evaluate(batch, targets, verbose=0, return_dict=True)["loss"]
    float_model.fit(batch, targets, epochs=8, batch_size=len(next(iter(batch.values()))), verbose=0)
    after = float_model.evaluate(batch, targets, verbose=0, return_dict=True)["loss"]
    assert after < before, f"fit did not lower the loss: {before} -> {after}"


def run_precision_test(layer_cls, init_kwargs, input_data, call_kwargs=None):
    """Mixed precision: compute dtype outputs, float32 variables, close to float32."""
    call_kwargs = call_kwargs or {}
    reference = layer_cls(**init_kwargs)
    expected = reference(**input_data, **call_kwargs)
    for policy in ("mixed_float16", "mixed_bfloat16"):
        layer = layer_cls(**init_kwargs, dtype=policy)
        layer(**input_data, **call_kwargs)  # build
        layer.set_weights(reference.get_weights())
        outputs = layer(**input_data, **call_kwargs)
        compute = keras.mixed_precision.Policy(policy).compute_dtype
        for out in _float_outputs(outputs):
            assert keras.backend.standardize_dtype(out.dtype) == compute, (
                f"{layer_cls.__name__} under {policy} returned {out.dtype}"
            )
        for weight in layer.weights:
            if "float" in keras.backend.standardize_dtype(weight.dtype):
                assert keras.backend.standardize_dtype(weight.dtype) == "float32"
        tol = PRECISION_TOLERANCE[policy]
        for got, want in zip(_float_outputs(outputs), _float_outputs(expected)):
            got = np.asarray(ops.convert_to_numpy(ops.cast(got, "float32")))
            want = np.asarray(ops.convert_to_numpy(want))
            assert np.all(np.isfinite(got)), f"non-finite output under {policy}"
            scale = max(1.0, float(np.max(np.abs(want))))
            np.testing.assert_allclose(got, want, atol=tol * scale, rtol=tol)


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    call_kwargs=None,
    expected_num_trainable_weights=None,
    run_training_check=True,
    run_precision_checks=True,
    run_jit_check=True,
    run_saving_check=True,
):
    """Runs every generic check on one layer configuration (see module docstring).

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_data: dict from call-argument name to NumPy array (batch first).
        expected_output_shape: a shape tuple, or the same structure as the output.
        call_kwargs: non-tensor call arguments (flags), passed every time.
    """
    call_kwargs = call_kwargs or {}
    keras.utils.set_random_seed(0)

    # Eager call and output shapes.
    layer = layer_cls(**init_kwargs)
    check_config(layer_cls, layer)
    outputs = layer(**input_data, **call_kwargs)
    shapes = keras.tree.map_structure(lambda o: tuple(o.shape), outputs)
    expected = expected_output_shape
    if isinstance(expected, tuple) and all(isinstance(d, int) or d is None for d in expected):
        expected = tuple(expected)
    assert _shapes_match(shapes, expected), f"output shapes {shapes} != {expected}"
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{len(layer.trainable_weights)} trainable weights, "
            f"expected {expected_num_trainable_weights}"
        )
    check_config(layer_cls, layer)  # again, after build

    # Symbolic call inside a functional model.
    symbolic_layer = layer_cls(**init_kwargs)
    inputs = symbolic_inputs(input_data)
    symbolic_outputs = symbolic_layer(**inputs, **call_kwargs)
    symbolic_shapes = keras.tree.map_structure(lambda o: tuple(o.shape)[1:], symbolic_outputs)
    expected_tail = _tails(shapes)
    assert _shapes_match(symbolic_shapes, expected_tail, allow_none=True), (
        f"symbolic shapes {symbolic_shapes} != {expected_tail}"
    )
    model = keras.Model(inputs, symbolic_outputs)
    symbolic_layer.set_weights(layer.get_weights())
    model_outputs = model(input_data, training=False)
    assert_allclose(model_outputs, outputs, msg="functional model != eager layer")

    if run_saving_check:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
        revived = [l for l in loaded.layers if isinstance(l, layer_cls)]
        assert revived, f"no {layer_cls.__name__} in the reloaded model"
        assert_allclose(loaded(input_data, training=False), model_outputs, atol=1e-6, rtol=1e-6,
                        msg="reloaded .keras model differs")

    if run_jit_check:
        jit_model = keras.Model(inputs, symbolic_outputs)
        jit_model.compile(jit_compile=True)
        batch = len(next(iter(input_data.values())))
        jit_outputs = jit_model.predict(input_data, batch_size=batch, verbose=0)
        assert_allclose(jit_outputs, to_numpy(model_outputs), atol=1e-4, rtol=1e-4,
                        msg="jit_compile=True differs from eager")

    if run_training_check and layer.trainable_weights:
        train_layer = layer_cls(**init_kwargs)
        train_outputs = train_layer(**inputs, **call_kwargs)
        check_training(keras.Model(inputs, train_outputs), input_data)

    if run_precision_checks:
        run_precision_test(layer_cls, init_kwargs, input_data, call_kwargs)
    return layer, outputs


def _tails(shapes):
    if isinstance(shapes, tuple) and all(isinstance(d, int) or d is None for d in shapes):
        return tuple(shapes)[1:]
    if isinstance(shapes, dict):
        return {k: _tails(v) for k, v in shapes.items()}
    return type(shapes)(_tails(s) for s in shapes)


def _shapes_match(actual, expected, allow_none=False):
    def leaf(s):
        return isinstance(s, tuple) and all(isinstance(d, int) or d is None for d in s)

    if leaf(actual) or leaf(expected):
        if not (leaf(actual) and leaf(expected)) or len(actual) != len(expected):
            return False
        return all(a == e or (allow_none and a is None) for a, e in zip(actual, expected))
    if isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            _shapes_match(actual[k], expected[k], allow_none) for k in actual
        )
    return len(actual) == len(expected) and all(
        _shapes_match(a, e, allow_none) for a, e in zip(actual, expected)
    )


# ------------------------------------------------------------------ models


def run_in_fresh_process(script, timeout=600):
    """Runs Python `script` in a new interpreter (same backend env); fails with its stderr."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", script], env=dict(os.environ), capture_output=True, text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def run_model_saving_test(model, input_data, atol=1e-6):
    """Saves `model` as `.keras`, loads it back (no `custom_objects`) and checks that the
    class and the outputs are the same. `run_fresh_process_loading_test` checks, for every
    public model at once, that a plain `import keras_transformer` is all a new process needs."""
    expected = to_numpy(model(input_data, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model), f"reloaded a {type(loaded).__name__}, saved a {type(model).__name__}"
    assert_allclose(loaded(input_data, training=False), expected, atol=atol, rtol=atol,
                    msg="reloaded model differs")


def run_fresh_process_loading_test(cases):
    """Saves every model of `cases` ({name: model}) as `.keras`, loads them all in one new
    interpreter that imports only `keras_transformer`, and checks that each comes back as
    the same class with the same weights (`run_model_saving_test` compares outputs)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in cases.items():
            model.save(os.path.join(tmp, f"{name}.keras"))
        stdout = run_in_fresh_process(
            "import os, numpy as np, keras\n"
            "import keras_transformer\n"
            f"tmp, names = {tmp!r}, {sorted(cases)!r}\n"
            "for name in names:\n"
            "    model = keras.saving.load_model(os.path.join(tmp, name + '.keras'))\n"
            "    np.savez(os.path.join(tmp, name + '.npz'), *model.get_weights())\n"
            "    print(name, type(model).__name__)\n"
        )
        classes = dict(line.split() for line in stdout.splitlines() if line.split()[:1] and line.split()[0] in cases)
        for name, model in cases.items():
            assert classes.get(name) == type(model).__name__, (
                f"{name}: reloaded as {classes.get(name)}, saved a {type(model).__name__}"
            )
            with np.load(os.path.join(tmp, f"{name}.npz")) as saved:
                reloaded = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            expected = model.get_weights()
            assert len(reloaded) == len(expected), f"{name}: {len(reloaded)} weights, saved {len(expected)}"
            for got, want in zip(reloaded, expected):
                np.testing.assert_array_equal(got, want, err_msg=f"{name}: a reloaded weight differs")


def run_model_test(
    model_fn,
    input_data,
    expected_output_shape,
    fit_data=None,
    run_jit_check=True,
    run_precision_checks=True,
):
    """Generic checks of one model: shapes, summary and graph, config round trip,
    `jit_compile=True`, `fit` lowering the loss, and mixed precision.

    Args:
        model_fn: builds the model (called several times, e.g. under a policy).
        input_data: dict of NumPy arrays, the model's inputs.
        expected_output_shape: the outputs' shapes (same structure as the outputs).
        fit_data: `(x, y, sample_weight)` for `fit`, with the model already
            compiled by `model_fn`; None skips the training check.
    """
    model = model_fn()
    outputs = model(input_data, training=False)
    shapes = keras.tree.map_structure(lambda o: tuple(o.shape), outputs)
    assert _shapes_match(shapes, expected_output_shape), f"{shapes} != {expected_output_shape}"
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    assert any(str(model.count_params()) in line.replace(",", "") for line in lines)
    keras.utils.model_to_dot(model)  # what `plot_model` draws

    revived = type(model).from_config(model.get_config())
    revived.set_weights(model.get_weights())
    assert_allclose(revived(input_data, training=False), outputs, msg="from_config differs")

    if run_jit_check:
        jitted = model_fn()
        jitted.set_weights(model.get_weights())
        jitted.jit_compile = True
        batch = len(next(iter(input_data.values())))
        jit_outputs = jitted.predict(input_data, batch_size=batch, verbose=0)
        assert_allclose(jit_outputs, outputs, atol=1e-4, rtol=1e-4, msg="jit differs")

    if fit_data is not None:
        trained = model_fn()
        x, y, sample_weight = fit_data
        before = trained.evaluate(x, y, sample_weight=sample_weight, verbose=0, return_dict=True)["loss"]
        trained.fit(x, y, sample_weight=sample_weight, epochs=5, batch_size=len(next(iter(x.values()))), verbose=0)
        after = trained.evaluate(x, y, sample_weight=sample_weight, verbose=0, return_dict=True)["loss"]
        assert after < before, f"fit did not lower the loss: {before} -> {after}"

    if run_precision_checks:
        for policy in ("mixed_float16", "mixed_bfloat16"):
            keras.config.set_dtype_policy(policy)
            try:
                mixed = model_fn()
            finally:
                keras.config.set_dtype_policy("float32")
            mixed.set_weights(model.get_weights())
            for out in keras.tree.flatten(to_numpy(mixed(input_data, training=False))):
                assert np.all(np.isfinite(np.asarray(out, dtype="float32"))), f"non-finite under {policy}"
    return model, outputs
