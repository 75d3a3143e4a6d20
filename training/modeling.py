"""The model of a run: fresh from a preset, or from --init weights, with the task's head.

--init accepts a finished run's OUTPUT folder (its `model.keras`, `tokenizer/`
and `config.json`), a `.keras` file (a `tokenizer/` and `config.json` beside
it are used when present), or a Hugging Face folder (`config.json` +
`model.safetensors`, imported with `keras_transformer.convert`; it carries no
tokenizer of ours, so pass --tokenizer). Loaded models are rebuilt under the
run's dtype policy and inside the strategy scope, weights copied over.
"""

import dataclasses
import json
import os
import zipfile

import keras

from keras_transformer.models import (
    BertBackbone,
    BertClassifier,
    BertMaskedLM,
    BertQuestionAnswering,
    GPTBackbone,
    GPTCausalLM,
    T5Backbone,
    T5Seq2SeqLM,
    get_preset,
)
from keras_transformer.models.backbone import Backbone, Task
from keras_transformer.models.lora import has_lora, merged_copy
from keras_transformer.run_folder import MODEL_FILE, QA_SETTINGS, RUN_CONFIG, TOKENIZER_DIR
from training.config import DEFAULT_PRESETS

FORMAT = "keras_transformer.training"
FORMAT_VERSION = 1
MODEL_CONFIG_FILE = RUN_CONFIG
BACKBONES = {"gpt": GPTBackbone, "bert": BertBackbone, "t5": T5Backbone}


@dataclasses.dataclass
class InitSource:
    """What --init brought: a (task or backbone) model, its family, and what was saved beside it."""

    model: keras.Model
    family: str
    path: str
    tokenizer_dir: str = None
    labels: list = None


def family_of(model):
    backbone = model if isinstance(model, Backbone) else getattr(model, "backbone", None)
    for family, cls in BACKBONES.items():
        if isinstance(backbone, cls):
            return family
    raise ValueError(f"{type(model).__name__} is not a keras_transformer BERT, GPT or T5 model")


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read it ({error})") from None


def peek_family(path):
    """The family of the model at --init `path`, read from its config files (nothing is built)."""
    if not os.path.exists(path):
        raise ValueError(f"--init {path!r} does not exist")
    if os.path.isdir(path):
        described = _read_json(os.path.join(path, MODEL_CONFIG_FILE))
        if described.get("format") == FORMAT:
            return described["family"]
        return {"bert": "bert", "gpt2": "gpt", "t5": "t5"}.get(described.get("model_type"))
    try:
        with zipfile.ZipFile(path) as archive:
            class_name = json.loads(archive.read("config.json")).get("class_name", "")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"--init {path!r} is not a readable .keras file ({error})") from None
    for prefix, family in (("Bert", "bert"), ("GPT", "gpt"), ("T5", "t5")):
        if class_name.startswith(prefix):
            return family
    raise ValueError(f"--init {path!r} holds a {class_name}, not a keras_transformer BERT, GPT or T5 model")


def load_init(path):
    """The `InitSource` at `path` (see the module docstring); ValueError when it is none of those."""
    if not os.path.exists(path):
        raise ValueError(f"--init {path!r} does not exist")
    folder, keras_file = None, None
    if os.path.isdir(path):
        config_path = os.path.join(path, MODEL_CONFIG_FILE)
        described = _read_json(config_path) if os.path.isfile(config_path) else {}
        if described.get("format") == FORMAT:
            folder, keras_file = path, os.path.join(path, MODEL_FILE)
            if not os.path.isfile(keras_file):
                raise ValueError(f"--init {path!r} holds no model.keras: that run has not finished; "
                                 f"resume it first (the same command again)")
        elif "model_type" in described:
            from keras_transformer.convert import from_huggingface

            model = from_huggingface(path)
            return InitSource(model, family_of(model), path)
        else:
            raise ValueError(f"--init {path!r} is neither a training OUTPUT folder (config.json with "
                             f"format {FORMAT!r}) nor a Hugging Face folder (config.json with model_type)")
    elif path.endswith(".keras"):
        folder, keras_file = os.path.dirname(path) or ".", path
    else:
        raise ValueError(f"--init {path!r} must be a .keras file or a folder")
    model = keras.saving.load_model(keras_file, compile=False)  # the classes registered on import above
    tokenizer_dir = os.path.join(folder, TOKENIZER_DIR)
    labels = None
    config_path = os.path.join(folder, MODEL_CONFIG_FILE)
    if os.path.isfile(config_path):
        labels = _read_json(config_path).get("labels")
    return InitSource(model, family_of(model), path,
                      tokenizer_dir if os.path.isdir(tokenizer_dir) else None, labels)


