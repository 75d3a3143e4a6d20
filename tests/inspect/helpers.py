"""Made-up attention maps and a PNG header reader for the picture tests."""

import json
import re
import struct

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def random_maps(groups, num_layers=3, num_heads=4, batch=2, seed=0):
    """{group: [(batch, heads, query, key) softmax rows]}; groups maps a name to (query, key) lengths."""
    rng = np.random.default_rng(seed)
    maps = {}
    for group, (queries, keys) in groups.items():
        logits = rng.normal(size=(num_layers, batch, num_heads, queries, keys)) * 2
        weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        maps[group] = [layer.astype("float32") for layer in weights]
    return maps


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; asserts the file is a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", head
    return struct.unpack(">II", head[16:24])


def head_view_json(page):
    """The JSON object embedded in a head-view page."""
    match = re.search(r'<script type="application/json" id="attention-data">(.*?)</script>', page, re.S)
    assert match, "no embedded attention data"
    return json.loads(match.group(1))
