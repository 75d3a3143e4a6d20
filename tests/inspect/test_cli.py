"""`python -m keras_transformer.inspect attention`: run folders, .keras files, Hugging Face folders, bad input."""

import json
import os

import keras
import numpy as np
import pytest

from keras_transformer.inspect import attention_maps
from keras_transformer.inspect.__main__ import main
from tests.inspect.helpers import head_view_json, png_size

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "huggingface")
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "a"]


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    """A run folder as training writes it: model.keras and tokenizer/ (a 12-id WordPiece vocabulary)."""
    import keras_hub

    from keras_transformer.models import BertBackbone, BertMaskedLM
    from keras_transformer.text.tokenizers import save_tokenizer

    folder = tmp_path_factory.mktemp("bert_run")
    model = BertMaskedLM(BertBackbone.from_preset("bert_test", vocabulary_size=len(VOCABULARY)))
    model.save(str(folder / "model.keras"))
    save_tokenizer(keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCABULARY, lowercase=True),
                   str(folder / "tokenizer"))
    return folder, model


def _run(capsys, *argv):
    code = main(["attention", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def _page(path):
    with open(path, encoding="utf-8") as handle:
        return head_view_json(handle.read())


def test_run_folder_text_pair_draws_pngs_and_a_head_view_of_the_packed_tokens(bert_run, tmp_path, capsys):
    folder, model = bert_run
    output = tmp_path / "out"
    code, printed, err = _run(capsys, folder, "--text", "The cat sat", "--text-pair", "on mats", "--layers", "1",
                              "--output", output)
    assert code == 0, err
    assert printed == [str(output / "attention_encoder.png"), str(output / "head_view.html")]
    width, height = png_size(printed[0])
    assert 300 <= width <= 2000 and 200 <= height <= 1000, (width, height)  # one layer, two heads
    (group,) = _page(printed[1])["groups"]
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]", "on", "mat", "##s", "[SEP]"]
    assert group["query_tokens"] == group["key_tokens"] == tokens and group["layers"] == [1]
    ids = np.array([[2, 5, 6, 7, 3, 8, 9, 10, 3]], "int32")
    expected = attention_maps(model, {"token_ids": ids, "segment_ids": np.array([[0] * 5 + [1] * 4], "int32"),
                                      "padding_mask": np.ones_like(ids), "mask_positions": np.zeros((1, 1), "int32")})
    np.testing.assert_allclose(np.array(group["attention"])[0], expected["encoder"][1][0], atol=6e-5, rtol=0)


@pytest.mark.slow  # another model load and run: TensorFlow only in CI (the code paths are backend-neutral)
def test_keras_file_takes_a_tokenizer_folder_or_plain_ids(bert_run, tmp_path, capsys):
    folder, _ = bert_run
    code, printed, err = _run(capsys, folder / "model.keras", "--tokenizer", folder / "tokenizer", "--text", "a cat",
                              "--output", tmp_path / "a")
    assert code == 0, err
    assert _page(printed[-1])["groups"][0]["query_tokens"] == ["[CLS]", "a", "cat", "[SEP]"]
    code, printed, err = _run(capsys, folder / "model.keras", "--ids", "2,6,3", "--output", tmp_path / "b")
    assert code == 0, err
    assert _page(printed[-1])["groups"][0]["key_tokens"] == ["2", "6", "3"]


def _gpt2_with_bpe_files(folder):
    """The GPT-2 fixture plus vocab.json / merges.txt in which "abcdefghi" is row 0's ids, one letter each."""
    import shutil

    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(FIXTURES, "gpt2", name), folder / name)
    vocabulary = {f"<unused{i}>": i for i in range(113)}
    for token, index in zip(["x", "y", "xy", *"abcdefghi"], [0, 1, 2, 62, 104, 89, 3, 68, 101, 54, 27, 26]):
        del vocabulary[f"<unused{index}>"]
        vocabulary[token] = index
    (folder / "vocab.json").write_text(json.dumps(vocabulary))
    (folder / "merges.txt").write_text("#version: 0.2\nx y\n")  # a merge the text never meets
    return ["--text", "abcdefghi"]


def _t5_with_a_vocab_txt(folder):
    """The T5 fixture with a WordPiece vocab.txt (given by --tokenizer) in which text gives row 0's ids:
    "W78" is id 78, [SEP] (the end token) is id 60, [PAD] (the decoder start) id 0; lowercased first."""
    folder.mkdir()
    tokens = [f"w{i}" for i in range(101)]
    tokens[0], tokens[1], tokens[60] = "[PAD]", "[UNK]", "[SEP]"
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return ["--tokenizer", folder, "--text", "W78 W27 W42 W52 W98 W11 W100 W12", "--target", "w93 w11 w34 w17 w87 w65"]