# ------------------------------------------------------------------ building


def _with_dtype(config, dtype):
    config = dict(config, dtype=dtype)
    if isinstance(config.get("backbone"), dict):  # a Task: its backbone is serialized inside
        backbone = dict(config["backbone"])
        backbone["config"] = dict(backbone["config"], dtype=dtype)
        config["backbone"] = backbone
    return config


def rebuild(model, dtype):
    """A copy of `model` (same class and config) under `dtype`, with the same weights."""
    copy = type(model).from_config(_with_dtype(model.get_config(), dtype))
    copy.set_weights(model.get_weights())
    return copy


def fresh_backbone(config, family, vocabulary_size, dtype):
    preset = config.preset or DEFAULT_PRESETS[family]
    options = {"vocabulary_size": vocabulary_size, **config.model_options}
    model_config = get_preset(preset, family)
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(model_config)})
    if unknown:
        raise ValueError(f"--model-option {unknown} are not {type(model_config).__name__} fields; valid: "
                         f"{sorted(f.name for f in dataclasses.fields(model_config))}")
    model_config = model_config.replace(**options)
    return BACKBONES[family](**model_config.to_dict(), dtype=dtype)


def build_model(config, family, vocabulary_size, dtype, init=None, num_classes=None):
    """The task model of the run (call inside `strategy.scope()`)."""
    if init is None:
        backbone = fresh_backbone(config, family, vocabulary_size, dtype)
        source = backbone
    else:
        if config.model_options:
            raise ValueError("--model-option cannot change the architecture of --init weights")
        source = init.model
        backbone = source if isinstance(source, Backbone) else source.backbone
    if config.task == "classify":
        if isinstance(source, BertClassifier) and source.num_classes == num_classes:
            return rebuild(source, dtype)
        backbone = rebuild(backbone, dtype) if init else backbone
        return BertClassifier(backbone, num_classes=num_classes, dtype=dtype)
    if config.task == "qa":
        if isinstance(source, BertQuestionAnswering):
            return rebuild(source, dtype)
        return BertQuestionAnswering(rebuild(backbone, dtype) if init else backbone, dtype=dtype)
    head = {"gpt": GPTCausalLM, "bert": BertMaskedLM, "t5": T5Seq2SeqLM}[family]
    if isinstance(source, head):
        return rebuild(source, dtype)
    if isinstance(source, Task) and not isinstance(source, head):
        source = source.backbone  # e.g. a BertClassifier's encoder, pre-trained further
    return head(rebuild(source, dtype) if init else backbone, dtype=dtype)


def check_vocabulary(model, tokenizer_size):
    size = model.backbone.model_config.vocabulary_size
    if tokenizer_size > size:
        raise ValueError(f"the tokenizer has {tokenizer_size} ids but the model's vocabulary_size is {size}: "
                         f"use the model's own tokenizer (--tokenizer)")


def describe(model, family, config, labels, shapes, qa_settings=None):
    """The `config.json` of a run folder: what the model is and how to rebuild it (and, for qa, how its
    questions and contexts become rows: what export needs)."""
    backbone = model.backbone
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family,
        "task": config.task,
        "model_class": type(model).__name__,
        "backbone_config": backbone.model_config.to_dict(),
        "labels": labels or None,
        "sequence_length": shapes.sequence_length,
        "target_length": shapes.target_length,
        QA_SETTINGS: qa_settings.to_json() if qa_settings else None,
        "dtype_policy": model.dtype_policy.name,
        "keras_config": {k: v for k, v in keras.saving.serialize_keras_object(model).items()
                         if k not in ("compile_config", "build_config")},
    }


def inference_copy(model):
    """An uncompiled copy of `model` for `model.keras`: it loads with a plain
    `import keras_transformer` (no optimizer or schedule classes of this package)."""
    if has_lora(model):
        return merged_copy(model)  # adapters merged into the kernels
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy
