"""LoRA (Hu et al., 2021) on a backbone: Keras' own `enable_lora` on the chosen projections.

Keras' `Dense` and `EinsumDense` layers implement the adapters
(`kernel + lora_kernel_a @ lora_kernel_b * alpha / rank`, B starting at zero
so an adapted model starts equal to the original); this module picks the
layers, freezes everything else, and saves or loads just the adapters. A
`.keras` file of an adapted model holds the merged kernels (Keras merges on
save), and `merged_copy` gives an adapter-free model for export.
"""

import json
import os
import tempfile

import keras
import numpy as np

DEFAULT_TARGETS = ("query", "value")  # attention query and value projections


def _relative_path(layer, root):
    # Paths start with the root model's name, which differs between instances.
    path = layer.path
    prefix = root.name + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


def lora_target_layers(model, target_layer_names=None):
    """The sublayers of `model` named in `target_layer_names` that support LoRA, in order."""
    names = DEFAULT_TARGETS if target_layer_names is None else tuple(target_layer_names)
    if isinstance(target_layer_names, str) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(
            "target_layer_names must be a non-empty list of layer names such as "
            f"['query', 'value']; received target_layer_names={target_layer_names!r}"
        )
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if layer.name in names and hasattr(layer, "enable_lora")
    ]


def enable_lora(model, rank, target_layer_names=None, lora_alpha=None):
    """Freezes `model`, adds LoRA adapters to the target layers; returns those layers."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise ValueError(f"rank must be a positive integer; received rank={rank!r}")
    targets = lora_target_layers(model, target_layer_names)
    if not targets:
        names = DEFAULT_TARGETS if target_layer_names is None else list(target_layer_names)
        raise ValueError(
            f"enable_lora found no Dense/EinsumDense sublayer named {list(names)} in "
            f"{type(model).__name__}"
        )
    for variable in model.trainable_variables:
        variable.trainable = False
    for layer in targets:
        layer.enable_lora(rank, lora_alpha=lora_alpha)
    model._lora_settings = {
        "rank": rank,
        "lora_alpha": lora_alpha if lora_alpha is not None else rank,
        "target_layer_names": sorted({layer.name for layer in targets}),
    }
    return targets


def _adapted_layers(model):
    return [
        layer for layer in model._flatten_layers(include_self=False) if getattr(layer, "lora_enabled", False)
    ]


def save_lora_weights(model, path):
    """Writes the adapters of `model` to `path` (a .npz file), keyed by layer path."""
    layers = _adapted_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no LoRA adapters; call enable_lora(rank) first")
    if not str(path).endswith(".npz"):
        raise ValueError(f"LoRA weights are written as .npz; received path={str(path)!r}")
    arrays = {}
    for layer in layers:
        key = _relative_path(layer, model)
        arrays[f"{key}/lora_kernel_a"] = keras.ops.convert_to_numpy(layer.lora_kernel_a)
        arrays[f"{key}/lora_kernel_b"] = keras.ops.convert_to_numpy(layer.lora_kernel_b)
    settings = getattr(model, "_lora_settings", None) or {
        "rank": layers[0].lora_rank, "lora_alpha": layers[0].lora_alpha,
        "target_layer_names": sorted({layer.name for layer in layers}),
    }
    arrays["__settings__"] = np.array(json.dumps(settings))
    np.savez(path, **arrays)


def load_lora_weights(model, path):
    """Assigns adapters saved by `save_lora_weights`; enables LoRA with the saved settings first."""
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    settings = json.loads(str(arrays.pop("__settings__")))
    layers = _adapted_layers(model)
    if not layers:
        layers = enable_lora(model, settings["rank"], settings["target_layer_names"], settings["lora_alpha"])
    for layer in layers:
        if layer.lora_rank != settings["rank"]:
            raise ValueError(
                f"{path} holds rank-{settings['rank']} adapters; layer {layer.path!r} has "
                f"lora_rank={layer.lora_rank}"
            )
    expected = {f"{_relative_path(layer, model)}/lora_kernel_{ab}" for layer in layers for ab in "ab"}
    if expected != set(arrays):
        raise ValueError(
            f"{path} does not match this model's adapters: missing {sorted(expected - set(arrays))}, "
            f"unexpected {sorted(set(arrays) - expected)}"
        )
    for layer in layers:
        key = _relative_path(layer, model)
        layer.lora_kernel_a.assign(arrays[f"{key}/lora_kernel_a"])
        layer.lora_kernel_b.assign(arrays[f"{key}/lora_kernel_b"])


def has_lora(model):
    """True when some sublayer of `model` carries LoRA adapters."""
    return bool(_adapted_layers(model))


def merged_copy(model):
    """A copy of `model` with every adapter merged into its kernel (no LoRA variables).

    Goes through a `.keras` file: Keras writes adapted layers' merged kernels
    and the reloaded model is built without adapters. Returns `model` itself
    when it has none.
    """
    if not has_lora(model):
        return model
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "merged.keras")
        model.save(path)
        return keras.saving.load_model(path, compile=False)
