"""`export()`: a Keras model (+ tokenizer) -> BASE_DIR/VERSION/, a SavedModel for TensorFlow Serving."""

import logging
import os

import keras
import tensorflow as tf

from keras_transformer.export import metadata, requests, sources, versions
from keras_transformer.export.plain_graph import plain_graph_ops
from keras_transformer.export.signatures import build_signatures, resolve_names
from keras_transformer.models.lora import merged_copy

logger = logging.getLogger(__name__)


def export(model, base_dir, version=None, tokenizer=None, signatures=None, *, labels=None, fill_mask_top_k=5,
           stop_token_ids=None, question_answering=None, model_name="model", warmup=True):
    """Writes a SavedModel version that the stock `tensorflow_model_server` serves as is.

    Args:
        model: a `keras.Model` (our BERT/GPT/T5 models or any functional
            model), a `.keras` file, a training run folder or one of its
            checkpoints (see `keras_transformer.export.sources`).
        base_dir: the model base path; versions are its numbered subfolders.
        version: an int not yet used in `base_dir`; None -> newest + 1 (1 first).
        tokenizer: a `keras_transformer.text` tokenizer or a folder saved with
            `save_tokenizer`; needed by the text signatures.
        signatures: names to export (see `keras_transformer.export.signatures`);
            None -> serving_default (+ int64 twin) and, with a tokenizer,
            every text signature the model supports.
        labels: class names for `classify` (default: a run folder's labels,
            else "0", "1", ...).
        fill_mask_top_k: tokens returned per mask by `fill_mask`.
        stop_token_ids: ids that end `generate` rows (default: the
            tokenizer's end token).
        question_answering: `answer`'s windows and answer length, a dict of
            `keras_transformer.text.question_answering.QASettings` fields
            (default: a qa run folder's, else windows of min(384,
            max_sequence_length) tokens); given fields override the run's.
        model_name: the name clients use (warm-up requests, README examples).
        warmup: write `assets.extra/tf_serving_warmup_requests`.

    Returns:
        The new version folder `base_dir/VERSION`.

    Raises:
        ValueError: `base_dir` is a file, `version` exists or is invalid, a
        signature is unknown for the model, a text signature lacks a
        tokenizer, the tokenizer does not fit the model, or the graph would
        need XLA. Nothing is left behind in `base_dir` on failure.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"SavedModel export needs the TensorFlow backend (KERAS_BACKEND=tensorflow); "
                         f"running on {keras.backend.backend()!r}")
    base_dir = versions.check_base_dir(base_dir)
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"model_name must be a non-empty string; received {model_name!r}")
    model, tokenizer, labels, question_answering, source = sources.resolve(model, tokenizer, labels,
                                                                          question_answering)
    # LoRA adapters are merged into the kernels: the SavedModel holds no LoRA variables.
    model = merged_copy(model)
    names = resolve_names(model, tokenizer, signatures)
    if version is not None:
        versions.resolve_version(base_dir, version)  # fail before any work
    built = build_signatures(model, tokenizer, names, labels=labels, fill_mask_top_k=fill_mask_top_k,
                             stop_token_ids=stop_token_ids, question_answering=question_answering)
    staging = versions.make_staging_dir(base_dir)
    try:
        specs = _write_saved_model(model, tokenizer, built, staging)
        _write_extras(model, tokenizer, built, specs, staging, source, model_name, warmup)
        target = versions.publish(staging, base_dir, versions.resolve_version(base_dir, version))
    except BaseException:
        versions.discard(staging)
        raise
    logger.info("exported %s with signatures %s to %s", type(model).__name__, names, target)
    return target


def _spec(spec):
    return {"dtype": spec.dtype.name, "shape": spec.shape.as_list() if spec.shape.rank is not None else None}


def _write_saved_model(model, tokenizer, built, directory):
    """Traces every signature (core ops only, no XLA) and writes the SavedModel; returns their specs."""
    # The endpoints' variables are tracked from their traced functions; only the
    # tokenizer is tracked explicitly (its tf-text resources would otherwise be
    # "untracked resources"). Tracking the model too only walks its layers again.
    archive = keras.export.ExportArchive()
    if any(signature.uses_tokenizer for signature in built):
        archive.track(tokenizer)
    specs = {}
    with plain_graph_ops():
        for signature in built:
            # Traced now, inside the patch, for its output specs. (Saving traces it once
            # more: a tf.function's first trace only checks for variable creation.)
            function = tf.function(signature.function, input_signature=signature.input_signature(), autograph=False)
            concrete = function.get_concrete_function()
            archive.add_endpoint(signature.name, function)
            specs[signature.name] = {
                "description": signature.description,
                "inputs": {name: _spec(spec) for name, spec in signature.inputs.items()},
                "outputs": {name: _spec(spec) for name, spec in sorted(concrete.structured_outputs.items())},
            }
        archive.write_out(directory, verbose=False)
    return specs


def _write_extras(model, tokenizer, built, specs, directory, source, model_name, warmup):
    from keras_transformer.export.savedmodel_check import check

    os.makedirs(os.path.join(directory, "assets.extra"), exist_ok=True)
    if tokenizer is not None:  # for clients (decoding ids); the graph holds its own copy as constants
        from keras_transformer.text.tokenizers import save_tokenizer

        save_tokenizer(tokenizer, os.path.join(directory, "assets", "tokenizer"))
    cases = {}
    for signature in built:
        if signature.reference is not None:
            cases[signature.name] = (signature.sample, signature.reference(signature.sample), signature.atol)
    metadata.write_reference(directory, cases)
    if warmup:
        requests.write_warmup(directory, model_name, built)
    scan = check(directory, scan_only=True)  # in this process: proto scan only, no reload
    if scan["xla"] or scan["ops"]["unknown"]:
        raise ValueError(f"the exported graph cannot be served by tensorflow_model_server: XLA {scan['xla']}, "
                         f"unknown ops {scan['ops']['unknown']}")
    info = {
        "format_version": metadata.FORMAT_VERSION,
        "model_name": model_name,
        "versions": metadata.library_versions(),
        "model": {"class": type(model).__name__, "source": source, "parameters": int(model.count_params()),
                  "config": _config(model)},
        "tokenizer": _tokenizer_info(tokenizer),
        "signatures": specs,
        "ops": {"tensorflow_text": scan["ops"]["tensorflow_text"], "core_count": len(scan["ops"]["core"]),
                "xla": scan["xla"]},
        "warmup_requests": len(built) if warmup else 0,
    }
    metadata.write_metadata(directory, info)
    examples = {s.name: requests.rest_example(model_name, request) for s in built
                if requests.readable(request := requests.predict_request(model_name, s.name, s.sample))}
    metadata.write_readme(directory, info, examples)


def _config(model):
    config = getattr(getattr(model, "backbone", model), "model_config", None)
    return config.to_dict() if config is not None else None


def _tokenizer_info(tokenizer):
    if tokenizer is None:
        return None
    from keras_transformer.text.special_tokens import SpecialTokens
    from keras_transformer.text.tokenizers import tokenizer_kind

    return {"kind": tokenizer_kind(tokenizer), "vocabulary_size": int(tokenizer.vocabulary_size()),
            "special_tokens": SpecialTokens.from_tokenizer(tokenizer).to_json(), "files": "assets/tokenizer/"}
