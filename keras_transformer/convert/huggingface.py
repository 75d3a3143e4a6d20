"""Reads a `save_pretrained` folder (config.json + model.safetensors) and dispatches by family.

No torch is needed: tensors are read with `safetensors.numpy`. Each family's
module exposes `convert(config: dict, weights: WeightReader) -> task model`.
"""

import importlib
import json
import os

import numpy as np

# model_type in config.json -> module with `convert(config, weights)`.
CONVERTERS = {
    "bert": "keras_transformer.convert.bert",
    "gpt2": "keras_transformer.convert.gpt2",
    "t5": "keras_transformer.convert.t5",
    "vit": "keras_transformer.convert.vit",
}


class WeightReader:
    """The checkpoint's tensors, handed out by name, with every use accounted for.

    `take(name)` returns a float32 NumPy array and marks it used; `assign(variable,
    name, transform)` also checks the shape. `finish()` raises if any tensor was
    never used (an unexpected weight). A missing name raises at once.
    """

    def __init__(self, tensors, source, ignored_suffixes=()):
        self.tensors = tensors
        self.source = source
        self.used = set()
        self.ignored_suffixes = tuple(ignored_suffixes)

    def has(self, name):
        return name in self.tensors

    def take(self, name):
        if name not in self.tensors:
            raise ValueError(f"{self.source}: missing weight {name!r}")
        self.used.add(name)
        return np.asarray(self.tensors[name], dtype="float32")

    def assign(self, variable, name, transform=None):
        value = self.take(name)
        if transform is not None:
            value = transform(value)
        expected = tuple(variable.shape)
        if tuple(value.shape) != expected:
            raise ValueError(
                f"{self.source}: weight {name!r} has shape {tuple(value.shape)} after "
                f"conversion, but {variable.path} expects {expected}"
            )
        variable.assign(value)

    def finish(self):
        unused = sorted(
            n for n in self.tensors if n not in self.used and not n.endswith(self.ignored_suffixes)
        )
        if unused:
            raise ValueError(f"{self.source}: unexpected weight(s) not used by the model: {unused}")


def read_checkpoint(path):
    """(config dict, {name: array}) from a `save_pretrained` folder."""
    from safetensors.numpy import load_file

    config_path = os.path.join(path, "config.json")
    weights_path = os.path.join(path, "model.safetensors")
    for required in (config_path, weights_path):
        if not os.path.isfile(required):
            raise ValueError(f"{path!r} is not a Hugging Face checkpoint folder: {required!r} is missing")
    with open(config_path, encoding="utf-8") as handle:
        try:
            config = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{config_path!r} is not valid JSON: {error}") from None
    return config, load_file(weights_path)


def from_huggingface(path):
    """The task model matching the checkpoint at `path`, with every weight loaded.

    BERT: `BertForMaskedLM` -> `BertMaskedLM` (encoder outputs reachable through
    `.backbone`), `BertForPreTraining` -> the same with the next-sentence head,
    `BertModel` -> `BertBackbone`; GPT-2 -> `GPTCausalLM`; T5 -> `T5Seq2SeqLM`; ViT: `ViTModel` -> `ViTBackbone`,
    `ViTForImageClassification` -> `ViTImageClassifier`.
    Missing, unexpected or mis-shaped tensors raise.
    """
    config, tensors = read_checkpoint(path)
    model_type = config.get("model_type")
    if model_type not in CONVERTERS:
        raise ValueError(
            f"{path!r}: unsupported model_type {model_type!r}; supported: {sorted(CONVERTERS)}"
        )
    module = importlib.import_module(CONVERTERS[model_type])
    model = module.convert(config, WeightReader(tensors, source=path))
    if hasattr(model, "generation_adapter"):  # generation_config.json (and config.json's keys) as defaults
        from keras_transformer.generation.config import from_huggingface as generation_settings

        model.generation_config = generation_settings(path, config)
    return model
