"""Heat-map grids: rows are layers, columns heads, labelled with tokens; PNGs per group."""

import numpy as np
import pytest

from keras_transformer.inspect import attention_figure, save_attention_heatmaps
from keras_transformer.inspect.heatmaps import MAX_PANELS
from tests.inspect.helpers import png_size, random_maps

T5_LENGTHS = {"encoder": (6, 6), "decoder": (4, 4), "cross": (4, 6)}
T5_TOKENS = {"encoder": ["▁trans", "late", ":", "▁hi", "!", "</s>"], "decoder": ["<pad>", "▁hal", "lo", "!"]}


def _panels(figure):
    return [axes for axes in figure.axes if axes.get_label() != "<colorbar>"]


def _labels(texts):
    return [text.get_text() for text in texts]


def test_grid_is_layers_by_heads_showing_the_chosen_maps_with_token_labels():
    maps = random_maps({"encoder": (5, 5)})
    tokens = ["[CLS]", "a", "$x$", "b\n", "[SEP]"]
    figure = attention_figure(maps, "encoder", tokens=tokens, layers=[0, 2], heads=[1, 3], batch_index=1)
    panels = _panels(figure)
    assert len(panels) == 2 * 2 and len(figure.axes) == 2 * 2 + 1  # + the colour bar
    for index, axes in enumerate(panels):
        layer, head = [0, 2][index // 2], [1, 3][index % 2]
        np.testing.assert_array_equal(axes.images[0].get_array(), maps["encoder"][layer][1, head])
    assert [axes.get_title() for axes in panels[:2]] == ["head 1", "head 3"]
    assert [panels[0].get_ylabel(), panels[2].get_ylabel()] == ["layer 0", "layer 2"]
    shown = ["[CLS]", "a", r"\$x\$", r"b\n", "[SEP]"]  # "$" escaped for mathtext, the newline spelled out
    assert _labels(panels[0].get_yticklabels()) == shown and _labels(panels[2].get_yticklabels()) == shown
    assert _labels(panels[2].get_xticklabels()) == shown and _labels(panels[3].get_xticklabels()) == shown
    assert panels[1].get_yticklabels() == [] and panels[0].get_xticklabels() == []  # labels on the edges only
    assert len(_panels(attention_figure(maps, "encoder"))) == 3 * 4  # default: every layer and head


def test_one_png_per_group_with_decoder_queries_and_encoder_keys_for_cross(tmp_path):
    maps = random_maps(T5_LENGTHS, num_layers=2, num_heads=3)
    paths = save_attention_heatmaps(maps, str(tmp_path / "out"), tokens=T5_TOKENS)
    assert paths == [str(tmp_path / "out" / f"attention_{group}.png") for group in ("encoder", "decoder", "cross")]
    sizes = [png_size(path) for path in paths]
    assert all(300 <= width <= 4000 and 200 <= height <= 4000 for width, height in sizes), sizes
    single = save_attention_heatmaps(maps, str(tmp_path / "one"), tokens=T5_TOKENS, layers=[1], heads=[0])
    assert png_size(single[0])[0] < sizes[0][0] / 2  # one column instead of three
    cross = _panels(attention_figure(maps, "cross", tokens=T5_TOKENS))
    assert _labels(cross[0].get_yticklabels()) == T5_TOKENS["decoder"]
    assert _labels(cross[-1].get_xticklabels()) == T5_TOKENS["encoder"]
    assert cross[0].images[0].get_array().shape == (4, 6)


def test_a_padded_row_is_cut_to_its_tokens():
    maps = random_maps({"decoder": (6, 6)})
    figure = attention_figure(maps, "decoder", tokens=["a", "b", "c"], layers=[1], heads=[2])
    np.testing.assert_array_equal(_panels(figure)[0].images[0].get_array(), maps["decoder"][1][0, 2, :3, :3])


def test_bad_choices_are_errors_that_say_what_to_do():
    big = random_maps({"encoder": (2, 2)}, num_layers=13, num_heads=12, batch=1)
    with pytest.raises(ValueError, match=f"13 encoder layers x 12 heads = 156 panels is more than {MAX_PANELS}.*"
                                         "layers=/heads="):
        attention_figure(big, "encoder")
    assert len(_panels(attention_figure(big, "encoder", layers=[0, 12]))) == 24
    maps = random_maps(T5_LENGTHS)
    with pytest.raises(ValueError, match=r"encoder layers must be .* in \[0, 3\); received \[3\]"):
        attention_figure(maps, "encoder", layers=[3])
    with pytest.raises(ValueError, match=r"cross heads must be .* in \[0, 4\)"):
        attention_figure(maps, "cross", heads=[])
    with pytest.raises(ValueError, match="cross-attention maps need tokens="):
        attention_figure(maps, "cross", tokens=["a"] * 4)
    with pytest.raises(ValueError, match="the decoder maps have 4 query positions; received 5 tokens"):
        attention_figure(maps, "decoder", tokens=T5_TOKENS["encoder"][:5])
    with pytest.raises(ValueError, match=r"batch_index must be in \[0, 2\)"):
        attention_figure(maps, "encoder", batch_index=2)
    with pytest.raises(ValueError, match="no 'cross' group; they have \\['encoder'\\]"):
        attention_figure(random_maps({"encoder": (3, 3)}), "cross")
