"""What a model version folder holds besides the SavedModel: the one list of those file names.

Importable without Keras or TensorFlow, so the server, the TensorFlow-only
export checker and the exporter all read the names from here.

    VERSION/saved_model.pb, variables/, assets/          the SavedModel
    VERSION/assets.extra/tf_serving_warmup_requests      TF Serving's warm-up: PredictionLog records
    VERSION/assets.extra/keras_transformer_export.json   what an export holds (versions, signatures, ops)
    VERSION/assets.extra/keras_transformer_reference.npz a request and the Keras outputs, per signature
    VERSION/assets.extra/README.md                       how to serve and call it
"""

import os

EXTRA_DIR = "assets.extra"
WARMUP_FILE = os.path.join(EXTRA_DIR, "tf_serving_warmup_requests")
METADATA_FILE = os.path.join(EXTRA_DIR, "keras_transformer_export.json")
REFERENCE_FILE = os.path.join(EXTRA_DIR, "keras_transformer_reference.npz")
README_FILE = os.path.join(EXTRA_DIR, "README.md")