@pytest.mark.slow  # ~5 s on TensorFlow, ~20 s on JAX; attention_maps' parity runs on every backend anyway
@pytest.mark.parametrize("case, make_arguments", [("gpt2", _gpt2_with_bpe_files), ("t5_v1_0", _t5_with_a_vocab_txt)])
def test_huggingface_folder_and_tokenizer_files_give_transformers_maps(case, make_arguments, tmp_path, capsys):
    """Row 0 of each fixture (unpadded), typed as text: every group, layer and head as transformers gives it."""
    arguments = make_arguments(tmp_path / "files")
    model = tmp_path / "files" if case == "gpt2" else os.path.join(FIXTURES, case)  # GPT-2: its own files
    code, printed, err = _run(capsys, model, *arguments, "--output", tmp_path / "out")
    assert code == 0, err
    with np.load(os.path.join(FIXTURES, case, "attentions.npz")) as data:
        reference = {group: data[group][:, 0] for group in data.files}  # (layers, heads, query, key)
    groups = {group["name"]: group for group in _page(printed[-1])["groups"]}
    assert sorted(groups) == sorted(reference)
    assert sorted(printed[:-1]) == sorted(str(tmp_path / "out" / f"attention_{g}.png") for g in reference)
    for name, group in groups.items():
        np.testing.assert_allclose(np.array(group["attention"]), reference[name], atol=6e-5, rtol=0)
    if case == "gpt2":
        assert groups["decoder"]["query_tokens"] == list("abcdefghi")
    else:  # encoder `text </s>`, decoder the start id then the target
        assert groups["cross"]["key_tokens"] == ["w78", "w27", "w42", "w52", "w98", "w11", "w100", "w12", "[SEP]"]
        assert groups["cross"]["query_tokens"] == ["[PAD]", "w93", "w11", "w34", "w17", "w87", "w65"]


def test_vit_image_gives_the_grid_and_the_class_token_overlay(tmp_path, capsys):
    import matplotlib.image

    image = tmp_path / "picture.png"
    y, x = np.mgrid[0:20, 0:24]
    matplotlib.image.imsave(str(image), np.stack([x / 24, y / 20, 0.5 + 0 * x], -1))
    code, printed, err = _run(capsys, os.path.join(FIXTURES, "vit_model"), "--image", image,
                              "--output", tmp_path / "vit")
    assert code == 0, err
    assert printed == [str(tmp_path / "vit" / "attention_encoder.png"), str(tmp_path / "vit" / "vit_attention.png")]
    assert all(png_size(path)[0] >= 300 for path in printed)


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["attention", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--text", "--text-pair", "--target", "--ids", "--target-ids", "--image", "--tokenizer",
                   "--layers", "--heads", "--output", "max_sequence_length", "Hugging Face"):
        assert option in text, option


@pytest.fixture(scope="module")
def no_attention_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "dense.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(str(path))
    return path


BAD = [
    (["{missing}", "--ids", "1"], "model path .*missing.* does not exist"),
    (["{keras}", "--text", "a cat"], "text needs a tokenizer: pass --tokenizer DIR .* or token ids with --ids"),
    (["{dense}", "--ids", "1"], "Sequential is not a BERT, GPT, T5 or ViT model of this package"),
    (["{run}", "--text", "cat " * 40], "the text with \\[CLS\\]/\\[SEP\\] is 42 tokens, more than the model's "
                                       "max_sequence_length=32"),
    (["{run}", "--text", "a", "--layers", "5"], r"encoder layers must be .* in \[0, 2\); received \[5\]"),
    (["{run}", "--text", "a", "--ids", "1"], "give either text or token ids"),
    (["{run}", "--ids", "1,99"], r"--ids must be token ids in \[0, 12\) \(the model's vocabulary_size\); "
                                 r"received \[99\]"),
    (["{run}", "--image", "{missing}"], "--image is for ViT models"),
    (["{run}", "--text", "a", "--target", "b"], "for T5 models only"),
    (["{gpt2}", "--ids", "1", "--text-pair", "b"], "--text-pair goes with --text, for BERT models only"),
    (["{vit}", "--ids", "1"], "this model is a ViT: pass an image with --image FILE"),
    (["{vit}", "--image", "{missing}"], "image file .*missing.* does not exist"),
    (["{vit}", "--image", "{keras}"], "cannot read image"),
    (["{run}", "--tokenizer", "{plain}", "--text", "a"], "neither a saved tokenizer"),
    (["{run}", "--ids", "1,x"], "argument --ids: expected integers"),
    (["{run}", "--ids", "1", "--heads", "3-"], "argument --heads: expected indices like 0,2,5-7"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(argv)[:40] for argv, _ in BAD])
def test_bad_input_is_one_error_line_and_status_2(argv, message, bert_run, no_attention_model, tmp_path, capsys):
    paths = {"missing": tmp_path / "missing", "keras": bert_run[0] / "model.keras", "run": bert_run[0],
             "dense": no_attention_model, "gpt2": os.path.join(FIXTURES, "gpt2"),
             "vit": os.path.join(FIXTURES, "vit_model"), "plain": no_attention_model.parent}
    argv = [part.format(**paths) for part in argv] + ["--output", str(tmp_path / "out")]
    try:
        code = main(["attention", *argv])
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert __import__("re").search(message, err), err
    assert not os.path.exists(tmp_path / "out")  # nothing half-written
