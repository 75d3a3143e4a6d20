"""LoRA and int8 models each go train -> export -> TensorFlow-only verification."""

import os

import keras
import numpy as np
import pytest

from keras_transformer.export import export
from keras_transformer.export.verify import problems, run_check
from keras_transformer.models import BertClassifier

IDS = np.random.default_rng(0).integers(1, 250, (4, 8)).astype("int32")
INPUTS = {"token_ids": IDS, "segment_ids": np.zeros_like(IDS), "padding_mask": np.ones_like(IDS)}
LABELS = np.array([0, 1, 2, 1])


def _trained(adapt):
    model = BertClassifier.from_preset("bert_test", num_classes=3)
    adapt(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(INPUTS, LABELS, epochs=2, verbose=0)
    return model


def _served_logits(version_dir, tmp_path):
    from tests.export.helpers import run_in_serving_process

    (outputs,), _ = run_in_serving_process(version_dir, [("serving_default", INPUTS)], str(tmp_path))
    return outputs["logits"]


@pytest.mark.parametrize("mode", ["lora", "int8"])
def test_train_export_verify(mode, tmp_path):
    if mode == "lora":
        model = _trained(lambda m: m.backbone.enable_lora(2))
    else:
        model = _trained(lambda m: None)
        model.quantize("int8")
    expected = keras.ops.convert_to_numpy(model(INPUTS)["logits"])
    version_dir = export(model, str(tmp_path / "model"), warmup=True, model_name="model")
    report = run_check(version_dir)
    assert problems(report) == []
    assert report["xla"] == []
    import tensorflow as tf

    saved = [n for n, _ in tf.train.list_variables(os.path.join(version_dir, "variables", "variables"))
             if n.startswith("_all_variables/")]
    # No adapters: exactly the variables of the same model without LoRA.
    plain = BertClassifier.from_preset("bert_test", num_classes=3)
    if mode == "int8":
        plain.quantize("int8")
    assert len(saved) == len(plain.weights), (len(saved), len(plain.weights), len(model.weights))
    served = _served_logits(version_dir, tmp_path)
    np.testing.assert_allclose(served, expected, atol=1e-4)
