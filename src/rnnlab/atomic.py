"""Writes that never leave a half-written file where a whole one was: write beside it, then rename over it.

A rename within one folder is atomic on POSIX file systems, so a reader (or a resumed run) finds either the old
file or the new one, never a part of the new one, whatever interrupts the write (a full disk, a kill).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write; renames it to ``path`` when the block succeeds.

    On an error the temporary file is removed and ``path`` is left as it was; the error propagates.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` through ``replacing``."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
