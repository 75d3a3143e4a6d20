import gzip
import os
import subprocess
import sys

import pytest

from keras_transformer.text.corpus import read_text_files, split_documents, stdlib_documents


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


@pytest.fixture
def corpus(tmp_path):
    write(tmp_path / "a.txt", "\ufefffirst line\r\n\r\nsecond line\n".encode("utf-8"))
    write(tmp_path / "sub" / "b.txt.gz", gzip.compress("gzipped é line\nlast\n".encode("utf-8")))
    return tmp_path


def test_lines_from_globs_and_gzip(corpus):
    documents, stats = read_text_files(str(corpus / "**" / "*.txt*"))
    # Sorted paths, BOM and \r dropped, blank lines counted, not returned.
    assert documents == ["first line", "second line", "gzipped é line", "last"]
    assert stats.files_read == [str(corpus / "a.txt"), str(corpus / "sub" / "b.txt.gz")]
    assert (stats.documents, stats.blank_lines, stats.num_skipped) == (4, 1, 0)


def test_one_document_per_file_and_folder_patterns(corpus):
    documents, _ = read_text_files([str(corpus), str(corpus / "a.txt")], one_document_per="file")
    assert documents == ["first line\r\n\r\nsecond line", "gzipped é line\nlast"]  # each file once


def test_no_matching_file_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "missing*.txt")
    with pytest.raises(ValueError, match="no file matches the pattern .*missing"):
        read_text_files(pattern)


BAD_FILES = {
    "empty.txt": (b"  \n\n", "the file is empty"),
    "binary.txt": (b"text\x00\x01\x02", "binary data .NUL byte at offset 4"),
    "latin1.txt": ("caf\u00e9".encode("latin-1"), "not valid UTF-8 .byte 0xe9 at offset 3"),
    "broken.txt.gz": (b"\x1f\x8b\x08not gzip", "cannot read"),
    "notes.md": (b"# not a .txt file", "not a .txt or .txt.gz file"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_raises_naming_it(tmp_path, name):
    data, message = BAD_FILES[name]
    path = write(tmp_path / name, data)
    write(tmp_path / "good.txt", b"fine\n")
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        read_text_files(str(tmp_path / "*"))
    assert path


def test_bad_files_are_skipped_and_counted(tmp_path, caplog):
    for name, (data, _) in BAD_FILES.items():
        write(tmp_path / name, data)
    write(tmp_path / "good.txt", b"fine\n")
    documents, stats = read_text_files(str(tmp_path / "*"), on_error="skip")
    assert documents == ["fine"]
    assert stats.num_skipped == len(BAD_FILES)
    assert sorted(os.path.basename(path) for path, _ in stats.skipped) == sorted(BAD_FILES)
    assert dict((os.path.basename(p), reason) for p, reason in stats.skipped)["empty.txt"] == "the file is empty (no text)"
    assert sum("skipping" in record.message for record in caplog.records) == len(BAD_FILES)


def test_only_bad_files_is_an_error_even_when_skipping(tmp_path):
    write(tmp_path / "empty.txt", b"")
    with pytest.raises(ValueError, match="no text in the files .*1 skipped"):
        read_text_files(str(tmp_path / "*.txt"), on_error="skip")


def test_arguments_are_checked(corpus):
    with pytest.raises(ValueError, match="one_document_per=.paragraph"):
        read_text_files(str(corpus), one_document_per="paragraph")
    with pytest.raises(ValueError, match="on_error=.ignore"):
        read_text_files(str(corpus), on_error="ignore")


def test_builtin_corpus_unchanged():
    documents = stdlib_documents(max_files=20)
    assert documents and len(set(documents)) == len(documents)
    assert all(len(d) >= 80 and "\n" not in d for d in documents)
    train, validation = split_documents(documents, 0.2)
    assert split_documents(list(reversed(documents)), 0.2)[1] == list(reversed(validation))
    assert len(train) + len(validation) == len(documents)


def test_text_package_imports_without_tensorflow():
    code = (
        "import sys, keras_transformer, keras_transformer.text as text\n"
        "assert callable(text.read_text_files) and 'causal_lm_dataset' in dir(text)\n"
        "assert 'tensorflow' not in sys.modules and 'keras_hub' not in sys.modules, 'eager import'\n"
    )
    environment = dict(os.environ, KERAS_BACKEND="jax")
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
