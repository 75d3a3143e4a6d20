"""The built-in corpus: documentation text of the installed Python standard library.

It exists on every machine with Python, needs no download, and is real English
prose about programming. Documents are module, class and function docstrings,
read with `ast` from the standard library's source files (nothing is imported
or executed), normalised, deduplicated, and split into train and validation
sets by a hash of their text, so the split does not depend on file order.

`read_text_files` reads the user's own corpus (`.txt` / `.txt.gz`, UTF-8), one
document per line or per file; bad files raise or are skipped and counted.
Nothing here imports TensorFlow.
"""

import ast
import dataclasses
import glob
import gzip
import hashlib
import logging
import os
import sysconfig
import zlib

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


# === Corpora from the user's own files ===

TEXT_SUFFIXES = (".txt", ".txt.gz")


@dataclasses.dataclass
class ReadStats:
    """What `read_text_files` read and what it skipped (and why).

    Attributes:
        files_read: paths of the files that gave documents, in reading order.
        documents: number of documents returned.
        blank_lines: blank lines dropped in `one_document_per="line"` mode.
        skipped: `(path, reason)` for every file skipped with `on_error="skip"`.
    """

    files_read: list = dataclasses.field(default_factory=list)
    documents: int = 0
    blank_lines: int = 0
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def num_skipped(self):
        return len(self.skipped)


def _expand(patterns):
    """Sorted, de-duplicated paths for the patterns; a folder means its text files."""
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    paths, seen = [], set()
    for pattern in patterns:
        pattern = os.path.expanduser(os.fspath(pattern))
        if os.path.isdir(pattern):
            matches = [
                os.path.join(root, name)
                for root, _, files in os.walk(pattern)
                for name in files
                if name.endswith(TEXT_SUFFIXES)
            ]
        else:
            matches = [p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p)]
        if not matches:
            raise ValueError(f"no file matches the pattern {pattern!r}")
        for path in sorted(matches):
            if path not in seen:
                seen.add(path)
                paths.append(path)
    return paths


def _read_text(path):
    """The UTF-8 text of one .txt / .txt.gz file; ValueError (naming the file) on bad data."""
    if not path.endswith(TEXT_SUFFIXES):
        raise ValueError(f"{path}: not a .txt or .txt.gz file")
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot read the file ({error})") from error
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"{path}: binary data (NUL byte at offset {nul}), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not valid UTF-8 (byte {data[error.start]:#04x} at offset {error.start})"
        ) from error
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not text
    if not text.strip():
        raise ValueError(f"{path}: the file is empty (no text)")
    return text


def read_text_files(patterns, one_document_per="line", on_error="raise"):
    """Documents from the user's text files: globs, folders, `.txt` and `.txt.gz`, UTF-8.

    Args:
        patterns: a path, glob (`"data/**/*.txt"`, recursive) or folder (all its
            `.txt` / `.txt.gz` files), or a list of them. Files are read in
            sorted order, each once. A pattern that matches nothing raises a
            `ValueError` naming it.
        one_document_per: `"line"` (each non-blank line is a document; a
            trailing `\\r` is dropped) or `"file"` (the whole file, stripped).
        on_error: what a bad file does (empty, binary i.e. contains NUL bytes,
            invalid UTF-8, a broken `.gz`, another suffix): `"raise"` a
            `ValueError` naming the file and the problem, before any document
            is returned; or `"skip"` it, logging a warning and recording
            `(path, reason)` in the returned stats.

    Returns:
        `(documents, stats)`: a list of strings and a `ReadStats`.
    """
    if one_document_per not in ("line", "file"):
        raise ValueError(
            f'one_document_per must be "line" or "file"; received one_document_per={one_document_per!r}'
        )
    if on_error not in ("raise", "skip"):
        raise ValueError(f'on_error must be "raise" or "skip"; received on_error={on_error!r}')
    documents, stats = [], ReadStats()
    for path in _expand(patterns):
        try:
            text = _read_text(path)
        except ValueError as error:
            if on_error == "raise":
                raise
            logger.warning("skipping %s", error)
            stats.skipped.append((path, str(error).removeprefix(f"{path}: ")))
            continue
        stats.files_read.append(path)
        if one_document_per == "file":
            documents.append(text.strip())
            continue
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the final newline ends the last line; it does not start a blank one
        for line in lines:
            line = line.rstrip("\r")
            if line.strip():
                documents.append(line)
            else:
                stats.blank_lines += 1
    stats.documents = len(documents)
    if not documents:
        raise ValueError(f"no text in the files matching {patterns!r} ({stats.num_skipped} skipped)")
    return documents, stats
