"""The ViT family: config and presets, backbone, image classifier, pixel preprocessing."""

from keras_transformer.models.vit import vit_presets  # noqa: F401  (registers the presets)
from keras_transformer.models.vit.preprocessing import preprocess_images
from keras_transformer.models.vit.vit_backbone import ViTBackbone
from keras_transformer.models.vit.vit_config import ViTConfig
from keras_transformer.models.vit.vit_image_classifier import ViTImageClassifier
