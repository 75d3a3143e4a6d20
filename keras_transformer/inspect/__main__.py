"""Command line: draw a model's attention maps for one input.

    python -m keras_transformer.inspect attention MODEL --text "the cat sat" [--text-pair "..."]
        [--layers 0,1] [--heads 0-3] [--output DIR]
    python -m keras_transformer.inspect attention runs/t5 --text "translate: hello" --target "hallo"
    python -m keras_transformer.inspect attention model.keras --ids 2,17,42,3
    python -m keras_transformer.inspect attention hf/vit --image cat.png --heads 0

MODEL is a training run folder (model.keras + tokenizer/), a `.keras` file (the
tokenizer from --tokenizer DIR, or token ids with --ids) or a Hugging Face
folder (config.json + model.safetensors, and for text its tokenizer files:
vocab.txt, spiece.model or vocab.json + merges.txt). Text models get
DIR/attention_<group>.png (rows layers, columns heads; groups encoder,
decoder, cross) and DIR/head_view.html (a self-contained page: open it in a
browser, no network needed); a ViT gets DIR/attention_encoder.png and
DIR/vit_attention.png (the class token's attention over the image). The
written paths are printed, one per line. Bad input is one `error:` line and
exit status 2.
"""

import argparse
import os
import sys
import zipfile

EPILOG = """Texts are packed as training packs them (BERT [CLS] text [SEP], T5 encoder text </s>
and decoder start id + target) and never truncated: a text longer than the model's
max_sequence_length is an error. A grid holds at most 144 panels and the head view at most
4,000,000 weights: choose --layers / --heads for big models."""


def _indices(text):
    """"0,2,5-7" -> [0, 2, 5, 6, 7]."""
    chosen = []
    try:
        for part in text.replace(" ", ",").split(","):
            if not part:
                continue
            first, dash, last = part.partition("-")
            chosen.extend(range(int(first), int(last) + 1) if dash else [int(first)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected indices like 0,2,5-7; received {text!r}") from None
    if not chosen:
        raise argparse.ArgumentTypeError(f"expected indices like 0,2,5-7; received {text!r}")
    return chosen


def _ids(text):
    try:
        ids = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas or spaces; received {text!r}") \
            from None
    if not ids:
        raise argparse.ArgumentTypeError("expected at least one token id")
    return ids


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one `error:` line, status 2 (argparse would print the usage first)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser():
    parser = _Parser(prog="python -m keras_transformer.inspect", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    attention = commands.add_parser("attention", help="draw attention maps (PNG grids and an HTML head view)",
                                    description=__doc__, epilog=EPILOG,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    attention.add_argument("model", metavar="MODEL", help="run folder, .keras file or Hugging Face folder")
    given = attention.add_argument_group("input (one of --text, --ids, --image)")
    given.add_argument("--text", help="the text (BERT, GPT; T5's encoder)")
    given.add_argument("--text-pair", help="BERT: a second segment, [CLS] text [SEP] pair [SEP]")
    given.add_argument("--target", help="T5: the decoder's text (teacher forcing after the start id 0)")
    given.add_argument("--ids", type=_ids, help="token ids used as they are, e.g. 2,17,42,3 (no tokenizer needed)")
    given.add_argument("--target-ids", type=_ids, help="T5: decoder ids after the start id 0")
    given.add_argument("--image", help="ViT: an image file (PNG; JPEG and others through Pillow)")
    attention.add_argument("--tokenizer", metavar="DIR",
                           help="tokenizer folder: save_tokenizer's (a run's tokenizer/) or Hugging Face tokenizer "
                                "files; default: the one beside MODEL")
    attention.add_argument("--layers", type=_indices, help="layers to draw, e.g. 0,2,5-7 (default: all)")
    attention.add_argument("--heads", type=_indices,
                           help="heads to draw, e.g. 0-3 (default: all; ViT: the heads averaged)")
    attention.add_argument("--output", metavar="DIR", default="attention",
                           help="folder for the files (default: ./attention)")
    return parser


def _check_choices(model, args):
    """--layers / --heads against every group's blocks and heads, before the model runs."""
    from keras_transformer.inspect.attention_maps import attention_heads
    from keras_transformer.inspect.selection import select_indices

    for group, (num_layers, num_heads) in attention_heads(model).items():
        select_indices(args.layers, num_layers, f"{group} layers")
        select_indices(args.heads, num_heads, f"{group} heads")


def _draw_text(model, tokenizer, args):
    from keras_transformer.inspect.attention_maps import attention_maps
    from keras_transformer.inspect.head_view import head_view_html
    from keras_transformer.inspect.heatmaps import save_attention_heatmaps
    from keras_transformer.inspect.inputs import text_inputs

    inputs, tokens = text_inputs(model, tokenizer, text=args.text, text_pair=args.text_pair, target=args.target,
                                 ids=args.ids, target_ids=args.target_ids)
    maps = attention_maps(model, inputs)
    title = f"Attention: {os.path.basename(os.path.normpath(args.model))}"
    page = head_view_html(maps, tokens=tokens, layers=args.layers, heads=args.heads, title=title)
    paths = save_attention_heatmaps(maps, args.output, tokens=tokens, layers=args.layers, heads=args.heads)
    paths.append(os.path.join(args.output, "head_view.html"))
    with open(paths[-1], "w", encoding="utf-8") as handle:
        handle.write(page)
    return paths


def _draw_image(model, args):
    from keras_transformer.inspect.attention_maps import attention_maps
    from keras_transformer.inspect.heatmaps import save_attention_heatmaps
    from keras_transformer.inspect.inputs import image_inputs, patch_labels
    from keras_transformer.inspect.vit_attention import save_vit_attention

    if any(value is not None for value in (args.text, args.text_pair, args.target, args.ids, args.target_ids)):
        raise ValueError("--image goes alone: a ViT takes no text or token ids")
    inputs, picture = image_inputs(model, args.image)
    maps = attention_maps(model, inputs)
    patch_size = getattr(model, "backbone", model).model_config.patch_size
    grid = (picture.shape[0] // patch_size, picture.shape[1] // patch_size)
    tokens = patch_labels(*grid) if 1 + grid[0] * grid[1] == maps["encoder"][0].shape[-1] else None
    paths = save_attention_heatmaps(maps, args.output, tokens=tokens, layers=args.layers, heads=args.heads)
    paths.append(save_vit_attention(picture, maps, os.path.join(args.output, "vit_attention.png"), patch_size,
                                    layers=args.layers, heads=args.heads))
    return paths


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        from keras_transformer.inspect.inputs import family_of, load_model_and_tokenizer

        if args.image is not None and (args.tokenizer is not None):
            raise ValueError("--tokenizer is for text; a ViT takes --image")
        model, tokenizer = load_model_and_tokenizer(args.model, args.tokenizer)
        family_of(model)  # a model without attention maps is an error before anything else
        _check_choices(model, args)
        if family_of(model) == "vit" or args.image is not None:
            if args.image is None:
                raise ValueError("this model is a ViT: pass an image with --image FILE")
            paths = _draw_image(model, args)
        else:
            paths = _draw_text(model, tokenizer, args)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        print("error: " + " ".join(str(error).split()), file=sys.stderr)  # one line, whatever the message
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
