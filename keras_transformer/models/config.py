"""The base of every family's configuration: a dataclass that round-trips through JSON."""

import dataclasses
import json
import os


@dataclasses.dataclass
class ModelConfig:
    """Hyperparameters of one model; subclasses add their fields.

    One vocabulary across families: `vocabulary_size, num_layers, num_heads,
    num_key_value_heads, hidden_dim, intermediate_dim, dropout,
    max_sequence_length, layer_norm_epsilon`. Values are checked on creation;
    a bad one raises a ValueError naming the field and the value received.
    """

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Checks every field; subclasses extend it (and call `super().validate()`)."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            positive = field.metadata.get("positive")
            if positive and not (
                isinstance(value, int) and not isinstance(value, bool) and value > 0
            ):
                if not (value is None and field.metadata.get("optional")):
                    raise ValueError(
                        f"{type(self).__name__}.{field.name} must be a positive integer; "
                        f"received {field.name}={value!r}"
                    )
        dropout = getattr(self, "dropout", 0.0)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received dropout={dropout!r}")

    def count_params(self):
        """The backbone's parameter count, computed from the fields alone (every family has one)."""
        raise NotImplementedError(f"{type(self).__name__} must implement count_params()")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(names)}"
            )
        return cls(**values)

    def to_json(self, path=None):
        """The config as JSON text; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, path_or_text):
        """From a JSON file path or JSON text."""
        if os.path.exists(str(path_or_text)):
            with open(path_or_text, encoding="utf-8") as handle:
                path_or_text = handle.read()
        try:
            values = json.loads(path_or_text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{cls.__name__}.from_json: not valid JSON ({error})") from None
        return cls.from_dict(values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def positive(default, optional=False):
    """A dataclass field that must be a positive int (or None when optional)."""
    return dataclasses.field(default=default, metadata={"positive": True, "optional": optional})
