"""Generation settings with Hugging Face `GenerationConfig` names, defaults and checks.

A model's `generation_config` is a plain dict of these names (an imported
checkpoint's `generation_config.json`, plus the generation keys older
checkpoints keep in `config.json`, and T5's `task_specific_params`). It is
saved in `.keras` files and exported SavedModels. `resolve()` merges, in
increasing priority: the defaults below, the model's dict, a task's
`task_specific_params` entry, and the caller's keyword arguments.
"""

import json
import os

DEFAULTS = {
    "max_length": 20,  # prompt included (seq2seq: the start token), used without max_new_tokens
    "max_new_tokens": None,
    "min_length": 0,
    "min_new_tokens": 0,
    "do_sample": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "length_penalty": 1.0,
    "early_stopping": False,
    "num_return_sequences": 1,
    "eos_token_id": None,
    "decoder_start_token_id": None,
    "stop_strings": None,
}
# Keys of a Hugging Face model config that transformers also reads as generation defaults.
MODEL_CONFIG_KEYS = ("eos_token_id", "decoder_start_token_id")
LEGACY_KEYS = tuple(k for k in DEFAULTS if k not in ("max_new_tokens", "stop_strings"))


def from_huggingface(folder, model_config):
    """The generation dict of a checkpoint folder: generation_config.json over config.json's keys."""
    settings = {}
    for key in MODEL_CONFIG_KEYS + LEGACY_KEYS:
        if model_config.get(key) is not None and model_config.get(key) != DEFAULTS.get(key):
            settings[key] = model_config[key]
    if model_config.get("task_specific_params"):
        settings["task_specific_params"] = model_config["task_specific_params"]
    path = os.path.join(folder, "generation_config.json")
    if os.path.isdir(folder) and os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
        settings.update({k: v for k, v in stored.items() if k in DEFAULTS})
    return settings


def _stop_ids(value):
    if value is None:
        return ()
    return (int(value),) if isinstance(value, int) else tuple(int(i) for i in value)


def resolve(model_settings, task=None, **overrides):
    """Effective settings: defaults < model dict < task params < explicit (non-None) overrides."""
    settings = dict(DEFAULTS)
    model_settings = dict(model_settings or {})
    tasks = model_settings.pop("task_specific_params", None) or {}
    settings.update({k: v for k, v in model_settings.items() if k in DEFAULTS})
    if task is not None:
        if task not in tasks:
            raise ValueError(f"unknown task {task!r}; this model's task_specific_params has {sorted(tasks)}")
        settings.update({k: v for k, v in tasks[task].items() if k in DEFAULTS})
    unknown = sorted(set(overrides) - set(DEFAULTS) - {"eos_token_id"})
    if unknown:
        raise ValueError(f"unknown generation settings {unknown}; valid: {sorted(DEFAULTS)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings["eos_token_id"] = _stop_ids(settings["eos_token_id"])
    check(settings)
    return settings


def _positive_int(settings, name, minimum=1):
    value = settings[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; received {name}={value!r}")


def check(settings):
    """ValueError naming the first setting out of range."""
    if settings["max_new_tokens"] is not None:
        _positive_int(settings, "max_new_tokens")
    for name, minimum in (("num_beams", 1), ("num_return_sequences", 1), ("no_repeat_ngram_size", 0),
                          ("min_new_tokens", 0), ("min_length", 0), ("top_k", 0)):
        _positive_int(settings, name, minimum)
    if not settings["temperature"] > 0:
        raise ValueError(f"temperature must be > 0; received temperature={settings['temperature']}")
    if not 0.0 < settings["top_p"] <= 1.0:
        raise ValueError(f"top_p must be in (0, 1]; received top_p={settings['top_p']!r}")
    if not settings["repetition_penalty"] > 0:
        raise ValueError(f"repetition_penalty must be > 0; received {settings['repetition_penalty']!r}")
    if settings["early_stopping"] not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never'; received {settings['early_stopping']!r}")
    if settings["num_return_sequences"] > settings["num_beams"] and not settings["do_sample"]:
        raise ValueError(f"num_return_sequences={settings['num_return_sequences']} needs num_beams >= it "
                         f"(or do_sample=True); received num_beams={settings['num_beams']}")
    if settings["num_beams"] > 1 and settings["do_sample"]:
        raise ValueError("beam sampling (num_beams > 1 with do_sample=True) is not supported")
    for name in ("bad_words_ids",):
        value = settings[name]
        if value is not None and (not isinstance(value, (list, tuple)) or
                                  not all(isinstance(w, (list, tuple)) and w for w in value)):
            raise ValueError(f"{name} must be a list of non-empty id lists; received {value!r}")
