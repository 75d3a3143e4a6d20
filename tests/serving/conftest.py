"""Fixtures: the tiny SavedModels (built once) and one shared server for the API tests."""

import pytest

from tests.serving import models

LM_CONFIG = """
model_config_list {
  config {
    name: "lm" base_path: "%(lm)s" model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config { name: "clf" base_path: "%(clf)s" model_platform: "tensorflow" }
}
"""


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """{"lm1", "lm2", "clf"}: paths of SavedModels built once per session."""
    root = tmp_path_factory.mktemp("built")
    return {
        "lm1": models.build_lm(str(root / "lm1"), 1),
        "lm2": models.build_lm(str(root / "lm2"), 2),
        "clf": models.build_classifier(str(root / "clf")),
    }


@pytest.fixture(scope="session")
def model_base(built, tmp_path_factory):
    """BASE/lm/{1,2} and BASE/clf/1."""
    base = tmp_path_factory.mktemp("models")
    models.install(built["lm1"], str(base / "lm"), 1)
    models.install(built["lm2"], str(base / "lm"), 2)
    models.install(built["clf"], str(base / "clf"), 1)
    return base


@pytest.fixture(scope="session")
def server(model_base):
    """One server for the REST/gRPC API tests: lm (versions 1 and 2, labels) and clf."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from serving import ModelServer, ServerOptions

    config = text_format.Parse(LM_CONFIG % {"lm": model_base / "lm", "clf": model_base / "clf"},
                               model_server_config_pb2.ModelServerConfig())
    options = ServerOptions(model_config=config, port=0, rest_api_port=0, file_system_poll_wait_seconds=0,
                            allow_version_labels_for_unavailable_models=True, max_request_bytes=2**20)
    with ModelServer(options) as running:
        yield running
