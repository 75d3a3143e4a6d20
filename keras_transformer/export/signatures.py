"""Which signatures a model can have, and building the requested ones.

| signature               | models                                   | needs a tokenizer |
|-------------------------|------------------------------------------|-------------------|
| serving_default         | every Keras model                        | no                |
| serving_default_int64   | models with integer inputs               | no                |
| classify                | BertClassifier                           | yes               |
| embed                   | every BERT model (backbone or task)      | yes               |
| fill_mask               | BertMaskedLM                             | yes               |
| answer                  | BertQuestionAnswering                    | yes               |
| generate                | GPTCausalLM, T5Seq2SeqLM                 | yes               |
| generate_start, _next   | (with generate) streaming, state carried | yes               |
| classify_image          | ViTImageClassifier (JPEG / PNG bytes)    | no                |

With `signatures=None` a model gets `serving_default` (+ int64 twin), its
image signature and, when a tokenizer is given, every text signature it
supports.
"""

from keras_transformer.export import generate_signatures, image_signatures, text_signatures
from keras_transformer.export.model_signatures import INT64_SUFFIX, input_specs, model_config, serving_signatures
from keras_transformer.export.text_graph import prepare_tokenizer

MODEL_SIGNATURES = ("serving_default", "serving_default" + INT64_SUFFIX)
TEXT_SIGNATURES = ("classify", "embed", "fill_mask", "answer", "generate")
IMAGE_SIGNATURES = ("classify_image",)
STREAM_SIGNATURES = ("generate_start", "generate_next")  # exported with `generate`


def _family(model):
    from keras_transformer import models

    if isinstance(model, models.BertClassifier):
        return ("classify", "embed")
    if isinstance(model, models.BertMaskedLM):
        return ("fill_mask", "embed")
    if isinstance(model, models.BertQuestionAnswering):
        return ("answer", "embed")
    if isinstance(model, (models.BertBackbone, models.BertSentenceEmbedding, models.BertTokenClassifier)):
        return ("embed",)
    if isinstance(model, (models.GPTCausalLM, models.T5Seq2SeqLM)):
        return ("generate",)
    if isinstance(model, models.ViTImageClassifier):
        return IMAGE_SIGNATURES
    return ()


def supported_signatures(model):
    """Every signature name `model` can be exported with (text ones need a tokenizer)."""
    integer = any(spec.dtype.is_integer for spec in input_specs(model).values())
    return MODEL_SIGNATURES[: 2 if integer else 1] + _family(model)


def resolve_names(model, tokenizer, signatures):
    """The signature names to build, validated; ValueError names what is wrong."""
    supported = supported_signatures(model)
    if signatures is None:
        names = [name for name in supported if tokenizer is not None or name not in TEXT_SIGNATURES]
    else:
        if isinstance(signatures, str):
            signatures = [signatures]
        names = list(dict.fromkeys(signatures))
        unknown = [name for name in names if name not in supported]
        if unknown:
            raise ValueError(
                f"unknown signature(s) {unknown} for {type(model).__name__}; it supports {list(supported)}"
            )
        text = [name for name in names if name in TEXT_SIGNATURES]
        if text and tokenizer is None:
            raise ValueError(
                f"signature(s) {text} take strings and need the tokenizer inside the graph; pass tokenizer= "
                "(a keras_transformer.text tokenizer or a folder saved with save_tokenizer)"
            )
        if "serving_default" not in names:
            names.insert(0, "serving_default")  # TF Serving's default; every export has it
    return names


def build_signatures(model, tokenizer, names, labels=None, fill_mask_top_k=5, stop_token_ids=None,
                     question_answering=None):
    """`Signature`s for `names` (from `resolve_names`), in that order. `question_answering`: the `answer`
    signature's window settings (a dict of `QASettings` fields; missing ones by default)."""
    built = {signature.name: signature for signature in serving_signatures(model)}
    if "classify_image" in names:
        built["classify_image"] = image_signatures.classify_image(model, labels)
    if tokenizer is not None and any(name in TEXT_SIGNATURES for name in names):
        special = prepare_tokenizer(tokenizer)
        config = model_config(model)
        if tokenizer.vocabulary_size() > config.vocabulary_size:
            raise ValueError(
                f"the tokenizer has {tokenizer.vocabulary_size()} ids but the model's vocabulary_size is "
                f"{config.vocabulary_size}: its ids would not fit the model's embedding"
            )
        for name in names:
            if name == "classify":
                built[name] = text_signatures.classify(model, tokenizer, special, labels)
            elif name == "embed":
                built[name] = text_signatures.embed(model, tokenizer, special)
            elif name == "fill_mask":
                built[name] = text_signatures.fill_mask(model, tokenizer, special, fill_mask_top_k)
            elif name == "answer":
                built[name] = text_signatures.answer(model, tokenizer, special, question_answering)
            elif name == "generate":
                stop_ids = generate_signatures.default_stop_ids(special, stop_token_ids)
                make = generate_signatures.t5_generate if hasattr(model, "encode") else generate_signatures.gpt_generate
                built.update((signature.name, signature) for signature in make(model, tokenizer, special, stop_ids))
    # `generate` comes with its streaming pair.
    names = [n for name in names for n in ((name,) + STREAM_SIGNATURES if name == "generate" else (name,))]
    return [built[name] for name in names]
