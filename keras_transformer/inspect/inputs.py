"""From what the attention CLI is given to a model, its inputs and the token labels.

Models come from a training run folder or a `.keras` file
(`keras_transformer.export.sources.load_model_path`, the loader export uses)
or a Hugging Face folder (`config.json` + `model.safetensors`,
`keras_transformer.convert.from_huggingface`). Tokenizers come from a folder
written by `save_tokenizer` (a run's `tokenizer/`) or from Hugging Face
tokenizer files (`keras_transformer.convert.huggingface_tokenizer`).

Texts are packed as the training pipelines pack them: BERT `[CLS] text [SEP]`
(`text_pair`: `... [SEP] pair [SEP]`, segment 1), GPT the plain ids, T5 the
encoder `text </s>` and the decoder the start id 0 then the target's ids
(teacher forcing). Token ids given as such are used as they are (T5: the
decoder still starts with 0). Nothing is truncated: a sequence longer than
`max_sequence_length` is a ValueError.
"""

import json
import os

import numpy as np

FAMILIES = ("bert", "gpt", "t5", "vit")


def family_of(model):
    """"bert", "gpt", "t5" or "vit"; ValueError for a model without attention maps to show."""
    family = getattr(getattr(model, "backbone", model), "family", None)
    if family not in FAMILIES:
        raise ValueError(f"{type(model).__name__} is not a BERT, GPT, T5 or ViT model of this package: "
                         "it has no attention maps to show")
    return family


def _is_huggingface_folder(path):
    config_path = os.path.join(path, "config.json")
    if not (os.path.isdir(path) and os.path.isfile(config_path)):
        return False
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "model_type" in config and "keras_config" not in config


def _is_saved_tokenizer(folder):
    from keras_transformer.text.tokenizers import CONFIG_FILE

    try:
        with open(os.path.join(folder, CONFIG_FILE), encoding="utf-8") as handle:
            return "format_version" in json.load(handle)
    except (OSError, ValueError, TypeError):
        return False


def load_tokenizer_folder(folder):
    """A tokenizer from a `save_tokenizer` folder or from Hugging Face tokenizer files."""
    from keras_transformer.convert.huggingface_tokenizer import has_huggingface_tokenizer, tokenizer_from_huggingface

    if not os.path.isdir(folder):
        raise ValueError(f"tokenizer folder {folder!r} does not exist")
    if _is_saved_tokenizer(folder):
        from keras_transformer.text.tokenizers import load_tokenizer

        return load_tokenizer(folder)
    if has_huggingface_tokenizer(folder):
        return tokenizer_from_huggingface(folder)
    raise ValueError(f"{folder!r} is neither a saved tokenizer (tokenizer.json with a format_version) nor a "
                     "folder of Hugging Face tokenizer files (vocab.txt, spiece.model, vocab.json + merges.txt)")


def load_model_and_tokenizer(path, tokenizer_folder=None):
    """(model, tokenizer or None) from a run folder, `.keras` file or Hugging Face folder."""
    if not os.path.exists(path):
        raise ValueError(f"model path {path!r} does not exist")
    if _is_huggingface_folder(path):
        from keras_transformer.convert import from_huggingface
        from keras_transformer.convert.huggingface_tokenizer import has_huggingface_tokenizer

        model = from_huggingface(path)
        found = path if has_huggingface_tokenizer(path) else None
    else:
        from keras_transformer.export.sources import load_model_path

        model, found, _, _ = load_model_path(path)
    folder = tokenizer_folder or found
    return model, (load_tokenizer_folder(folder) if folder else None)


def token_strings(tokenizer, ids):
    """The token string of each id (the ids themselves without a tokenizer)."""
    size = tokenizer.vocabulary_size() if tokenizer is not None else 0
    return [str(tokenizer.id_to_token(int(i))) if 0 <= i < size else str(int(i)) for i in ids]


def _tokenize(tokenizer, text, what):
    ids = [int(i) for i in np.asarray(tokenizer(text)).reshape(-1)]
    if not ids:
        raise ValueError(f"{what} {text!r} gives no tokens")
    return ids


def _special(tokenizer, family, *names):
    from keras_transformer.text.special_tokens import SpecialTokens

    special = SpecialTokens.from_tokenizer(tokenizer)
    missing = [name for name in names if getattr(special, name) is None]
    if missing:
        raise ValueError(f"packing {family} text needs the tokenizer's {missing}, which its vocabulary lacks")
    return special


def _check_length(ids, config, what):
    if len(ids) > config.max_sequence_length:
        raise ValueError(f"{what} is {len(ids)} tokens, more than the model's "
                         f"max_sequence_length={config.max_sequence_length}; use a shorter text")


def _check_ids(ids, config, what):
    bad = [i for i in ids if not 0 <= i < config.vocabulary_size]
    if bad:
        raise ValueError(f"{what} must be token ids in [0, {config.vocabulary_size}) (the model's vocabulary_size); "
                         f"received {bad[:10]}")


