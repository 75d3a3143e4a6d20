"""A self-contained HTML "head view" of attention maps: tokens left and right, a line per weight.

    maps = attention_maps(model, inputs)
    save_head_view(maps, "out/head_view.html", tokens=["[CLS]", "the", "cat", "[SEP]"])
    html = head_view_html(maps, tokens={"encoder": [...], "decoder": [...]})      # T5

The page has everything inline (CSS, JavaScript and the weights as JSON) and
refers to nothing outside itself, so it opens offline in any browser. Queries
are on the left, keys on the right; each chosen head draws a line from query
to key whose opacity is the weight, in the head's colour. A selector picks
the group (encoder, decoder, cross) and the layer, checkboxes the heads;
hovering a token shows only its lines (a query's attention, or what attends
to a key) and shades the tokens on the other side by the weight.

The weights are stored rounded to `decimals` places (default 4, so within
5e-5 of the maps) in <script type="application/json" id="attention-data">:
{"groups": [{"name", "layers", "heads", "query_tokens", "key_tokens",
"attention": [layer][head][query][key]}], "decimals"}. A page holds at most
MAX_VALUES weights; choose layers / heads for big models.
"""

import html
import json
import os

import numpy as np

from keras_transformer.inspect.selection import printable, select_panels

MAX_VALUES = 4_000_000  # about 28 MB of JSON: BERT-base's 144 heads over 160 tokens
DATA_ID = "attention-data"

_STYLE = """
body { font-family: sans-serif; font-size: 13px; margin: 16px; color: #222; }
#controls { margin-bottom: 12px; display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
#heads label { margin-right: 6px; padding: 1px 4px; border-radius: 3px; cursor: pointer; }
#view { display: flex; align-items: flex-start; }
.tokens { display: flex; flex-direction: column; }
.token { height: 20px; line-height: 20px; padding: 0 6px; white-space: pre; cursor: default; border-radius: 3px; }
.left .token { text-align: right; }
.token.active { outline: 1px solid #444; }
canvas { display: block; }
"""

_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("attention-data").textContent);
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"];
  const ROW = 20, WIDTH = 260;
  const groupSelect = document.getElementById("group"), layerSelect = document.getElementById("layer");
  const headsBox = document.getElementById("heads"), canvas = document.getElementById("lines");
  const left = document.getElementById("left"), right = document.getElementById("right");
  let group = null, checked = [], hover = null;

  function rgba(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }
  function tokens(box, list, side) {
    box.textContent = "";
    list.forEach(function (text, index) {
      const div = document.createElement("div");
      div.className = "token";
      div.textContent = text;
      div.addEventListener("mouseenter", function () { hover = {side: side, index: index}; draw(); });
      div.addEventListener("mouseleave", function () { hover = null; draw(); });
      box.appendChild(div);
    });
  }
  function chooseGroup(index) {
    group = data.groups[index];
    layerSelect.textContent = "";
    group.layers.forEach(function (layer, i) {
      const option = document.createElement("option");
      option.value = i; option.textContent = "layer " + layer;
      layerSelect.appendChild(option);
    });
    headsBox.textContent = "";
    checked = group.heads.map(function () { return true; });
    group.heads.forEach(function (head, i) {
      const label = document.createElement("label"), box = document.createElement("input");
      box.type = "checkbox"; box.checked = true;
      box.addEventListener("change", function () { checked[i] = box.checked; draw(); });
      label.style.background = rgba(COLORS[i % COLORS.length], 0.25);
      label.appendChild(box); label.appendChild(document.createTextNode("head " + head));
      headsBox.appendChild(label);
    });
    tokens(left, group.query_tokens, "query");
    tokens(right, group.key_tokens, "key");
    draw();
  }
  function draw() {
    const weights = group.attention[layerSelect.value || 0];
    const queries = group.query_tokens.length, keys = group.key_tokens.length;
    canvas.width = WIDTH; canvas.height = Math.max(queries, keys) * ROW;
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    const shade = {query: new Array(queries).fill(0), key: new Array(keys).fill(0)};
    const shown = checked.filter(Boolean).length || 1;
    weights.forEach(function (head, h) {
      if (!checked[h]) return;
      context.strokeStyle = COLORS[h % COLORS.length];
      head.forEach(function (row, q) {
        row.forEach(function (weight, k) {
          if (hover && hover.index !== (hover.side === "query" ? q : k)) return;
          if (hover && hover.side === "query") shade.key[k] += weight / shown;
          if (hover && hover.side === "key") shade.query[q] += weight / shown;
          if (weight <= 0) return;
          context.globalAlpha = Math.min(1, weight);
          context.beginPath(); context.moveTo(0, q * ROW + ROW / 2); context.lineTo(WIDTH, k * ROW + ROW / 2);
          context.stroke();
        });
      });
    });
    context.globalAlpha = 1;
    [[left, "query"], [right, "key"]].forEach(function (pair) {
      Array.prototype.forEach.call(pair[0].children, function (div, i) {
        const own = hover && hover.side === pair[1] && hover.index === i;
        div.className = own ? "token active" : "token";
        const level = hover && !own ? Math.min(1, shade[pair[1]][i]) : 0;
        div.style.background = level > 0 ? "rgba(255,140,0," + level + ")" : "";
      });
    });
  }
  data.groups.forEach(function (g, i) {
    const option = document.createElement("option");
    option.value = i; option.textContent = g.name;
    groupSelect.appendChild(option);
  });
  groupSelect.addEventListener("change", function () { chooseGroup(Number(groupSelect.value)); });
  layerSelect.addEventListener("change", draw);
  chooseGroup(0);
})();
"""


def _script_json(value):
    """JSON that cannot end its <script> element: <, > and & as \\u escapes (still valid JSON)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _labels(tokens, length):
    return [printable(t) for t in tokens] if tokens is not None else [str(i) for i in range(length)]


