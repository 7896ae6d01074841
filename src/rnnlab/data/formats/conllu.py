"""CoNLL-U: ten tab-separated fields a word (``rnnlab.data.readers.read_conllu``); the token is the FORM."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from rnnlab.data.formats import COLUMN_FORMATS, ColumnOptions
from rnnlab.data.readers import UPOS_COLUMN, read_conllu


@COLUMN_FORMATS.register("conllu")
def read(path: Path, options: ColumnOptions) -> Iterator[dict]:
    """Without a tag column, UPOS."""
    tag_column = UPOS_COLUMN if options.tag_column is None else options.tag_column
    return read_conllu(path, tag_column, options.encoding)