def _row(values):
    return np.asarray([values], "int32")


def text_inputs(model, tokenizer=None, text=None, text_pair=None, target=None, ids=None, target_ids=None):
    """(the model's input dict for one row, its token labels: a list, or a dict for T5)."""
    family = family_of(model)
    config = getattr(model, "backbone", model).model_config
    if family == "vit":
        raise ValueError("a ViT takes an image (--image), not text")
    if (text is None) == (ids is None):
        raise ValueError("give either text or token ids (--text or --ids), not both or neither")
    if text is not None and tokenizer is None:
        raise ValueError("text needs a tokenizer: pass --tokenizer DIR (a saved tokenizer or Hugging Face "
                         "tokenizer files), or token ids with --ids")
    if text_pair is not None and (family != "bert" or text is None):
        raise ValueError("--text-pair goes with --text, for BERT models only")
    if (target is not None or target_ids is not None) and family != "t5":
        raise ValueError("a decoder target (--target / --target-ids) is for T5 models only")
    if target is not None and tokenizer is None:
        raise ValueError("--target text needs a tokenizer; pass --target-ids instead")
    for given, what in ((ids, "--ids"), (target_ids, "--target-ids")):
        if given is not None:
            _check_ids(given, config, what)
    if family == "bert":
        segments = None
        if text is not None:
            special = _special(tokenizer, family, "start_id", "end_id")
            first = [special.start_id] + _tokenize(tokenizer, text, "--text") + [special.end_id]
            second = _tokenize(tokenizer, text_pair, "--text-pair") + [special.end_id] if text_pair else []
            ids, segments = first + second, [0] * len(first) + [1] * len(second)
        _check_length(ids, config, "the text with [CLS]/[SEP]" if text is not None else "--ids")
        inputs = {"token_ids": ids, "segment_ids": segments or [0] * len(ids), "padding_mask": [1] * len(ids),
                  "mask_positions": [0]}
        tokens = token_strings(tokenizer, ids)
    elif family == "gpt":
        ids = _tokenize(tokenizer, text, "--text") if text is not None else ids
        _check_length(ids, config, "the text" if text is not None else "--ids")
        inputs = {"token_ids": ids, "padding_mask": [1] * len(ids)}
        tokens = token_strings(tokenizer, ids)
    else:
        if text is not None:
            ids = _tokenize(tokenizer, text, "--text") + [_special(tokenizer, family, "end_id").end_id]
        decoder = [0] + (_tokenize(tokenizer, target, "--target") if target is not None else list(target_ids or []))
        _check_length(ids, config, "the encoder text with </s>" if text is not None else "--ids")
        _check_length(decoder, config, "the decoder input (start id and target)")
        inputs = {"encoder_token_ids": ids, "encoder_padding_mask": [1] * len(ids),
                  "decoder_token_ids": decoder, "decoder_padding_mask": [1] * len(decoder)}
        tokens = {"encoder": token_strings(tokenizer, ids), "decoder": token_strings(tokenizer, decoder)}
    wanted = list(model.input) if isinstance(model.input, dict) else []
    return {name: _row(inputs[name]) for name in wanted if name in inputs}, tokens


def read_image(path):
    """(height, width, 3) float32 pixels in [0, 255] from a PNG (or, with Pillow, JPEG ...) file."""
    import matplotlib.image

    if not os.path.isfile(path):
        raise ValueError(f"image file {path!r} does not exist")
    try:
        pixels = np.asarray(matplotlib.image.imread(path))
    except Exception as error:  # noqa: BLE001  (Pillow and libpng raise many kinds)
        raise ValueError(f"cannot read image {path!r}: {error}") from None
    scale = 255.0 if np.issubdtype(pixels.dtype, np.floating) else 1.0
    pixels = pixels.astype("float32") * scale
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image {path!r} has shape {pixels.shape}; expected (height, width[, channels])")
    pixels = pixels[..., :3]
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def image_inputs(model, path):
    """(the ViT's input dict, the picture it sees: (image_size, image_size, 3) in [0, 1])."""
    from keras import ops

    from keras_transformer.models.vit.preprocessing import preprocess_images

    if family_of(model) != "vit":
        raise ValueError("--image is for ViT models; this model takes text")
    config = getattr(model, "backbone", model).model_config
    pixels = read_image(path)
    if config.num_channels != 3:
        raise ValueError(f"images are read as RGB; this ViT has num_channels={config.num_channels}")
    images = ops.convert_to_numpy(preprocess_images(pixels[None], config))  # (1, size, size, 3) normalised
    picture = images[0] * np.asarray(config.image_std, "float32") + np.asarray(config.image_mean, "float32")
    return {"images": images}, np.clip(picture, 0.0, 1.0)


def patch_labels(grid_rows, grid_columns):
    """ViT token labels: the class token, then each patch as row,column."""
    return ["[CLS]"] + [f"{r},{c}" for r in range(grid_rows) for c in range(grid_columns)]
