"""The HTML head view: self-contained (nothing fetched), and its embedded weights are the maps."""

import re

import numpy as np
import pytest

from keras_transformer.inspect import head_view_html, save_head_view
from keras_transformer.inspect import head_view as head_view_module
from tests.inspect.helpers import head_view_json, random_maps

LENGTHS = {"encoder": (5, 5), "decoder": (3, 3), "cross": (3, 5)}
TOKENS = {"encoder": ["</script><b>x", "a&b", "$", "é", "tab\t"], "decoder": ["<pad>", "y", "z"]}


def test_the_page_is_self_contained_and_its_json_round_trips_to_the_maps(tmp_path):
    maps = random_maps(LENGTHS, num_layers=3, num_heads=4)
    path = save_head_view(maps, str(tmp_path / "view.html"), tokens=TOKENS, layers=[0, 2], heads=[1, 2, 3],
                          batch_index=1, title="<T5> & co")
    page = open(path, encoding="utf-8").read()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|url\(", page)  # no fetched scripts or styles
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the token "</script>" is escaped
    assert "<title>&lt;T5&gt; &amp; co</title>" in page
    data = head_view_json(page)
    assert [group["name"] for group in data["groups"]] == ["encoder", "decoder", "cross"] and data["decimals"] == 4
    for group in data["groups"]:
        assert group["layers"] == [0, 2] and group["heads"] == [1, 2, 3]
        expected = np.stack([maps[group["name"]][layer][1][[1, 2, 3]] for layer in (0, 2)])
        np.testing.assert_allclose(np.array(group["attention"]), expected, atol=5e-5 + 1e-7, rtol=0)
    cross = data["groups"][2]
    assert cross["query_tokens"] == TOKENS["decoder"]
    assert cross["key_tokens"] == ["</script><b>x", "a&b", "$", "é", "tab\\t"]


def test_without_tokens_positions_label_the_rows_and_big_pages_are_refused(monkeypatch):
    maps = random_maps({"decoder": (4, 4)}, num_layers=2, num_heads=2, batch=1)
    data = head_view_json(head_view_html(maps, decimals=6))
    assert data["groups"][0]["query_tokens"] == ["0", "1", "2", "3"]
    np.testing.assert_allclose(np.array(data["groups"][0]["attention"]), np.stack([m[0] for m in maps["decoder"]]),
                               atol=5e-7 + 1e-8, rtol=0)
    monkeypatch.setattr(head_view_module, "MAX_VALUES", 40)  # 2 layers x 2 heads x 16 = 64 weights
    with pytest.raises(ValueError, match="more than 40 weights .*choose some layers/heads"):
        head_view_html(maps)
    assert len(head_view_json(head_view_html(maps, heads=[0]))["groups"][0]["attention"][0]) == 1
