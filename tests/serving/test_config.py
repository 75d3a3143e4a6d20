"""Model config files, version folders and policies, and the JSON tensor codec (no server)."""

import os

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from serving import config, json_response, json_tensor
from serving.errors import Code, ServingError
from tensorflow_serving.config import file_system_storage_path_source_pb2 as source_pb2

MODELS_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "serving", "deploy", "models.config")


def test_version_folders(tmp_path):
    for name in ("1", "0003", "17", "tmp-export-4", "4.tmp", "-2", "99999999999999999999"):
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file, not a folder")
    assert config.list_versions(str(tmp_path)) == {
        1: str(tmp_path / "1"), 3: str(tmp_path / "0003"), 17: str(tmp_path / "17")}
    assert [config.parse_version(n) for n in ("007", "+7", "7a", "", " 7", "١")] == [7, 7, None, None, 7, None]
    with pytest.raises(OSError):
        config.list_versions(str(tmp_path / "missing"))


def _policy(text):
    from google.protobuf import text_format

    return text_format.Parse(text, source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy())


def test_version_policies():
    on_disk = {1: "a", 2: "b", 5: "c"}
    assert config.aspired_versions(_policy(""), on_disk) == {5}
    assert config.aspired_versions(_policy("latest { num_versions: 2 }"), on_disk) == {2, 5}
    assert config.aspired_versions(_policy("latest {}"), on_disk) == {5}
    assert config.aspired_versions(_policy("all {}"), on_disk) == {1, 2, 5}
    assert config.aspired_versions(_policy("specific { versions: 1 versions: 9 }"), on_disk) == {1}


def test_model_server_config_parse_and_validate(tmp_path):
    parsed = config.load_model_server_config(MODELS_CONFIG)  # the deploy example is valid
    assert [m.name for m in parsed.model_config_list.config]
    bad = [
        ("model_config_list { config { name: 'a' base_path: '/a' } config { name: 'a' base_path: '/b' } }",
         "Illegal to list model a multiple times"),
        ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'pytorch' } }",
         "unsupported platform pytorch"),
        ("model_config_list { config { name: 'a' } }", "Model a has no base_path"),
        ("custom_model_config { }", "custom_model_config is not supported"),
        ("model_config_list { config { name: 'a' base_path: '/a' oops: 1 } }", "no field named \"oops\""),
    ]
    for text, needle in bad:
        with pytest.raises(ServingError, match=needle):
            config.parse_model_server_config(text)
    with pytest.raises(ServingError, match="Cannot read --model_config_file"):
        config.load_model_server_config(str(tmp_path / "missing.config"))
    single = config.single_model_config("m", "/models/m")
    assert single.model_config_list.config[0].base_path == "/models/m"


def test_float_output_formatting_follows_tf_serving():
    values = np.float32([1.0, 0.1, 9e6, 3e-5, 1 / 3, np.nan, np.inf, -np.inf, -0.0, 16777216])
    assert json_response.encode_tensor(values, "x") == (
        "[1.0,0.1,9e+06,3e-05,0.333333343,NaN,Infinity,-Infinity,-0.0,16777216.0]")
    doubles = np.float64([0.1, 1 / 3, 2.5])
    assert json_response.encode_tensor(doubles, "x") == "[0.1,0.33333333333333331,2.5]"
    # Every float32 survives the round trip through the text exactly.
    rng = np.random.RandomState(0)
    sample = (rng.randn(5000) * 10.0 ** rng.randint(-30, 30, 5000)).astype(np.float32)
    tokens = json_response.encode_tensor(sample, "x")[1:-1].split(",")
    np.testing.assert_array_equal(np.float32([float(t) for t in tokens]), sample)
    assert json_response.encode_tensor(np.array([[b"a", b"\x00"]], object), "raw_bytes") == '[[{"b64": "YQ=="},{"b64": "AA=="}]]'
    assert json_response.encode_tensor(np.zeros((2, 0, 3), np.int32), "x") == "[[],[]]"
    assert json_response.encode_tensor(np.bool_(True), "x") == "true"


def test_json_type_rules():
    parse = json_tensor.tensor_from_json
    assert parse([[1, 2]], types_pb2.DT_INT64).dtype == np.int64
    assert parse(3, types_pb2.DT_FLOAT).shape == ()
    assert parse([16777215], types_pb2.DT_FLOAT)[0] == 16777215
    np.testing.assert_array_equal(parse([{"b64": "YWI"}, "c"], types_pb2.DT_STRING), np.array([b"ab", b"c"], object))
    assert np.isnan(parse(float("nan"), types_pb2.DT_FLOAT))
    failures = [
        ([16777216], types_pb2.DT_FLOAT, "without loss of precision"),
        ([1e39], types_pb2.DT_FLOAT, "without loss of precision"),
        ([True], types_pb2.DT_INT32, "Type: True is not of expected type: int32"),
        ([2**31], types_pb2.DT_INT32, "is not of expected type: int32"),
        ([300], types_pb2.DT_UINT8, "out of range for type: uint8"),
        ([-1], types_pb2.DT_UINT32, "is not of expected type: uint32"),
        ([1], types_pb2.DT_BOOL, "is not of expected type: bool"),
        ([None], types_pb2.DT_FLOAT, "Type: Null"),
        ({"a": 1}, types_pb2.DT_STRING, "Type: Object"),
        ([{"b64": "!"}], types_pb2.DT_STRING, "Unable to base64 decode"),
        ([[1], 2], types_pb2.DT_INT32, "found at incorrect level: 2"),
        ([1, [2]], types_pb2.DT_INT32, "Encountered list at unexpected level"),
        ([1.5], types_pb2.DT_COMPLEX64, "Conversion of JSON Value"),
    ]
    for value, dtype, needle in failures:
        with pytest.raises(ServingError, match=__import__("re").escape(needle)) as caught:
            parse(value, dtype)
        assert caught.value.code in (Code.INVALID_ARGUMENT, Code.UNIMPLEMENTED)


def test_generate_inputs_fill_settings_one_value_per_prompt():
    from serving.client.common import ServingClientError, generate_inputs

    spec = lambda dtype: {"dtype": dtype, "shape": [-1]}  # noqa: E731
    signature = {"inputs": {"prompt": spec("DT_STRING"), "max_new_tokens": spec("DT_INT32"),
                            "temperature": spec("DT_FLOAT"), "seed": spec("DT_INT64")},
                 "outputs": {"generated_text": spec("DT_STRING"), "token_ids": spec("DT_INT32")}}
    inputs, output = generate_inputs(signature, ["a", "é"], {"max_new_tokens": 5})
    assert output == "generated_text"
    assert inputs["prompt"].tolist() == [b"a", "é".encode()]
    assert inputs["max_new_tokens"].tolist() == [5, 5] and inputs["max_new_tokens"].dtype == np.int32
    assert inputs["temperature"].tolist() == [0.0, 0.0] and inputs["seed"].dtype == np.int64
    signature["inputs"]["context"] = spec("DT_STRING")  # two free string inputs: ambiguous
    with pytest.raises(ServingClientError, match="exactly one string input"):
        generate_inputs(signature, ["a"], {})
