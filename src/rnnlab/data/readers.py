"""Readers: one file on disk -> a list of examples (plain dicts), with errors that name file and line."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

from rnnlab.data.errors import DataError

UPOS_COLUMN = 3  # CoNLL-U: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC


def read_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, line)`` without the line ending; ``.gz`` files are decompressed.

    Windows line endings are accepted. A file that does not decode raises ``DataError`` naming the file, the
    line and the ``encoding`` option.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    line_number = 0
    try:
        with opener(path, "rt", encoding=encoding, newline=None) as handle:
            for line_number, line in enumerate(handle, start=1):
                yield line_number, line.rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}:{line_number + 1}: cannot decode the file as {encoding} ({error.reason}); "
            f"set the data option `encoding` to the file's encoding (e.g. encoding=cp1252)") from None


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1,
               encoding: str = "utf-8") -> list[dict]:
    """Reads a CoNLL column file (one token per line, blank or whitespace-only lines between sentences).

    ``-DOCSTART-`` lines are skipped. Columns are split on any whitespace.

    Args:
        path: file to read.
        token_column: index of the word column.
        tag_column: index of the tag column (negative counts from the end).
        encoding: text encoding.

    Returns:
        ``[{"tokens": [...], "tags": [...]}, ...]``, one per sentence.
    """
    needed = max(token_column, tag_column) + 1 if tag_column >= 0 else max(token_column + 1, -tag_column)
    sentences: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    width = None
    for number, line in read_lines(path, encoding):
        columns = line.split()
        if not columns:
            if tokens:
                sentences.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        if columns[0] == "-DOCSTART-":
            continue
        if len(columns) < needed or (width is not None and len(columns) != width):
            expected = width if width is not None else f"at least {needed}"
            raise DataError(f"{path}:{number}: expected {expected} whitespace-separated columns, found "
                            f"{len(columns)} in {line!r}; fix the line or set token_column/tag_column")
        width = len(columns)
        tokens.append(columns[token_column])
        tags.append(columns[tag_column])
    if tokens:
        sentences.append({"tokens": tokens, "tags": tags})
    return sentences


def read_conllu(path: str | Path, tag_column: int = UPOS_COLUMN, encoding: str = "utf-8") -> list[dict]:
    """Reads a CoNLL-U file: the FORM column and a tag column (UPOS by default).

    Comment lines, multiword-token lines (``1-2``) and empty nodes (``1.1``) are skipped, so tokens are the
    syntactic words.

    Returns:
        ``[{"tokens": [...], "tags": [...]}, ...]``, one per sentence.
    """
    sentences: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in read_lines(path, encoding):
        if not line.strip():
            if tokens:
                sentences.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        if line.startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) != 10:
            raise DataError(f"{path}:{number}: a CoNLL-U word line has 10 tab-separated fields, found "
                            f"{len(columns)} in {line!r}")
        if "-" in columns[0] or "." in columns[0]:
            continue
        tokens.append(columns[1])
        tags.append(columns[tag_column])
    if tokens:
        sentences.append({"tokens": tokens, "tags": tags})
    return sentences