def head_view_data(maps, tokens=None, layers=None, heads=None, batch_index=0, decimals=4):
    """The page's JSON object (see the module docstring); `layers` / `heads` apply to every group."""
    groups, total = [], 0
    for group in maps:
        panels = select_panels(maps, group, tokens, layers, heads, batch_index)
        total += panels.weights.size
        if total > MAX_VALUES:
            raise ValueError(
                f"the head view would hold more than {MAX_VALUES:,} weights ({group} alone: "
                f"{panels.weights.size:,}); choose some layers/heads (CLI: --layers / --heads)")
        queries, keys = panels.weights.shape[2:]
        groups.append({"name": group, "layers": panels.layers, "heads": panels.heads,
                       "query_tokens": _labels(panels.query_tokens, queries),
                       "key_tokens": _labels(panels.key_tokens, keys),
                       "attention": np.round(panels.weights.astype("float64"), decimals).tolist()})
    return {"groups": groups, "decimals": decimals}


def head_view_html(maps, tokens=None, layers=None, heads=None, batch_index=0, title="Attention head view",
                   decimals=4):
    """The page as a string. Arguments as `attention_figure` (keras_transformer.inspect.heatmaps)."""
    data = head_view_data(maps, tokens, layers, heads, batch_index, decimals)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h3>{html.escape(title)}</h3>",
        '<div id="controls"><label>group <select id="group"></select></label>',
        '<label>layer <select id="layer"></select></label><span id="heads"></span></div>',
        '<div id="view"><div id="left" class="tokens left"></div><canvas id="lines"></canvas>',
        '<div id="right" class="tokens right"></div></div>',
        "<p>Queries left, keys right; a line's opacity is the weight. Hover a token to see only its lines.</p>",
        f'<script type="application/json" id="{DATA_ID}">{_script_json(data)}</script>',
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
        "",
    ])


def save_head_view(maps, path, tokens=None, layers=None, heads=None, batch_index=0, title="Attention head view",
                   decimals=4):
    """Writes `head_view_html(...)` to `path`; returns the path."""
    page = head_view_html(maps, tokens, layers, heads, batch_index, title, decimals)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path
