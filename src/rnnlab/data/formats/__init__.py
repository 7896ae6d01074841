"""Column formats of tagged text: one module each in this package, registered in ``COLUMN_FORMATS``.

A format is a function ``read(path, options)`` yielding ``{"tokens": [...], "tags": [...]}`` sentences (or
returning a list of them), registered under the name ``data.format`` (training and evaluation data) and
``predict.py``'s ``input_format`` give it; a new format is one module here with
``@COLUMN_FORMATS.register("name")`` on its reader. Yielding keeps a large file out of memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from rnnlab.registry import Registry


@dataclass(frozen=True)
class ColumnOptions:
    """The data options a reader may use; each format reads those it has.

    Args:
        token_column: index of the word column.
        tag_column: index of the tag column; None: the format's own (tags unused, as for ``predict.py``).
        encoding: text encoding of the file.
        delimiter: ``"whitespace"`` or ``"tab"`` between columns.
        comment_prefix: lines starting with it are skipped; None: no comment lines.
    """

    token_column: int = 0
    tag_column: int | None = None
    encoding: str = "utf-8"
    delimiter: str = "whitespace"
    comment_prefix: str | None = None


ColumnReader = Callable[[Path, ColumnOptions], Iterable[dict]]

COLUMN_FORMATS: Registry[ColumnReader] = Registry("column format", "data.format", package=__name__)
