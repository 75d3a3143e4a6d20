"""Base classes of every family: a functional backbone and a task model wrapping it."""

import keras

from keras_transformer.models import input_contract, lora
from keras_transformer.models.presets import get_preset

_BASE_KEYS = ("name", "trainable", "dtype")


def _keep_dtype_policy(model, dtype):
    # Keras' functional constructor drops `dtype`; keep it so get_config round-trips.
    if dtype is not None:
        model.dtype_policy = dtype


def quantized_dtype_policy(model, default):
    """`default`, or a `DTypePolicyMap` recording every quantized sublayer of `model`.

    Quantization changes a layer's dtype policy (e.g. "int8_from_float32");
    saving the map as the `dtype` argument makes `from_config` rebuild those
    layers quantized, so the saved int8 weights load back. Sublayers look
    themselves up by `layer.path`; the rest get the default policy.
    """
    if isinstance(default, keras.dtype_policies.DTypePolicyMap):
        default = default.default_policy
    policy_map = keras.dtype_policies.DTypePolicyMap(default_policy=default)
    for layer in model._flatten_layers(include_self=False):
        if layer.quantization_mode is not None and layer.path not in policy_map:
            policy_map[layer.path] = layer.dtype_policy
    return policy_map if len(policy_map) else default


class _FunctionalModel(keras.Model):
    """A functional `keras.Model` whose subclass creates its layers before `super().__init__`.

    PyTorch modules refuse module attributes before `torch.nn.Module.__init__`
    has run; on that backend such early attributes are stored as plain
    attributes (the functional graph tracks the layers and their weights
    anyway). Later assignments take Keras' usual path on every backend.
    """

    def __setattr__(self, name, value):
        if keras.config.backend() == "torch" and "_functional_ready" not in self.__dict__:
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def _finish_functional_init(self, dtype):
        _keep_dtype_policy(self, dtype)
        object.__setattr__(self, "_functional_ready", True)


class Backbone(_FunctionalModel):
    """A functional model whose constructor arguments are its family's config fields.

    Subclasses set `config_class`, `family`, `input_keys` (every required
    input), `length_keys` (inputs checked against `max_sequence_length`) and
    `id_limits` (input -> config field bounding its ids), create their layers
    as attributes, then named `keras.Input`s, then call
    `super().__init__(inputs=..., outputs=..., config=...)`. `get_config()`
    returns exactly the constructor arguments and `from_config` is
    `cls(**config)`.

    Input contract (the same ValueError in every family, see
    `input_contract`): a missing key, a sequence above `max_sequence_length`
    and (eager calls) an id outside its table are rejected before any layer
    runs.

    Sublayer vocabulary, shared by every family: `token_embedding`,
    `encoder_blocks` / `decoder_blocks` (lists of `encoder_block_{i}` /
    `decoder_block_{i}`), `encoder_norm` / `decoder_norm` for final norms.
    `transformer_layers` is a read-only alias of all blocks, encoder first.

    LoRA: `enable_lora(rank)` freezes the backbone and adds low-rank adapters
    to the query and value projections; `save_lora_weights` /
    `load_lora_weights` move just the adapters. Quantization: Keras'
    `quantize("int8")`; the quantized layers are recorded in the saved
    `dtype` so `.keras` files reload quantized.
    """

    config_class = None
    family = None
    input_keys = ()
    length_keys = ()
    id_limits = {}
    encoder_blocks = ()
    decoder_blocks = ()

    def __init__(self, inputs, outputs, config, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._finish_functional_init(kwargs.get("dtype"))
        self._model_config = config

    @property
    def model_config(self):
        """The family's config dataclass this backbone was built from."""
        return self._model_config

    @property
    def transformer_layers(self):
        """Every block, encoder blocks first (a read-only alias; prefer the named lists)."""
        return list(self.encoder_blocks) + list(self.decoder_blocks)

    # ----------------------------------------------------------- input contract

    def check_inputs(self, inputs, owner=None):
        """Raises the contract's ValueError for a missing key, a too long sequence or a bad id."""
        if not self.input_keys:  # a family with a single tensor input declares no keys
            return
        owner = owner or type(self).__name__
        config = self.model_config
        input_contract.check_keys(inputs, self.input_keys, owner, exact=True)
        input_contract.check_length(inputs, self.length_keys, config.max_sequence_length, owner)
        limits = {key: (field, getattr(config, field)) for key, field in self.id_limits.items()}
        input_contract.check_id_range(inputs, limits, owner)

    def __call__(self, inputs, *args, **kwargs):
        self.check_inputs(inputs)
        return super().__call__(inputs, *args, **kwargs)

    # ---------------------------------------------------------------- LoRA

    def enable_lora(self, rank, target_layer_names=None, lora_alpha=None):
        """Freezes the backbone and adds rank-`rank` adapters to the target projections.

        `target_layer_names` are sublayer names (default `("query", "value")`,
        the attention query and value projections of every block); only the
        adapters' weights stay trainable. Task heads outside the backbone keep
        training. Returns the adapted layers.
        """
        return lora.enable_lora(self, rank, target_layer_names, lora_alpha)

    def save_lora_weights(self, path):
        """Writes only the LoRA adapters (and their rank and targets) to `path` (.npz)."""
        lora.save_lora_weights(self, path)

    def load_lora_weights(self, path):
        """Loads adapters written by `save_lora_weights`, enabling LoRA first if needed."""
        lora.load_lora_weights(self, path)

    # ------------------------------------------------------------ (de)serialisation

    @classmethod
    def from_preset(cls, name, **overrides):
        """A freshly initialised backbone of preset `name`; `overrides` replace config fields."""
        config = get_preset(name, cls.family).replace(**overrides)
        return cls(**config.to_dict())

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key in _BASE_KEYS}
        config.update(self._model_config.to_dict())
        dtype = quantized_dtype_policy(self, self.dtype_policy)
        if isinstance(dtype, keras.dtype_policies.DTypePolicyMap):
            config["dtype"] = keras.dtype_policies.serialize(dtype)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        return cls(**config)


