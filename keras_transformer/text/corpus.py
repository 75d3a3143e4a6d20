"""The built-in corpus: documentation text of the installed Python standard library.

It exists on every machine with Python, needs no download, and is real English
prose about programming. Documents are module, class and function docstrings,
read with `ast` from the standard library's source files (nothing is imported
or executed), normalised, deduplicated, and split into train and validation
sets by a hash of their text, so the split does not depend on file order.
"""

import ast
import hashlib
import logging
import os
import sysconfig

logger = logging.getLogger(__name__)

MIN_CHARACTERS = 80


def _docstrings(source):
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=True)
            if text:
                yield text


def _normalise(text):
    # One document per paragraph block, whitespace folded, so lines read as prose.
    return " ".join(text.split())


def stdlib_documents(stdlib_dir=None, max_files=None):
    """Deduplicated docstrings of the standard library, in a stable order.

    Args:
        stdlib_dir: the folder to read (default: this interpreter's stdlib).
        max_files: read at most this many files (sorted by path), for speed.
    """
    stdlib_dir = stdlib_dir or sysconfig.get_paths()["stdlib"]
    paths = []
    for root, dirs, files in os.walk(stdlib_dir):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "test", "tests", "idlelib"))
        paths.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".py"))
    paths.sort()
    if max_files is not None:
        paths = paths[:max_files]
    seen, documents = set(), []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            logger.info("skipping %s: %s", path, error)
            continue
        for text in _docstrings(source):
            text = _normalise(text)
            if len(text) >= MIN_CHARACTERS and text not in seen:
                seen.add(text)
                documents.append(text)
    if not documents:
        raise ValueError(f"no documentation text found under {stdlib_dir!r}")
    return documents


def split_documents(documents, validation_fraction=0.05):
    """Splits by a hash of each text: the same document always lands on the same side."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must be in (0, 1); received validation_fraction={validation_fraction}"
        )
    train, validation = [], []
    threshold = int(validation_fraction * 2**32)
    for text in documents:
        digest = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big")
        (validation if digest < threshold else train).append(text)
    return train, validation
