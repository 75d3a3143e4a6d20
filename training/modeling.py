"""The model of a run: fresh from a preset, or from --init weights, with the task's head.

--init accepts a finished run's OUTPUT folder (its `model.keras`, `tokenizer/`
and `config.json`), a `.keras` file (a `tokenizer/` and `config.json` beside
it are used when present), or a Hugging Face folder (`config.json` +
`model.safetensors`, imported with `keras_transformer.convert`; it carries no
tokenizer of ours, so pass --tokenizer to a text task). Loaded models are
rebuilt under the run's dtype policy and inside the strategy scope, weights
copied over. ViT runs (classify-images) have no tokenizer: their images are
resized to the backbone's `image_size` (`backbone_config`).
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
    ViTBackbone,
    ViTConfig,
    ViTImageClassifier,
    get_preset,
)
from keras_transformer.models.backbone import Backbone, Task
from keras_transformer.models.lora import has_lora, merged_copy
from keras_transformer.run_folder import MODEL_FILE, QA_SETTINGS, RUN_CONFIG, TOKENIZER_DIR
from training.config import DEFAULT_PRESETS

FORMAT = "keras_transformer.training"
FORMAT_VERSION = 1
MODEL_CONFIG_FILE = RUN_CONFIG
BACKBONES = {"gpt": GPTBackbone, "bert": BertBackbone, "t5": T5Backbone, "vit": ViTBackbone}
CLASSIFIERS = {"classify": BertClassifier, "classify-images": ViTImageClassifier}  # task -> head with num_classes
HF_MODEL_TYPES = {"bert": "bert", "gpt2": "gpt", "t5": "t5", "vit": "vit"}  # config.json model_type -> family


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
    raise ValueError(f"{type(model).__name__} is not a keras_transformer BERT, GPT, T5 or ViT model")


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
        return HF_MODEL_TYPES.get(described.get("model_type"))
    try:
        with zipfile.ZipFile(path) as archive:
            class_name = json.loads(archive.read("config.json")).get("class_name", "")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"--init {path!r} is not a readable .keras file ({error})") from None
    for prefix, family in (("Bert", "bert"), ("GPT", "gpt"), ("T5", "t5"), ("ViT", "vit")):
        if class_name.startswith(prefix):
            return family
    raise ValueError(f"--init {path!r} holds a {class_name}, not a keras_transformer BERT, GPT, T5 or ViT model")


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


def preset_config(config, family, vocabulary_size=None):
    """The model config of a fresh run: the preset, then --image-size and --model-option (and the
    tokenizer's vocabulary size for text families)."""
    preset = config.preset or DEFAULT_PRESETS[family]
    options = {} if vocabulary_size is None else {"vocabulary_size": vocabulary_size}
    options.update({"image_size": config.image_size} if config.image_size else {}, **config.model_options)
    model_config = get_preset(preset, family)
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(model_config)})
    if unknown:
        raise ValueError(f"--model-option {unknown} are not {type(model_config).__name__} fields; valid: "
                         f"{sorted(f.name for f in dataclasses.fields(model_config))}")
    return model_config.replace(**options)


def fresh_backbone(config, family, vocabulary_size, dtype):
    return BACKBONES[family](**preset_config(config, family, vocabulary_size).to_dict(), dtype=dtype)


def image_config(config, init=None, described=None):
    """The `ViTConfig` a classify-images run will have, known before the model is built (the images
    are resized to its `image_size`): a resumed run's, the --init model's, else the preset's."""
    if described is not None:
        return ViTConfig.from_dict(described["backbone_config"])
    if init is None:
        return preset_config(config, "vit")
    model_config = (init.model if isinstance(init.model, Backbone) else init.model.backbone).model_config
    if config.image_size and config.image_size != model_config.image_size:
        raise ValueError(f"--image-size {config.image_size} differs from the --init model's image_size "
                         f"{model_config.image_size}; leave it out to train at the model's size")
    return model_config


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
    if config.task in CLASSIFIERS:
        head = CLASSIFIERS[config.task]
        if isinstance(source, head) and source.num_classes == num_classes:
            return rebuild(source, dtype)
        backbone = rebuild(backbone, dtype) if init else backbone
        return head(backbone, num_classes=num_classes, dtype=dtype)
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
    if tokenizer_size is None:  # images: no tokenizer
        return
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