def token_cross_entropy():
    """Sparse cross-entropy on logits, averaged over weighted tokens only.

    Keras' default reduction divides by every position, padded ones included,
    which understates the loss (and exp(loss) would not be the perplexity).
    """
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


def token_metrics():
    """Weighted token accuracy and keras-hub's perplexity (weights mask padding)."""
    import keras_hub  # only here: it imports TensorFlow

    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        keras_hub.metrics.Perplexity(from_logits=True, name="perplexity"),
    ]


_COMPILE_ARGUMENTS = ("optimizer", "loss", "metrics", "weighted_metrics")


class Task(_FunctionalModel):
    """A functional model made of a backbone plus a head; reuses the backbone's layers.

    Subclasses set `backbone_class`; their constructor takes `backbone` first.
    `get_config()` serialises the backbone; `from_config` restores it.

    Compile defaults have one path: `compile()` replaces each argument left
    at "auto" by the task's `compile_defaults()` entry (a dict of
    zero-argument factories, so every call gets fresh objects); a task with
    no entry for an argument passes None.

    Inputs go through the backbone's input contract (same errors as the
    backbone's, naming the task), plus a check for the task's own keys.
    """

    backbone_class = None

    def __init__(self, backbone, inputs, outputs, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._finish_functional_init(kwargs.get("dtype"))
        self.backbone = backbone

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(self._inputs_struct, dict):
            input_contract.check_keys(inputs, list(self._inputs_struct), type(self).__name__)
        self.backbone.check_inputs(
            {key: inputs[key] for key in self.backbone.input_keys}, type(self).__name__
        )
        return super().__call__(inputs, *args, **kwargs)

    @classmethod
    def from_preset(cls, name, backbone_overrides=None, **kwargs):
        """A task model on a freshly initialised backbone of preset `name`."""
        backbone = cls.backbone_class.from_preset(name, **(backbone_overrides or {}))
        return cls(backbone, **kwargs)

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key in _BASE_KEYS}
        backbone = keras.saving.serialize_keras_object(self.backbone)
        # Quantized head layers take their policy from the backbone's dtype too.
        dtype = quantized_dtype_policy(self, self.backbone.dtype_policy)
        if isinstance(dtype, keras.dtype_policies.DTypePolicyMap):
            backbone["config"]["dtype"] = keras.dtype_policies.serialize(dtype)
        config["backbone"] = backbone
        return config

    # ------------------------------------------------------------------ compile

    def compile_defaults(self):
        """Factories for the "auto" arguments of `compile()`; tasks override this."""
        return {}

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", weighted_metrics="auto", **kwargs):
        """`keras.Model.compile`; each argument left at "auto" takes the task's default.

        The defaults are listed in each task's docstring (`compile_defaults()`).
        """
        given = dict(optimizer=optimizer, loss=loss, metrics=metrics, weighted_metrics=weighted_metrics)
        defaults = self.compile_defaults()
        for name in _COMPILE_ARGUMENTS:
            if isinstance(given[name], str) and given[name] == "auto":
                factory = defaults.get(name)
                given[name] = factory() if factory is not None else None
        super().compile(**given, **kwargs)

    def compile_from_config(self, config):
        # Keras skips recompiling a loaded model whose class overrides `compile()`;
        # the saved arguments are resolved objects, so passing them back is exact.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


class GenerativeTask(Task):
    """A `Task` that generates: its `generation_config` and the `generate` entry points.

    `generation_config` is a dict of Hugging Face `GenerationConfig` settings
    (an imported checkpoint's `generation_config.json`): the defaults of
    `generate()` for every setting the caller does not pass. It is saved in
    `.keras` files and fixed into exported `generate` signatures. Subclasses
    supply `initial_cache`, `call_with_cache` and `generation_adapter()`
    (the decoding core's prefill and step).
    """

    def __init__(self, backbone, inputs, outputs, generation_config=None, **kwargs):
        super().__init__(backbone, inputs=inputs, outputs=outputs, **kwargs)
        self.generation_config = dict(generation_config or {})

    def get_config(self):
        config = super().get_config()
        if self.generation_config:
            config["generation_config"] = dict(self.generation_config)
        return config

    def generation_adapter(self, use_cache=True):
        raise NotImplementedError(f"{type(self).__name__} does not define generation_adapter()")

    def generate(self, inputs, max_new_tokens=None, **kwargs):
        """Generates from `inputs` (the task's prompt dict); see `keras_transformer.generation.generate`.

        Returns `{"token_ids", "padding_mask"}` (and `log_probs` or
        `sequence_scores` on request); settings not passed come from
        `self.generation_config`.

        >>> lm.generate({"token_ids": ids, "padding_mask": mask}, max_new_tokens=20,
        ...             do_sample=True, top_p=0.9, seed=0)
        """
        from keras_transformer.generation import generate  # generation builds on the models

        return generate(self, inputs, max_new_tokens, **kwargs)

    def stream_generate(self, inputs, max_new_tokens=None, **kwargs):
        """Yields the new tokens step by step; see `keras_transformer.generation.stream_generate`."""
        from keras_transformer.generation import stream_generate

        return stream_generate(self, inputs, max_new_tokens, **kwargs)
