"""Token streams on disk: text -> HF datasets (Arrow) -> a vocabulary -> one int32 array per split, cached.

A corpus is tokenised once: the HF ``text`` builder reads the lines into Arrow files, a batched ``map`` splits
them into words (Arrow again), one streaming pass counts the training words, and each split's ids are written
as raw int32 (``<bos> w1 ... wn <eos> <bos> ...``). Nothing of the corpus is held as Python objects; the
streams are memory-mapped when opened.

A cache entry is a folder ``<cache_dir>/<key>``, the key a digest of the files' contents and every option
that changes the ids. It is built under a temporary name and renamed, so an interrupted build is never read;
``manifest.json`` records each file's size and BLAKE2 digest, checked on every opening, so a corrupt or
truncated entry is rebuilt (with a warning), never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor

from rnnlab.data.errors import DataError
from rnnlab.data.special import BOS, EOS, UNK
from rnnlab.data.vocab import Vocabulary

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # part of every key: raise it when the layout or the reading changes
ROWS_PER_BATCH = 10_000  # sentences per Arrow record batch of the tokenised splits
DIGEST_CHUNK = 1 << 24

LoadLines = Callable[[Path], datasets.DatasetDict]  # Arrow cache folder -> splits with a "text" column


@dataclass
class TokenStreams:
    """An opened cache entry.

    Attributes:
        vocab: the vocabulary built from train.
        streams: per split, ``(N,)`` int32 ids, memory-mapped (copy-on-write: pages are shared until written).
        counts: per split, ``sentences``, ``tokens``, ``targets`` (tokens less ``<bos>``), ``unk``.
        folder: the cache entry.
    """

    vocab: Vocabulary
    streams: dict[str, Tensor]
    counts: dict[str, dict[str, int]]
    folder: Path


class CorruptCache(Exception):
    """A cache entry whose files do not match its manifest."""


def file_digest(path: Path) -> str:
    """BLAKE2b digest of a file's bytes, read in chunks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(sources: dict, options: dict) -> str:
    """The entry's name: a digest of where the text comes from (file digests, Hub fingerprints) and options."""
    described = json.dumps({"format": FORMAT_VERSION, "sources": sources, "options": options}, sort_keys=True)
    return hashlib.blake2b(described.encode(), digest_size=16).hexdigest()


def open_or_build(folder: Path, load_lines: LoadLines, min_freq: int, specials: tuple[str, ...],
                  max_size: int | None, name: str = "corpus") -> TokenStreams:
    """Opens the cache entry ``folder``, building it first when it is absent or corrupt.

    Args:
        folder: the entry, ``<cache_dir>/<cache_key(...)>``.
        load_lines: gives the splits as HF datasets with a ``text`` column, one line a row.
        min_freq: training words rarer than this map to ``<unk>``.
        specials: the first ids of the vocabulary.
        max_size: most vocabulary entries (specials included); None for all.
        name: the dataset's name, for messages.

    Returns:
        The opened streams.
    """
    if folder.is_dir():
        try:
            return open_streams(folder)
        except CorruptCache as error:
            log.warning("%s: the cached token streams in %s are corrupt (%s); rebuilding them", name, folder, error)
            shutil.rmtree(folder)
    build_streams(folder, load_lines, min_freq, specials, max_size, name)
    return open_streams(folder)


def open_streams(folder: Path) -> TokenStreams:
    """Opens a cache entry after checking every file against the manifest; raises ``CorruptCache``."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        raise CorruptCache(f"unreadable manifest.json: {error}") from None
    for file, expected in manifest["files"].items():
        path = folder / file
        if not path.is_file() or path.stat().st_size != expected["bytes"]:
            raise CorruptCache(f"{file} has {path.stat().st_size if path.is_file() else 'no'} bytes, "
                               f"the manifest says {expected['bytes']}")
        if file_digest(path) != expected["blake2b"]:
            raise CorruptCache(f"{file} does not match its digest")
    vocab = Vocabulary.from_dict(json.loads((folder / "vocab.json").read_text()))
    return TokenStreams(vocab, map_streams(folder, manifest["counts"]), manifest["counts"], folder)


def map_streams(folder: Path, splits: Iterable[str]) -> dict[str, Tensor]:
    """The splits' ids in a checked cache entry, memory-mapped (copy-on-write: pages are shared until written)."""
    return {split: torch.from_numpy(np.memmap(folder / f"{split}.int32", dtype="<i4", mode="c"))
            for split in splits}


