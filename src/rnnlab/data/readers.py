"""Readers: one file on disk -> its examples (plain dicts) one at a time, with errors that name file and line.

Readers yield, so that a file larger than memory is never held as Python objects; ``Sentences`` reads a file
anew on each pass for whoever needs several (counting vocabularies, then encoding).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rnnlab.data.errors import DataError

UPOS_COLUMN = 3  # CoNLL-U: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC
DELIMITERS = ("whitespace", "tab")  # of read_conll's columns


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
            f"{path}:{_undecodable_line(path, opener, encoding)}: cannot decode the file as {encoding} "
            f"({error.reason}); set the data option `encoding` to the file's encoding (e.g. encoding=cp1252)") from None


def _undecodable_line(path: Path, opener, encoding: str) -> int:
    """The number of the first line that does not decode (text files decode ahead of the lines they yield)."""
    with opener(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return number
    return number


class Sentences:
    """A file's examples, read anew by each iteration: a reader (and its arguments) without the data.

    Args:
        read: returns the examples (an iterator, or a list for a reader that builds one).
    """

    def __init__(self, read: Callable[[], Iterable[dict]]):
        self.read = read

    def __iter__(self) -> Iterator[dict]:
        return iter(self.read())

    def __bool__(self) -> bool:
        """Whether the file holds an example; reads only up to the first one."""
        return next(iter(self), None) is not None


def check_conll_options(delimiter: str, comment_prefix: str | None) -> None:
    """Raises ``DataError`` naming the data option when ``read_conll`` cannot use a value."""
    if delimiter not in DELIMITERS:
        raise DataError(f"delimiter={delimiter!r} is no column delimiter; set data.delimiter to one of "
                        f"{', '.join(DELIMITERS)}")
    if comment_prefix is not None and not (isinstance(comment_prefix, str) and comment_prefix):
        raise DataError(f"comment_prefix={comment_prefix!r} is not what comment lines start with; set "
                        f"data.comment_prefix to a non-empty string (e.g. '#'), or null for no comment lines")


def _conll_advice(line: str, delimiter: str, comment_prefix: str | None) -> str:
    """How to fix a line with the wrong number of columns: the option that most likely reads it."""
    if comment_prefix is None and line.startswith("#"):
        return "set data.comment_prefix='#' to skip comment lines, or fix the line"
    if delimiter == "whitespace" and "\t" in line:
        return "set data.delimiter=tab if tokens contain spaces, or fix the line or token_column/tag_column"
    if delimiter == "tab" and "\t" not in line:
        return "set data.delimiter=whitespace if columns are separated by spaces, or fix the line"
    return "fix the line or set token_column/tag_column"


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1, encoding: str = "utf-8",
               delimiter: str = "whitespace", comment_prefix: str | None = None) -> Iterator[dict]:
    """Reads a CoNLL column file (one token per line, blank or whitespace-only lines between sentences).

    ``-DOCSTART-`` lines are skipped. Every token line must have as many columns as the first one.

    Args:
        path: file to read.
        token_column: index of the word column.
        tag_column: index of the tag column (negative counts from the end).
        encoding: text encoding.
        delimiter: ``"whitespace"``: columns are split on any run of spaces and tabs; ``"tab"``: on each tab
            only, so a token may contain spaces (surrounding spaces of a field are dropped).
        comment_prefix: lines starting with it are skipped (e.g. ``"#"`` for ``# sent_id = ...`` lines);
            None reads every line as a token, as a ``# SYM O`` line of CoNLL-2003 must be.

    Yields:
        ``{"tokens": [...], "tags": [...]}``, one per sentence.
    """
    check_conll_options(delimiter, comment_prefix)
    needed = max(token_column, tag_column) + 1 if tag_column >= 0 else max(token_column + 1, -tag_column)
    tokens: list[str] = []
    tags: list[str] = []
    width = None
    for number, line in read_lines(path, encoding):
        if not line.strip():
            if tokens:
                yield {"tokens": tokens, "tags": tags}
                tokens, tags = [], []
            continue
        if comment_prefix is not None and line.startswith(comment_prefix):
            continue
        if line.split(maxsplit=1)[0] == "-DOCSTART-":  # whatever the delimiter, as CoNLL-2003 writes it
            continue
        columns = line.split() if delimiter == "whitespace" else [field.strip(" ") for field in line.split("\t")]
        if len(columns) < needed or (width is not None and len(columns) != width):
            expected = width if width is not None else f"at least {needed}"
            separated = "whitespace-separated" if delimiter == "whitespace" else "tab-separated"
            raise DataError(f"{path}:{number}: expected {expected} {separated} columns, found {len(columns)} in "
                            f"{line!r}; {_conll_advice(line, delimiter, comment_prefix)}")
        if not (columns[token_column] and columns[tag_column]):
            raise DataError(f"{path}:{number}: empty token or tag field in {line!r}; fix the line or set "
                            f"token_column/tag_column")
        width = len(columns)
        tokens.append(columns[token_column])
        tags.append(columns[tag_column])
    if tokens:
        yield {"tokens": tokens, "tags": tags}


def read_conllu(path: str | Path, tag_column: int = UPOS_COLUMN, encoding: str = "utf-8") -> Iterator[dict]:
    """Reads a CoNLL-U file: the FORM column and a tag column (UPOS by default).

    Comment lines, multiword-token lines (``1-2``) and empty nodes (``1.1``) are skipped, so tokens are the
    syntactic words.

    Yields:
        ``{"tokens": [...], "tags": [...]}``, one per sentence.
    """
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in read_lines(path, encoding):
        if not line.strip():
            if tokens:
                yield {"tokens": tokens, "tags": tags}
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
        yield {"tokens": tokens, "tags": tags}
