"""SavedModel export for TensorFlow Serving (TensorFlow only).

    from keras_transformer.export import export, verify
    path = export(model, "models/gpt", tokenizer=tokenizer)     # -> models/gpt/1
    report = verify("models/gpt")                                 # checks the newest version; report["problems"]

    python -m keras_transformer.export export runs/gpt models/gpt
    python -m keras_transformer.export verify models/gpt

Layout (what `tensorflow_model_server --model_base_path=models/gpt` serves):

    models/gpt/1/saved_model.pb, variables/, assets/tokenizer/
                 assets.extra/tf_serving_warmup_requests     one PredictRequest per signature
                 assets.extra/README.md                       signatures, ops, example requests
                 assets.extra/keras_transformer_export.json   the same for tools
                 assets.extra/keras_transformer_reference.npz a request and the Keras outputs, per signature

Signatures (names, inputs and outputs: `keras_transformer.export.signatures`
and the modules it lists): `serving_default` (the model on ids, outputs named
as in Keras), `serving_default_int64`, and with a tokenizer the text ones:
BERT `classify`, `embed`, `fill_mask`, `answer` (extractive question
answering: windows, document stride and span choice in the graph); GPT and T5 `generate` (decoding loop
and cache inside the graph, sampling settings as per-row tensors:
`keras_transformer.generation`, the loop `model.generate` runs); and without
a tokenizer, ViT `classify_image` (JPEG / PNG bytes, decoded and
preprocessed inside the graph). Every served function is a plain graph:
no `jit_compile`, no XLA-only ops (checked at export and by `verify`), so the
stock CPU and GPU servers run it.

TensorFlow's `saved_model_cli show --all` / `run` work on every export; for
graphs with tensorflow-text ops (WordPiece, SentencePiece) run it in a
process that imported tensorflow_text first (the README beside the export
gives the command).
"""

from keras_transformer.export.exporter import export  # noqa: F401
from keras_transformer.export.signatures import supported_signatures  # noqa: F401
from keras_transformer.export.verify import format_report, verify  # noqa: F401
