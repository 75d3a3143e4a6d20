"""What the pictures show: a group's maps for one batch row, chosen layers and heads, token labels.

Shared by the heat-map grid, the head view and the CLI, so every view
selects, validates and labels alike:

    panels = select_panels(maps, "cross", tokens={"encoder": [...], "decoder": [...]}, layers=[0], heads=[1, 2])
    panels.weights        # (layers, heads, query, key) float32
    panels.query_tokens, panels.key_tokens, panels.layers, panels.heads

`tokens` is a list (the one token sequence of a BERT, GPT or ViT model) or a
dict {"encoder": [...], "decoder": [...]} (T5). Cross-attention has decoder
queries and encoder keys. Token lists may be shorter than the maps (the row
without its padding): the maps are cut to them.
"""

import dataclasses

import numpy as np

# group -> (the token sequence of its queries, that of its keys)
GROUP_SEQUENCES = {"encoder": ("encoder", "encoder"), "decoder": ("decoder", "decoder"),
                   "cross": ("decoder", "encoder")}


@dataclasses.dataclass
class _Panels:
    group: str
    weights: np.ndarray  # (layers, heads, query, key)
    layers: list
    heads: list
    query_tokens: list  # None without tokens
    key_tokens: list


def select_indices(selection, count, what):
    """The chosen indices among `count` (None: all), checked; ValueError naming bad ones."""
    if selection is None:
        return list(range(count))
    chosen = [selection] if isinstance(selection, (int, np.integer)) else list(selection)
    bad = [i for i in chosen if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < count]
    if not chosen or bad:
        raise ValueError(f"{what} must be a non-empty list of indices in [0, {count}); received {selection!r}")
    return [int(i) for i in chosen]


def _sequence(tokens, name, group):
    if tokens is None:
        return None
    if isinstance(tokens, dict):
        if name not in tokens:
            raise ValueError(f"the {group} maps need tokens[{name!r}]; received tokens for {sorted(tokens)}")
        return list(tokens[name])
    if group == "cross":
        raise ValueError('cross-attention maps need tokens={"encoder": [...], "decoder": [...]}; received a list')
    return list(tokens)


def group_tokens(tokens, group):
    """(query tokens, key tokens) of a group, or (None, None) without tokens."""
    if group not in GROUP_SEQUENCES:
        raise ValueError(f"group must be one of {list(GROUP_SEQUENCES)}; received {group!r}")
    return tuple(_sequence(tokens, name, group) for name in GROUP_SEQUENCES[group])


def select_panels(maps, group, tokens=None, layers=None, heads=None, batch_index=0):
    """A group's weights of one batch row, for the chosen layers and heads, with labels (see module)."""
    if group not in maps:
        raise ValueError(f"these maps have no {group!r} group; they have {list(maps)}")
    stack = maps[group]
    batch, num_heads, query_length, key_length = np.shape(stack[0])
    if not isinstance(batch_index, (int, np.integer)) or not 0 <= batch_index < batch:
        raise ValueError(f"batch_index must be in [0, {batch}); received {batch_index!r}")
    layers = select_indices(layers, len(stack), f"{group} layers")
    heads = select_indices(heads, num_heads, f"{group} heads")
    query_tokens, key_tokens = group_tokens(tokens, group)
    for labels, length, axis in ((query_tokens, query_length, "query"), (key_tokens, key_length, "key")):
        if labels is not None and not 0 < len(labels) <= length:
            raise ValueError(f"the {group} maps have {length} {axis} positions; received {len(labels)} tokens")
    queries = len(query_tokens) if query_tokens is not None else query_length
    keys = len(key_tokens) if key_tokens is not None else key_length
    weights = np.stack([np.asarray(stack[layer], "float32")[batch_index][heads, :queries, :keys]
                        for layer in layers])
    return _Panels(group, weights, layers, heads, query_tokens, key_tokens)


def printable(token):
    """A token as a label: control characters escaped (a newline byte shows as \\n)."""
    token = str(token)
    if token.isprintable():
        return token
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in token)
