"""ViT image classifier exports: `classify_image` on JPEG/PNG bytes, verified, served over REST (b64) and gRPC."""

import base64
import json
import os

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from keras_transformer.images import synthetic_images
from keras_transformer.models.vit import preprocess_images
from tests.serving.helpers import rest_json

LABELS = ["circle", "cross", "stripes"]


@pytest.fixture(scope="module")
def vit_export(tmp_path_factory):
    from keras_transformer.export import export
    from keras_transformer.models import ViTBackbone, ViTImageClassifier

    keras.utils.set_random_seed(7)
    model = ViTImageClassifier(ViTBackbone.from_preset("vit_tiny"), num_classes=3)
    path = export(model, str(tmp_path_factory.mktemp("models") / "vit"), labels=LABELS, model_name="vit")
    return model, path


@pytest.fixture(scope="module")
def server(vit_export):
    from serving import ModelServer, ServerOptions

    options = ServerOptions(model_name="vit", model_base_path=os.path.dirname(vit_export[1]), port=0,
                            rest_api_port=0, file_system_poll_wait_seconds=0)
    with ModelServer(options) as running:
        yield running


def _pictures():
    """Pixels of three images (the model's 32 x 32, a 45 x 27 one, a 20 x 60 one) and their PNG / JPEG files."""
    _, images, _ = synthetic_images(per_class=1, size=60, class_names=["circle", "cross", "vertical_stripes"])
    pixels = [images[0][:32, :32], images[1][:45, :27], images[2][:20]]
    files = [tf.io.encode_png(pixels[0]).numpy(), tf.io.encode_jpeg(pixels[1], quality=95).numpy(),
             tf.io.encode_png(pixels[2]).numpy()]
    pixels[1] = tf.io.decode_jpeg(files[1]).numpy()  # what the JPEG decodes to
    return pixels, files


def _expected(model, pixels):
    """Probabilities of the in-process Keras model on the decoded pixels, preprocessed as in training."""
    config = model.backbone.model_config
    logits = [np.asarray(model(preprocess_images(p[None], config), training=False)["logits"])[0] for p in pixels]
    return np.asarray(tf.nn.softmax(np.stack(logits)))


def test_the_export_is_verified_and_documents_b64_requests(vit_export):
    from keras_transformer.export import verify

    _, path = vit_export
    report = verify(path)
    assert report["problems"] == [], report["problems"]
    assert report["comparisons"]["classify_image"]["ok"] and report["comparisons"]["serving_default"]["ok"]
    assert report["signatures"]["classify_image"]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [None]}}
    assert report["signatures"]["classify_image"]["outputs"]["probabilities"]["shape"] == [None, 3]
    assert '"signature_name": "classify_image", "instances": [{"image_bytes": {"b64": "iVBORw0KGgo' in \
        report["examples"]["classify_image"]["rest"]  # a PNG, base64-encoded
    info = json.load(open(os.path.join(path, "assets.extra", "keras_transformer_export.json")))
    assert info["tokenizer"] is None and str(LABELS) in info["signatures"]["classify_image"]["description"]


def test_classify_image_over_rest_and_grpc_equals_the_keras_model(vit_export, server):
    model, _ = vit_export
    pixels, files = _pictures()
    expected = _expected(model, pixels)
    body = {"signature_name": "classify_image",
            "instances": [{"image_bytes": {"b64": base64.b64encode(f).decode()}} for f in files]}
    status, answer = rest_json(server.rest_port, "POST", "/v1/models/vit:predict", body)
    assert status == 200, answer
    rows = answer["predictions"]
    np.testing.assert_allclose([row["probabilities"] for row in rows], expected, atol=1e-5)
    assert [row["label_id"] for row in rows] == expected.argmax(-1).tolist()
    assert [row["label"] for row in rows] == [LABELS[i] for i in expected.argmax(-1)]

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "vit", "classify_image"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(np.array(files, dtype=object)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["probabilities"]),
                                  np.array([row["probabilities"] for row in rows], "float32"))
    assert tf.make_ndarray(response.outputs["label"]).tolist() == [row["label"].encode() for row in rows]


def test_the_client_sends_image_files(vit_export, server, tmp_path, capsys):
    from serving.client.__main__ import main

    _, files = _pictures()
    paths = [tmp_path / "a.png", tmp_path / "b.jpg"]
    for path, data in zip(paths, files):
        path.write_bytes(data)
    expected = _expected(vit_export[0], _pictures()[0][:2])
    for target in (["--rest", f"127.0.0.1:{server.rest_port}"], ["--grpc", f"127.0.0.1:{server.grpc_port}"]):
        assert main(target + ["classify-image", "vit"] + [str(p) for p in paths]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer["label"] == [LABELS[i] for i in expected.argmax(-1)]
        np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-5)
    assert main(["--rest", f"127.0.0.1:{server.rest_port}", "classify-image", "vit", str(tmp_path / "none.png")]) == 1
    assert "none.png: cannot read it" in capsys.readouterr().err


def test_bad_image_bytes_are_rejected_with_a_message_naming_the_input(server):
    _, files = _pictures()
    body = {"signature_name": "classify_image", "inputs": {"image_bytes": [
        {"b64": base64.b64encode(files[0]).decode()}, {"b64": ""}, {"b64": base64.b64encode(b"<html>").decode()}]}}
    status, answer = rest_json(server.rest_port, "POST", "/v1/models/vit:predict", body)
    assert status == 400
    message = answer["error"]
    assert "image_bytes must hold JPEG or PNG images (encoded file bytes); rows that are not:" in message
    assert "[1 2]" in message and "[0 6]" in message  # the rows, and their lengths in bytes

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "vit", "classify_image"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(np.array([b"not an image"], dtype=object)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image_bytes must hold JPEG or PNG images" in caught.value.details()

    corrupt = files[0][:40]  # a PNG header, then nothing: the decoder's own error, still INVALID_ARGUMENT
    body = {"signature_name": "classify_image",
            "instances": [{"image_bytes": {"b64": base64.b64encode(corrupt).decode()}}]}
    status, answer = rest_json(server.rest_port, "POST", "/v1/models/vit:predict", body)
    assert status == 400 and "PNG" in answer["error"]


def test_serving_default_takes_normalised_pixels_of_any_size(vit_export, server):
    model, _ = vit_export
    images = np.random.default_rng(0).uniform(-1, 1, (2, 24, 40, 3)).astype("float32")
    status, answer = rest_json(server.rest_port, "POST", "/v1/models/vit:predict", {"inputs": images.tolist()})
    assert status == 200, answer
    np.testing.assert_allclose(answer["outputs"], model(images, training=False)["logits"], atol=1e-5)
    status, answer = rest_json(server.rest_port, "POST", "/v1/models/vit:predict",
                               {"inputs": np.zeros((1, 4, 40, 3)).tolist()})
    assert status == 400 and "images: height and width must be at least patch_size=8" in answer["error"]
