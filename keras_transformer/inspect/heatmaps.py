"""Heat-map grids of attention maps: rows are layers, columns are heads; one PNG per group.

    maps = attention_maps(model, inputs)
    paths = save_attention_heatmaps(maps, "out/", tokens=["[CLS]", "hello", "[SEP]"])
    # out/attention_encoder.png (and attention_decoder.png, attention_cross.png for T5)
    figure = attention_figure(maps, "encoder", tokens=..., layers=[0, 1], heads=[0])  # matplotlib Figure

Each panel is one head's (query, key) probabilities of one batch row: queries
down, keys across, token labels on the left column and bottom row (up to
MAX_LABELLED_TOKENS tokens), one colour scale from 0 to the largest weight
shown. A grid holds at most MAX_PANELS panels: for bigger models choose
`layers` / `heads` (the error says so). matplotlib is imported on first use
and draws with its non-interactive Agg canvas (no display needed, no global
backend change).
"""

import os

from keras_transformer.inspect.selection import printable, select_panels

MAX_PANELS = 144  # 12 layers x 12 heads (BERT-base) fits; BERT-large's 24 x 16 needs a choice
MAX_LABELLED_TOKENS = 80  # longer sequences get no tick labels: they would overlap


def _panel_inches(query_length, key_length, rows, columns):
    side = min(max(1.6, 0.13 * max(query_length, key_length)), 4.0)
    return min(side, 40.0 / columns, 60.0 / rows)  # the whole figure stays under ~40 x 60 inches


def _label(token):
    return printable(token).replace("$", r"\$")  # "$" would start matplotlib mathtext


def _set_labels(axis, set_ticks, set_labels, tokens, fontsize, rotation=0):
    if tokens is None or len(tokens) > MAX_LABELLED_TOKENS:
        set_ticks([])
        return
    set_ticks(range(len(tokens)))
    set_labels([_label(t) for t in tokens], fontsize=fontsize, rotation=rotation)


def attention_figure(maps, group, tokens=None, layers=None, heads=None, batch_index=0):
    """A matplotlib `Figure`: one row per chosen layer, one column per chosen head.

    Args:
        maps: what `attention_maps` returns.
        group: "encoder", "decoder" or "cross".
        tokens: token strings: a list (BERT, GPT, ViT) or {"encoder": [...],
            "decoder": [...]} (T5); None for no labels. Shorter than the maps:
            the maps are cut to them (a padded row).
        layers, heads: indices to show (default all, up to MAX_PANELS panels).
        batch_index: which row of the batch.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = select_panels(maps, group, tokens, layers, heads, batch_index)
    rows, columns = len(panels.layers), len(panels.heads)
    if rows * columns > MAX_PANELS:
        raise ValueError(
            f"{rows} {group} layers x {columns} heads = {rows * columns} panels is more than {MAX_PANELS} "
            "in one picture; choose some with layers=/heads= (CLI: --layers / --heads)")
    query_length, key_length = panels.weights.shape[2:]
    side = _panel_inches(query_length, key_length, rows, columns)
    fontsize = max(3.0, min(8.0, side * 72 / max(query_length, key_length) * 0.8))
    figure = Figure(figsize=(columns * side + 1.5, rows * side + 1.0), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    top = max(float(panels.weights.max()), 1e-9)
    for row, layer in enumerate(panels.layers):
        for column, head in enumerate(panels.heads):
            axes = grid[row][column]
            image = axes.imshow(panels.weights[row, column], cmap="viridis", vmin=0.0, vmax=top,
                                interpolation="nearest", aspect="auto")
            _set_labels(axes, axes.set_yticks, axes.set_yticklabels,
                        panels.query_tokens if column == 0 else None, fontsize)
            _set_labels(axes, axes.set_xticks, axes.set_xticklabels,
                        panels.key_tokens if row == rows - 1 else None, fontsize, rotation=90)
            if row == 0:
                axes.set_title(f"head {head}", fontsize=9)
            if column == 0:
                axes.set_ylabel(f"layer {layer}", fontsize=9)
    figure.suptitle(f"{group} attention (queries down, keys across)", fontsize=10)
    figure.colorbar(image, ax=grid, shrink=0.6, label="attention weight")
    return figure


def save_attention_heatmaps(maps, directory, tokens=None, layers=None, heads=None, batch_index=0,
                            prefix="attention", dpi=100):
    """Writes DIRECTORY/{prefix}_{group}.png for every group of `maps`; returns the paths.

    Arguments as `attention_figure`; `layers` / `heads` apply to every group.
    """
    figures = {group: attention_figure(maps, group, tokens, layers, heads, batch_index) for group in maps}
    os.makedirs(directory, exist_ok=True)  # only once every figure is drawn: a bad choice writes nothing
    paths = []
    for group, figure in figures.items():
        path = os.path.join(directory, f"{prefix}_{group}.png")
        figure.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
