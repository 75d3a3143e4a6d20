"""Shows what a pipeline feeds the model, decoded back to text.

    from keras_transformer.text.inspection import print_sample
    print_sample(masked_lm_dataset(documents, tokenizer), tokenizer)

Works on the output of every pipeline here (it recognises the objective by
the keys of x). Padding is dropped; special ids are shown as their token
strings, the mask id always as [MASK], sentinels as <extra_id_i>; masked-LM
targets are listed as `position: original token`.
"""

import numpy as np

from keras_transformer.text.special_tokens import SpecialTokens
from keras_transformer.text.tokenizers import tokenizer_kind


def _decode(ids, tokenizer, special):
    """Text of one id sequence: runs of ordinary ids detokenized, special ids by name."""
    special_ids = set(special.all_ids)
    joiner = "" if tokenizer_kind(tokenizer) == "bytes" else " "
    pieces, run = [], []

    def flush():
        if run:
            text = tokenizer.detokenize(np.asarray([run], "int32"))[0]
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            if joiner:  # word-level tokenizers: the joiner supplies the spaces
                text = text.strip()
            if text:
                pieces.append(text)
            run.clear()

    for i in (int(i) for i in ids):
        if i in special_ids:
            flush()
            pieces.append("[MASK]" if i == special.mask_id else tokenizer.id_to_token(i))
        else:
            run.append(i)
    flush()
    return joiner.join(pieces)


def _describe(x, y, weights, row, tokenizer, special, label_names):
    def text(ids, mask):
        return _decode(np.asarray(ids)[np.asarray(mask) > 0], tokenizer, special)

    if "encoder_token_ids" in x:
        return [
            f"  encoder input: {text(x['encoder_token_ids'][row], x['encoder_padding_mask'][row])}",
            f"  target:        {text(y[row], weights[row])}",
        ]
    lines = [f"  input:  {text(x['token_ids'][row], x['padding_mask'][row])}"]
    if "mask_positions" in x:
        targets = [
            f"{int(p)}: {_decode([t], tokenizer, special)}"
            for p, t, w in zip(x["mask_positions"][row], y[row], weights[row])
            if w > 0
        ]
        lines.append(f"  masked: {len(targets)} of {int(np.sum(x['padding_mask'][row]))} tokens; targets "
                     + ", ".join(targets))
    elif np.ndim(y) == 1:
        label = int(y[row])
        lines.append(f"  label:  {label}" + (f" ({label_names[label]})" if label_names else ""))
    else:
        lines.append(f"  target: {text(y[row], weights[row])}")
    return lines


def format_sample(dataset, tokenizer, num_examples=2, label_names=None):
    """The first `num_examples` examples of the first batch of `dataset`, as text."""
    special = SpecialTokens.from_tokenizer(tokenizer)
    x, y, weights = next(iter(dataset))
    x = {key: np.asarray(value) for key, value in x.items()}
    y, weights = np.asarray(y), np.asarray(weights)
    lines = []
    for row in range(min(num_examples, len(y))):
        lines.append(f"example {row}:")
        lines.extend(_describe(x, y, weights, row, tokenizer, special, label_names))
    return "\n".join(lines)


def print_sample(dataset, tokenizer, num_examples=2, label_names=None):
    """Prints `format_sample(...)`: for people looking at a pipeline, not for library code."""
    print(format_sample(dataset, tokenizer, num_examples, label_names))
