"""ViT: backbone and image classifier (shapes, config, saving, fit, pooling), config checks."""

import numpy as np
import pytest

from keras_transformer.models import list_presets
from keras_transformer.models.vit import ViTBackbone, ViTConfig, ViTImageClassifier, preprocess_images
from tests.test_case import assert_allclose, run_model_saving_test, run_model_test, to_numpy

TINY = dict(image_size=8, patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)


def images(batch=2, size=8):
    return np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype("float32")


def test_backbone():
    run_model_test(
        lambda: ViTBackbone(**TINY),
        {"images": images()},
        {"sequence_output": (2, 5, 8), "pooled_output": (2, 8)},
        run_precision_checks=False,
    )


def test_classifier_fits_and_saves():
    labels = np.array([0, 2])

    def make():
        # No pooler: the head reads the class token (as ViTForImageClassification does).
        model = ViTImageClassifier(ViTBackbone(**TINY, use_pooler=False), num_classes=3)
        model.compile()
        return model

    model, _ = run_model_test(
        make, {"images": images()}, {"logits": (2, 3)}, fit_data=({"images": images()}, labels, None)
    )
    run_model_saving_test(model, {"images": images()})


def test_mean_pooling_without_class_token():
    backbone = ViTBackbone(**TINY, use_class_token=False, use_pooler=False)
    model = ViTImageClassifier(backbone, num_classes=2, pooling="mean")
    x = images()
    sequence = to_numpy(backbone(x)["sequence_output"])
    assert sequence.shape == (2, 4, 8)
    dense = model.output_dense
    expected = sequence.mean(axis=1) @ to_numpy(dense.kernel) + to_numpy(dense.bias)
    assert_allclose(model(x)["logits"], expected, atol=1e-5)
    with pytest.raises(ValueError, match="class token"):
        ViTImageClassifier(backbone, num_classes=2, pooling="token")


def test_other_image_size_and_bad_images():
    backbone = ViTBackbone(**TINY)
    assert tuple(backbone(images(size=12))["sequence_output"].shape) == (2, 10, 8)
    with pytest.raises(ValueError, match="channels last"):
        backbone(np.zeros((1, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="images"):
        backbone({"pixels": images()})


def test_presets_and_parameter_count():
    assert {"vit_tiny", "vit_base_patch16_224", "vit_large_patch16_224"} <= set(list_presets("vit"))
    assert ViTConfig().count_params() == 86_389_248  # transformers' ViTModel (with pooler)
    backbone = ViTBackbone.from_preset("vit_tiny")
    assert backbone.count_params() == backbone.model_config.count_params()
    model = ViTImageClassifier(backbone, num_classes=4)
    assert model.count_params() == backbone.model_config.count_params(num_classes=4)


def test_config_validation():
    with pytest.raises(ValueError, match="num_heads must divide hidden_dim"):
        ViTConfig(hidden_dim=10, num_heads=3)
    with pytest.raises(ValueError, match="use_pooler"):
        ViTConfig(use_class_token=False, use_pooler=True)
    with pytest.raises(ValueError, match="image_mean"):
        ViTConfig(image_mean=(0.5,))


def test_preprocess_images():
    config = ViTConfig(**TINY)
    pixels = np.full((1, 16, 16, 3), 255.0, "float32")
    out = to_numpy(preprocess_images(pixels, config))
    assert out.shape == (1, 8, 8, 3)
    assert_allclose(out, np.ones_like(out), atol=1e-5)  # (1 - 0.5) / 0.5