def build_streams(folder: Path, load_lines: LoadLines, min_freq: int, specials: tuple[str, ...],
                  max_size: int | None, name: str) -> None:
    """Tokenises, counts and writes a cache entry under a temporary name, then renames it to ``folder``."""
    building = folder.with_name(f".{folder.name}.{os.getpid()}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        lines = load_lines(building / "arrow")
        words = lines.map(split_words, batched=True, batch_size=ROWS_PER_BATCH, writer_batch_size=ROWS_PER_BATCH,
                          remove_columns=["text"], desc=f"tokenising {name}",
                          cache_file_names={split: str(building / "arrow" / f"words-{split}.arrow")
                                            for split in lines})
        del lines  # unmaps the lines' Arrow files: the pages read stop counting as the process's memory
        for split, table in words.items():
            if len(table) == 0:
                raise DataError(f"{name}: the {split} split holds no sentence (empty lines are skipped); give a "
                                f"text file with one sentence a line for data.files.{split}")
        vocab = Vocabulary.from_counts(count_words(words["train"]), min_freq, specials, max_size)
        vocab.save(building / "vocab.json")
        counts = {split: write_ids(table, vocab, building / f"{split}.int32") for split, table in words.items()}
        del words
        shutil.rmtree(building / "arrow")  # the ids are all a run needs
        files = {path.name: {"bytes": path.stat().st_size, "blake2b": file_digest(path)}
                 for path in sorted(building.iterdir())}
        (building / "manifest.json").write_text(json.dumps({"files": files, "counts": counts}, indent=1))
        try:
            building.rename(folder)
        except OSError:
            if not folder.is_dir():  # else another process built the same entry first: use that one
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info("%s: token streams cached in %s", name, folder)


def split_words(batch: dict) -> dict:
    """Lines -> ``tokens`` split on whitespace; empty and whitespace-only lines are dropped."""
    return {"tokens": [tokens for line in batch["text"] if (tokens := line.split())]}


def record_batches(table: datasets.Dataset) -> Iterator[pa.RecordBatch]:
    """A dataset's Arrow files, one record batch at a time, with plain reads: pages of a memory map, as
    ``Dataset.iter`` reads them, would stay in the process's resident memory once touched."""
    for cache_file in table.cache_files:
        with pa.OSFile(cache_file["filename"]) as source:
            yield from pa.ipc.open_stream(source)


def count_words(words: datasets.Dataset) -> Counter:
    """How often each word occurs, counted by Arrow a batch at a time."""
    counts: Counter = Counter()
    for batch in record_batches(words):
        tallies = pc.value_counts(pc.list_flatten(batch.column("tokens")))
        counts.update(dict(zip(tallies.field("values").to_pylist(), tallies.field("counts").to_pylist())))
    return counts


def write_ids(words: datasets.Dataset, vocab: Vocabulary, path: Path) -> dict[str, int]:
    """Appends each sentence's ids ``<bos> w1 ... wn <eos>`` to the raw int32 file ``path``.

    Returns:
        ``sentences``, ``tokens``, ``targets`` (tokens less ``<bos>``) and ``unk`` (``<unk>`` ids) written.
    """
    items = pa.array(vocab.items, type=pa.string())
    bos, eos, unk = vocab[BOS], vocab[EOS], vocab[UNK]
    counts = Counter()
    with open(path, "wb") as handle:
        for batch in record_batches(words):
            tokens = batch.column("tokens")
            ids = pc.index_in(pc.list_flatten(tokens), value_set=items).fill_null(unk)  # vocab[word], per word
            lengths = pc.list_value_length(tokens).to_numpy().astype(np.int64)  # (S,)
            ends = np.cumsum(lengths + 2) - 1  # position of each sentence's <eos>
            starts = ends - lengths - 1  # ... and of its <bos>
            stream = np.empty(int(ends[-1]) + 1, dtype="<i4")
            is_word = np.ones(stream.size, dtype=bool)
            is_word[starts] = is_word[ends] = False
            stream[is_word] = ids.to_numpy(zero_copy_only=False)
            stream[starts], stream[ends] = bos, eos
            handle.write(stream.tobytes())
            counts.update(sentences=lengths.size, tokens=stream.size, targets=stream.size - lengths.size,
                          unk=int((stream == unk).sum()))
    return dict(counts)
