"""Hugging Face ViT import: parity with transformers' outputs (channels-last images)."""

import os

import numpy as np
import pytest

from keras_transformer.convert import from_huggingface
from keras_transformer.models.vit import ViTBackbone, ViTImageClassifier
from tests.convert.test_bert import _check_close

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface")
MODEL, CLASSIFIER = os.path.join(FIXTURES, "vit_model"), os.path.join(FIXTURES, "vit_classifier")


def _expected(path):
    with np.load(os.path.join(path, "expected.npz")) as data:
        return dict(data)


def test_vit_model_parity():
    expected = _expected(MODEL)
    backbone = from_huggingface(MODEL)
    assert isinstance(backbone, ViTBackbone) and backbone.model_config.use_pooler
    out = backbone({"images": expected["images"]})
    _check_close("vit last_hidden_state", out["sequence_output"], expected["last_hidden_state"])
    _check_close("vit pooler_output", out["pooled_output"], expected["pooler_output"])


def test_vit_other_image_size_matches_interpolate_pos_encoding():
    # 24 x 22 images: a 6 x 5 patch grid from a 4 x 4 position table (bicubic), remainder dropped.
    expected = _expected(MODEL)
    backbone = from_huggingface(MODEL)
    out = backbone(expected["images_other_size"])
    assert out["sequence_output"].shape == (2, 31, 32)
    _check_close(
        "vit other size", out["sequence_output"], expected["last_hidden_state_other_size"]
    )


def test_vit_classifier_parity():
    expected = _expected(CLASSIFIER)
    model = from_huggingface(CLASSIFIER)
    assert isinstance(model, ViTImageClassifier) and model.num_classes == 5
    assert not model.backbone.model_config.use_pooler
    _check_close("vit logits", model(expected["images"])["logits"], expected["logits"])


def test_vit_rejects_unsupported_config(tmp_path):
    import json
    import shutil

    folder = tmp_path / "vit"
    shutil.copytree(MODEL, folder)
    config = json.loads((folder / "config.json").read_text())
    config["qkv_bias"] = False
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="qkv_bias"):
        from_huggingface(str(folder))
