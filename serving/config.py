"""Model configuration: TensorFlow Serving's `ModelServerConfig` and version folders.

Models are configured exactly as for `tensorflow_model_server`: either one
model from `--model_name` / `--model_base_path`, or a text-format
`ModelServerConfig` file (`--model_config_file`), parsed with the serving
protos and `google.protobuf.text_format`:

    model_config_list {
      config {
        name: "gpt"  base_path: "/models/gpt"  model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 2 } }
        version_labels { key: "stable" value: 1 }
      }
    }

A model's versions are the children of `base_path` whose whole name parses as
an int64 (leading zeros allowed, so `00000123` is version 123). Everything else
is ignored, which is what makes the export pattern "write to a temporary,
non-numeric folder, then rename it to the version number" safe.
"""

import logging
import os
import re

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import invalid_argument

logger = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1
SUPPORTED_PLATFORMS = ("", "tensorflow")


def single_model_config(name, base_path):
    """The config `--model_name NAME --model_base_path PATH` stands for."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def parse_text_proto(text, message, source="<string>"):
    """Parses text format into `message`, failing as tensorflow_model_server words it.

    `Error parsing text-format tensorflow.serving.ModelServerConfig: 3:7: ...`
    (INVALID_ARGUMENT naming the file), which is what tooling written for TF
    Serving greps for.
    """
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        detail = re.sub(r"^\d+:\d+ : ", "", str(error))
        where = f"{error.GetLine()}:{error.GetColumn()}: " if error.GetLine() is not None else ""
        raise invalid_argument(f"Error parsing text-format {message.DESCRIPTOR.full_name}: {where}{detail} "
                               f"(Invalid protobuf file: '{source}')") from None
    return message


def read_text_proto(path, message, flag):
    """Reads and parses the text proto file a flag names."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise invalid_argument(f"Cannot read {flag} {path}: {error}") from None
    return parse_text_proto(text, message, source=path)


def parse_model_server_config(text, source="<string>"):
    """Parses and validates a text-format `ModelServerConfig`."""
    config = parse_text_proto(text, model_server_config_pb2.ModelServerConfig(), source)
    validate_model_server_config(config)
    return config


def load_model_server_config(path):
    config = read_text_proto(path, model_server_config_pb2.ModelServerConfig(), "--model_config_file")
    validate_model_server_config(config)
    return config


def _message_classes(file_name, package, messages):
    """Message classes for small TF Serving protos that the pip package lacks.

    `messages` maps a message name to [(field, type, number)], where type is
    "string", "bool", "int64" or the name of another message in the list.
    """
    kinds = {"string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
             "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
             "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64}
    file = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        for field, kind, number in fields:
            entry = message.field.add(name=field, number=number, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            if kind in kinds:
                entry.type = kinds[kind]
            else:
                entry.type, entry.type_name = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, f".{package}.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}


# config/ssl_config.proto and config/monitoring_config.proto of tensorflow/serving.
SSLConfig = _message_classes("serving/ssl_config.proto", "tensorflow.serving", {
    "SSLConfig": [("server_key", "string", 1), ("server_cert", "string", 2), ("custom_ca", "string", 3),
                  ("client_verify", "bool", 4)]})["SSLConfig"]
_monitoring = _message_classes("serving/monitoring_config.proto", "tensorflow.serving", {
    "PrometheusConfig": [("enable", "bool", 1), ("path", "string", 2)],
    "MonitoringConfig": [("prometheus_config", "PrometheusConfig", 1)]})
MonitoringConfig, PrometheusConfig = _monitoring["MonitoringConfig"], _monitoring["PrometheusConfig"]


def load_ssl_config(path):
    """`--ssl_config_file`: SSLConfig with PEM texts (server_key, server_cert, custom_ca) and client_verify."""
    config = read_text_proto(path, SSLConfig(), "--ssl_config_file")
    if not config.server_key or not config.server_cert:
        raise invalid_argument(f"SSLConfig in {path} needs both server_key and server_cert (PEM text)")
    if config.client_verify and not config.custom_ca:
        raise invalid_argument(f"SSLConfig in {path}: client_verify needs custom_ca (the CA that signs client certificates)")
    return config


DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def load_monitoring_config(path):
    """`--monitoring_config_file` -> the Prometheus path when enabled, else None."""
    if not path:
        return None
    config = read_text_proto(path, MonitoringConfig(), "--monitoring_config_file")
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_PROMETHEUS_PATH


def load_session_config(path):
    """`--tensorflow_session_config_file`: a text ConfigProto."""
    from tensorflow.core.protobuf import config_pb2

    return read_text_proto(path, config_pb2.ConfigProto(), "--tensorflow_session_config_file")


def validate_model_server_config(config):
    """Checks what server_core.cc `ValidateModelConfigList` checks, plus our limits."""
    if config.WhichOneof("config") == "custom_model_config":
        raise invalid_argument("custom_model_config is not supported; use model_config_list")
    names = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise invalid_argument(f"A model config has no name: {text_format.MessageToString(model, as_one_line=True)}")
        if model.name in names:
            raise invalid_argument(f"Illegal to list model {model.name} multiple times in config list")
        names.add(model.name)
        if not model.base_path:
            raise invalid_argument(f"Model {model.name} has no base_path")
        if model.model_platform not in SUPPORTED_PLATFORMS:
            raise invalid_argument(
                f"Model {model.name} requests unsupported platform {model.model_platform}; "
                "this server loads TensorFlow SavedModels only (model_platform: 'tensorflow')")
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise invalid_argument(f"Model {model.name}: specific version policy lists no versions")


def parse_version(name):
    """The int64 version a folder name stands for, or None (absl::SimpleAtoi rules)."""
    text = name.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    if not -(2**63) <= value <= INT64_MAX:
        return None
    return value


def list_versions(base_path):
    """{version: path} of the numeric child folders of `base_path`.

    Raises OSError when `base_path` cannot be listed. Duplicate numbers
    (`7` and `007`) log a warning and the first name in sorted order wins.
    """
    versions = {}
    for name in sorted(os.listdir(base_path)):
        version = parse_version(name)
        path = os.path.join(base_path, name)
        if version is None or version < 0 or not os.path.isdir(path):
            continue
        if version in versions:
            logger.warning("Duplicate version %d of %s: using %s, ignoring %s",
                           version, base_path, versions[version], path)
            continue
        versions[version] = path
    return versions


def aspired_versions(policy, available):
    """The versions a `ServableVersionPolicy` wants loaded, out of `available`."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(available)
    if choice == "specific":
        wanted = set(policy.specific.versions)
        missing = sorted(wanted - set(available))
        if missing:
            logger.warning("Specific versions %s not found on disk", missing)
        return wanted & set(available)
    count = max(policy.latest.num_versions, 1) if choice == "latest" else 1
    return set(sorted(available)[-count:])
