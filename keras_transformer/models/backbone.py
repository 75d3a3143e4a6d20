"""Base classes of every family: a functional backbone and a task model wrapping it."""

import keras

from keras_transformer.models.presets import get_preset

_BASE_KEYS = ("name", "trainable", "dtype")


def _keep_dtype_policy(model, dtype):
    # Keras' functional constructor drops `dtype`; keep it so get_config round-trips.
    if dtype is not None:
        model.dtype_policy = dtype


class Backbone(keras.Model):
    """A functional model whose constructor arguments are its family's config fields.

    Subclasses set `config_class` and `family`, create their layers as
    attributes, then named `keras.Input`s, then call
    `super().__init__(inputs=..., outputs=..., config=...)`. `get_config()`
    returns exactly the constructor arguments and `from_config` is
    `cls(**config)`.
    """

    config_class = None
    family = None

    def __init__(self, inputs, outputs, config, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        _keep_dtype_policy(self, kwargs.get("dtype"))
        self._model_config = config

    @property
    def model_config(self):
        """The family's config dataclass this backbone was built from."""
        return self._model_config

    @classmethod
    def from_preset(cls, name, **overrides):
        """A freshly initialised backbone of preset `name`; `overrides` replace config fields."""
        config = get_preset(name, cls.family).replace(**overrides)
        return cls(**config.to_dict())

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key in _BASE_KEYS}
        config.update(self._model_config.to_dict())
        return config

    @classmethod
    def from_config(cls, config):
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


class Task(keras.Model):
    """A functional model made of a backbone plus a head; reuses the backbone's layers.

    Subclasses set `backbone_class`; their constructor takes `backbone` first.
    `get_config()` serialises the backbone; `from_config` restores it.
    """

    backbone_class = None

    def __init__(self, backbone, inputs, outputs, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        _keep_dtype_policy(self, kwargs.get("dtype"))
        self.backbone = backbone

    @classmethod
    def from_preset(cls, name, backbone_overrides=None, **kwargs):
        """A task model on a freshly initialised backbone of preset `name`."""
        backbone = cls.backbone_class.from_preset(name, **(backbone_overrides or {}))
        return cls(backbone, **kwargs)

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key in _BASE_KEYS}
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        return config

    def _compile_token_model(self, optimizer, loss, weighted_metrics, default_optimizer, **kwargs):
        """`keras.Model.compile` with token-level defaults for each "auto" argument."""
        super().compile(
            optimizer=default_optimizer() if optimizer == "auto" else optimizer,
            loss=token_cross_entropy() if loss == "auto" else loss,
            weighted_metrics=token_metrics() if weighted_metrics == "auto" else weighted_metrics,
            **kwargs,
        )

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
