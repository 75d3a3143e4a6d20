"""Presets by name, as `keras.applications` has: one registry for every family."""

_PRESETS = {}  # name -> (backbone class name, config)


def register_preset(name, family, config):
    if name in _PRESETS:
        raise ValueError(f"preset {name!r} is registered twice")
    _PRESETS[name] = (family, config)


def list_presets(family=None):
    """Preset names, sorted; only those of `family` ("bert", "gpt", "t5") when given."""
    return sorted(n for n, (f, _) in _PRESETS.items() if family is None or f == family)


def get_preset(name, family=None):
    """The config registered as `name`; an unknown name lists the valid ones."""
    valid = list_presets(family)
    if name not in valid:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(valid)}")
    return _PRESETS[name][1]
