"""CoNLL columns: a token a line, blank lines between sentences (``rnnlab.data.readers.read_conll``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from rnnlab.data.formats import COLUMN_FORMATS, ColumnOptions
from rnnlab.data.readers import read_conll


@COLUMN_FORMATS.register("conll")
def read(path: Path, options: ColumnOptions) -> Iterator[dict]:
    """Without a tag column, the last column is read as one (any token line has one)."""
    tag_column = -1 if options.tag_column is None else options.tag_column
    return read_conll(path, options.token_column, tag_column, options.encoding, options.delimiter,
                      options.comment_prefix)
