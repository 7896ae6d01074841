"""Pretrained word vectors from a local text file: GloVe (``word v1 ... vd``) or word2vec text (a ``count dim``
header line, then the same), plain or gzipped."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

log = logging.getLogger(__name__)

OPTION = "model.embedding_dim"


class VectorFileError(ValueError):
    """A vectors file that cannot be used; the message names the file and line."""


def read_vectors(path: str | Path, words: Sequence[str], dim: int) -> tuple[Tensor, Tensor]:
    """The vectors of ``words`` found in the file: the exact form first, else the lowercased one.

    The first vector line fixes the file's size (or the word2vec header does); later lines are split from the
    right, so a word may hold spaces (as a few in GloVe 840B do). Only the values of wanted words are parsed.

    Args:
        path: the vectors file (``.gz`` read as gzip).
        words: the vocabulary, in id order.
        dim: the embedding size the model expects.

    Returns:
        ``ids`` ``(N,)`` of the words found and their ``vectors`` ``(N, dim)``.

    Raises:
        FileNotFoundError: no such file.
        VectorFileError: vectors of another size than ``dim`` (naming ``model.embedding_dim``), or a malformed
            line (too few values, or one that is not a number), with ``file:line``.
    """
    path = Path(path)
    exact = {word: i for i, word in enumerate(words)}
    lowered: dict[str, list[int]] = {}
    for i, word in enumerate(words):
        lowered.setdefault(word.lower(), []).append(i)
    found: dict[int, tuple[bool, list[float]]] = {}  # id -> (exact form, vector)
    size = None
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n").rstrip(" ")
            if size is None:
                fields = line.split(" ")
                header = number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields)
                size = int(fields[1]) if header else len(fields) - 1
                if size != dim:
                    raise VectorFileError(f"{path}:{number}: vectors of size {size}, but {OPTION} is {dim}; "
                                          f"set {OPTION}={size} or use a file of {dim}-d vectors")
                if header:
                    continue
            word, *values = line.rsplit(" ", size)
            if len(values) != size:
                raise VectorFileError(f"{path}:{number}: malformed line: {len(values)} values, expected {size}")
            ids = [exact[word]] if word in exact else []
            ids += [i for i in lowered.get(word, ()) if i not in found and i not in ids]
            if ids:
                vector = _parse(values, path, number)
                for i in ids:
                    found[i] = (word == words[i], vector)
    ids = sorted(found)
    log.info("%s: vectors for %d of %d vocabulary words (%d by their lowercased form)", path, len(ids), len(words),
             sum(not found[i][0] for i in ids))
    vectors = torch.tensor([found[i][1] for i in ids], dtype=torch.float32).reshape(len(ids), dim)
    return torch.tensor(ids, dtype=torch.long), vectors


def _parse(values: list[str], path: Path, number: int) -> list[float]:
    try:
        return [float(v) for v in values]
    except ValueError as error:
        raise VectorFileError(f"{path}:{number}: malformed line: {error}") from None
