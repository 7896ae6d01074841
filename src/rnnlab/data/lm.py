"""Language-modeling data: text files or the Hub -> HF datasets -> one token stream cut into BPTT windows.

Every non-empty line is a sentence, read as the lecture draws it: ``<bos> w1 ... wn <eos>``. Empty
(whitespace-only) lines are skipped: they separate paragraphs or documents and carry no word to predict.
Tokens are split on whitespace. The sentences of a split are joined into one stream that is laid out in
``B`` contiguous columns; batch ``i`` holds positions ``[i*bptt, (i+1)*bptt)`` of every column, so the
hidden state after batch ``i`` is the right initial state for batch ``i+1``. The streams are tokenised once
and cached on disk as memory-mapped int32 arrays (``rnnlab.data.token_streams``); a window is cut from the
stream when it is asked for, so a corpus of any size costs its ids' bytes, not Python objects.

The targets are the stream shifted by one. ``<bos>`` is never a target (it is given, not predicted), so a
split's predicted tokens are its words plus one ``<eos>`` per sentence: the standard PTB counts (82,430 for
the test split).
"""

from __future__ import annotations

import logging
import math
from functools import partial
from itertools import chain
from pathlib import Path

import datasets
from datasets.config import HF_DATASETS_CACHE
import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from rnnlab.data.batching import map_rows, pad_sequences
from rnnlab.data.errors import DataError
from rnnlab.data.readers import read_lines
from rnnlab.data.resumable import ResumableLoader
from rnnlab.data.sources import load_with_fallback, local_files
from rnnlab.data.special import BOS, EOS, IGNORE_INDEX, PAD, UNK
from rnnlab.data.token_streams import TokenStreams, cache_key, file_digest, map_streams, open_or_build
from rnnlab.data.vocab import Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPECIALS = (PAD, UNK, BOS, EOS)


def read_text(path: str | Path, encoding: str = "utf-8") -> list[dict]:
    """Reads a plain-text file (``.gz`` decompressed): one sentence per line, tokens split on whitespace.

    Empty and whitespace-only lines are skipped.

    Returns:
        ``[{"tokens": [...]}, ...]``, one per non-empty line.
    """
    return [{"tokens": tokens} for _, line in read_lines(path, encoding) if (tokens := line.split())]


def variable_window_lengths(length: int, bptt: int, seed: int, epoch: int) -> list[int]:
    """AWD-LSTM's training windows (Merity et al. 2018): lengths that cover ``length`` steps, drawn anew per epoch.

    Each window is ``bptt`` long with probability 0.95, else ``bptt / 2``, then ``max(5, round(N(that, 5)))``;
    the last one is cut to the steps left, or joins the one before when under 5 steps (a window of a single
    step may predict nothing: its targets may all be ``<bos>`` or padding).

    Args:
        length: the steps to cover (a column's length ``L``).
        bptt: the nominal window length.
        seed: with ``epoch``, the seed of the draws: the lengths are a pure function of both, so a resumed
            epoch is cut as the interrupted one was.
        epoch: the training epoch.
    """
    generator = np.random.default_rng([seed, epoch])
    lengths, covered = [], 0
    while covered < length:
        mean = bptt if generator.random() < 0.95 else bptt / 2
        drawn = min(max(5, round(generator.normal(mean, 5))), length - covered)
        lengths.append(drawn)
        covered += drawn
    if len(lengths) > 1 and lengths[-1] < 5:
        last = lengths.pop()
        lengths[-1] += last
    return lengths


class BPTTWindows(Dataset):
    """Consecutive ``bptt``-long windows of a stream laid out in contiguous columns; item ``i`` is a whole batch.

    The stream's ``N - 1`` inputs (``stream[:-1]``) fill ``num_columns`` columns of length
    ``L = ceil((N - 1) / num_columns)``, column ``c`` holding positions ``[c*L, (c+1)*L)``; the targets are the
    next tokens, ``<bos>`` replaced by ``IGNORE_INDEX``. Nothing is dropped: the last column is right-padded
    (inputs with ``pad_id``, targets with ``IGNORE_INDEX``), so every token is predicted exactly once. The
    windows are cut from the stream when asked for; the stream may be memory-mapped.

    Args:
        stream: ``(N,)`` the split's ids, ``<bos> w1 ... <eos> <bos> ...``.
        num_columns: columns of the layout (the batch size, times the processes that share it).
        rows: the columns this dataset yields (a process's share), in order.
        bptt: window length (the last window may be shorter).
        pad_id: input id of padding.
        bos_id: id of ``<bos>``.
        lengths: the windows' lengths instead (``variable_window_lengths``), covering the ``L`` steps; each batch
            then also holds ``lr_scale``, its length over ``bptt``, by which the task scales the learning rate.
    """

    def __init__(self, stream: Tensor, num_columns: int, rows: range, bptt: int, pad_id: int, bos_id: int,
                 lengths: list[int] | None = None):
        self.stream, self.bptt, self.pad_id, self.bos_id = stream, bptt, pad_id, bos_id
        self.length = math.ceil((stream.numel() - 1) / num_columns)  # L
        self.column_starts = torch.tensor(rows, dtype=torch.long) * self.length  # (B,)
        self.lengths = lengths
        if lengths is None:
            self.starts = range(0, self.length + bptt, bptt)
        else:
            if sum(lengths) != self.length:
                raise ValueError(f"the window lengths cover {sum(lengths)} steps of the columns' {self.length}")
            self.starts = [0, *np.cumsum(lengths).tolist()]

    def __len__(self) -> int:
        return math.ceil(self.length / self.bptt) if self.lengths is None else len(self.lengths)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        steps = torch.arange(self.starts[index], min(self.starts[index + 1], self.length))  # (T,)
        positions = self.column_starts[:, None] + steps  # (B, T) input positions in the stream
        padding = positions >= self.stream.numel() - 1
        positions = positions.masked_fill(padding, 0)
        tokens = self.stream[positions].long().masked_fill(padding, self.pad_id)  # (B, T)
        targets = self.stream[positions + 1].long()
        targets = targets.masked_fill(padding | (targets == self.bos_id), IGNORE_INDEX)  # (B, T)
        batch = {"tokens": tokens, "targets": targets, "mask": tokens != self.pad_id}
        if self.lengths is not None:
            batch["lr_scale"] = len(steps) / self.bptt
        return batch


class LMDataModule(L.LightningDataModule):
    """Word-level language-modeling data.

    Args:
        name: dataset name used in messages.
        subdir: folder of this dataset inside ``data_dir``.
        files: file name per split (``train``, ``validation``, ``test``); absolute paths are used as given,
            relative ones are looked up in ``data_dir/subdir``.
        encoding: text encoding of the files.
        data_dir: local data root (``paths.data_dir``); None to use the Hub.
        hub: Hub source ``{path, name, text}`` (a parquet dataset, its config name, the text column), or
            None for files only.
        batch_size: training batch size ``B`` (number of stream columns).
        eval_batch_size: validation/test batch size.
        bptt: length of the windows that truncated back-propagation through time runs over.
        min_freq: words rarer than this in train map to ``<unk>``.
        max_size: keep at most this many vocabulary entries (specials included); None for all.
        num_workers: DataLoader workers.
        cache_dir: folder of the token-stream cache; None for ``rnnlab_lm`` in the HF datasets cache
            (``$HF_DATASETS_CACHE``).
        variable_bptt: training windows of AWD-LSTM's random lengths around ``bptt``, drawn anew every epoch
            (``variable_window_lengths``); validation and test keep ``bptt``. Needs
            ``trainer.reload_dataloaders_every_n_epochs=1``, so that Lightning counts each epoch's windows.
        seed: seed of the window lengths, with the epoch (None: 0).
    """

    def __init__(self, name: str, subdir: str, files: dict[str, str], encoding: str = "utf-8",
                 data_dir: str | None = None, hub: dict | None = None, batch_size: int = 20,
                 eval_batch_size: int = 10, bptt: int = 35, min_freq: int = 1, max_size: int | None = None,
                 num_workers: int = 0, cache_dir: str | None = None, variable_bptt: bool = False,
                 seed: int | None = 0):
        super().__init__()
        missing = set(SPLITS) - set(files)
        if missing:
            raise ValueError(f"data.files needs an entry for {sorted(missing)}")
        if batch_size < 1 or eval_batch_size < 1 or bptt < 1:
            raise ValueError(f"data.batch_size, data.eval_batch_size and data.bptt must be positive, got "
                             f"{batch_size}, {eval_batch_size} and {bptt}")
        self.name, self.subdir, self.files = name, subdir, dict(files)
        self.encoding, self.data_dir, self.hub = encoding, data_dir, hub
        self.batch_size, self.eval_batch_size, self.bptt = batch_size, eval_batch_size, bptt
        self.min_freq, self.max_size, self.num_workers = min_freq, max_size, num_workers
        self.variable_bptt, self.seed = variable_bptt, seed or 0
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else Path(HF_DATASETS_CACHE) / "rnnlab_lm"
        self.vocab: Vocabulary | None = None
        self.streams: dict[str, Tensor] = {}
        self.stream_folder: Path | None = None  # the cache entry the training splits are mapped from

    # ----------------------------------------------------------------- reading
    def _read(self, path: Path) -> list[dict]:
        return read_text(path, self.encoding)

    def _load_hub(self, splits: tuple[str, ...]) -> dict[str, list[dict]]:
        loaded = datasets.load_dataset(self.hub["path"], self.hub.get("name"))
        column = self.hub.get("text", "text")
        return {split: [{"tokens": tokens} for line in loaded[split][column] if (tokens := line.split())]
                for split in splits}

    def _check_files(self, files: dict[str, str]) -> dict[str, Path] | None:
        """The local paths, or None when the Hub is to be used; raises ``DataError`` naming absent files."""
        paths = local_files(self.data_dir, self.subdir, files)
        if paths is None and not self.hub:
            root = Path(self.data_dir or ".").expanduser() / self.subdir
            absent = {split: str(Path(name) if Path(name).is_absolute() else root / name)
                      for split, name in files.items()
                      if not (Path(name) if Path(name).is_absolute() else root / name).is_file()}
            raise DataError(f"{self.name}: file(s) not found: {absent}; give existing paths with "
                            f"data.files.<split>=... (relative paths are read from {root})")
        return paths

    def read_splits(self, splits: tuple[str, ...] = SPLITS) -> dict[str, list[dict]]:
        """The splits as lists of ``{"tokens"}`` (to evaluate one split); raises ``DataError`` when a file is
        missing or empty. Training reads the cached streams instead (``setup``)."""
        files = {split: self.files[split] for split in splits}
        self._check_files(files)
        return load_with_fallback(self.name, self.data_dir, self.subdir, files, self._read,
                                  partial(self._load_hub, splits) if self.hub else None,
                                  self.hub and f"{self.hub['path']} ({self.hub.get('name')})")

    def read_file(self, path: str | Path) -> list[dict]:
        """One text file, as ``{"tokens"}`` sentences."""
        sentences = self._read(Path(path))
        if not sentences:
            raise DataError(f"{path} holds no sentence (empty lines are skipped); give a text file, one "
                            f"sentence a line")
        return sentences

    # ----------------------------------------------------------------- token streams
    def _load_file_lines(self, paths: dict[str, Path], arrow_dir: Path) -> datasets.DatasetDict:
        """The files' lines with the HF ``text`` builder, as Arrow files in ``arrow_dir``."""
        try:
            return datasets.load_dataset("text", data_files={split: str(path) for split, path in paths.items()},
                                         encoding=self.encoding, cache_dir=str(arrow_dir))
        except datasets.exceptions.DatasetGenerationError as error:
            if isinstance(error.__cause__, UnicodeDecodeError):
                for path in paths.values():  # find the file and line, for a message that names them
                    for _ in read_lines(path, self.encoding):
                        pass
            raise

    def _load_hub_lines(self) -> datasets.DatasetDict:
        loaded = datasets.load_dataset(self.hub["path"], self.hub.get("name"))
        column = self.hub.get("text", "text")
        return datasets.DatasetDict({split: loaded[split].select_columns([column]).rename_column(column, "text")
                                     for split in SPLITS})

    def open_streams(self) -> TokenStreams:
        """The cached token streams of every split, built first when absent, stale or corrupt.

        The cache key is the files' contents (or the Hub datasets' fingerprints) and every option that
        changes the ids: ``encoding``, ``min_freq``, ``max_size``.
        """
        paths = self._check_files(self.files)
        if paths is not None:
            sources = {split: file_digest(path) for split, path in paths.items()}
            load_lines = partial(self._load_file_lines, paths)
        else:
            hub_lines = load_with_fallback(self.name, self.data_dir, self.subdir, self.files, self._read,
                                           self._load_hub_lines, f"{self.hub['path']} ({self.hub.get('name')})")
            sources = {"hub": dict(self.hub), **{split: lines._fingerprint for split, lines in hub_lines.items()}}
            load_lines = lambda arrow_dir: hub_lines  # the Hub datasets are in the HF cache already
        options = {"encoding": self.encoding, "min_freq": self.min_freq, "max_size": self.max_size,
                   "specials": SPECIALS}
        return open_or_build(self.cache_dir / cache_key(sources, options), load_lines, self.min_freq, SPECIALS,
                             self.max_size, self.name)

    def prepare_data(self) -> None:
        """Builds the token-stream cache; Lightning calls it on one process per node, before ``setup``."""
        if self.vocab is None:  # else this data module has opened (or been given) its streams already
            self.open_streams()

    def setup(self, stage: str | None = None) -> None:
        """Opens the cached streams (building them when needed) and the vocabulary built from train, once."""
        if self.vocab is not None:
            return
        opened = self.open_streams()
        self.vocab, self.streams, self.stream_folder = opened.vocab, dict(opened.streams), opened.folder
        log.info("%s: %d words in the vocabulary; predicted tokens %s; <unk> rate %s; streams in %s", self.name,
                 len(self.vocab), {s: opened.counts[s]["targets"] for s in SPLITS},
                 {s: round(opened.counts[s]["unk"] / opened.counts[s]["tokens"], 4) for s in SPLITS}, opened.folder)

    def __getstate__(self) -> dict:
        # Spawned processes (ddp_spawn) map the cached streams again rather than receive copies of them.
        state = dict(self.__dict__)
        if self.stream_folder is not None:
            state["streams"] = {split: stream for split, stream in self.streams.items() if split not in SPLITS}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.stream_folder is not None:
            self.streams.update(map_streams(self.stream_folder, SPLITS))

    def num_targets(self, split: str) -> int:
        """Tokens the model predicts in a split: its words and ``<eos>`` tokens (not ``<bos>``)."""
        return int((self.streams[split] != self.vocab[BOS]).sum())

    def model_kwargs(self) -> dict:
        """What the model needs from the data: the vocabulary as a JSON-friendly dict."""
        return {"vocab": self.vocab.to_dict()}

    def set_vocabularies(self, model_kwargs: dict) -> None:
        """The inverse of ``model_kwargs``: a trained model's vocabulary, to read new text as training did."""
        self.vocab = Vocabulary.from_dict(model_kwargs["vocab"])

    def add_split(self, name: str, sentences: list[dict]) -> None:
        """Encodes sentences into the stream ``self.streams[name]``."""
        table = datasets.Dataset.from_list(sentences)
        encoded = table.map(self.encoder(), batched=True, remove_columns=table.column_names,
                            desc=f"encoding {self.name} {name}")
        self.streams[name] = torch.tensor(list(chain.from_iterable(encoded["input_ids"])), dtype=torch.int32)

    def encoder(self):
        """Columns of ``{"tokens"}`` sentences -> ``input_ids`` ``<bos> w1 ... wn <eos>``."""
        return partial(_encode, self.vocab)

    def encode(self, sentences: list[dict]) -> list[dict]:
        """Sentences -> rows for ``collate_fn``: each sentence on its own, not in the stream (scoring lines)."""
        return map_rows(self.encoder(), sentences)

    def collate_fn(self):
        """Rows of ``encode`` -> a batch of whole sentences, like a window: ``tokens``, ``targets``, ``mask``."""
        return partial(_collate, self.vocab.pad_id)

    # ----------------------------------------------------------------- loaders
    def windows(self, split: str, batch_size: int) -> BPTTWindows:
        """This process's batches of a split; under DDP each process reads its own contiguous block of columns.

        Training: the stream is laid out in ``batch_size`` columns per process, so a step of ``P`` processes
        reads ``P * batch_size`` columns, each token once per epoch. Evaluation: the single process's layout of
        ``batch_size`` columns is shared out, so the windows, the carried states and the perplexity summed
        across processes are those of one process.
        """
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        if split == "train":
            columns, rows = batch_size * replicas, range(rank * batch_size, (rank + 1) * batch_size)
        elif batch_size < replicas:
            raise DataError(f"data.eval_batch_size={batch_size} leaves some of the {replicas} processes no column "
                            f"of the {split} stream; set data.eval_batch_size to {replicas} or more")
        else:
            columns, rows = batch_size, range(rank * batch_size // replicas, (rank + 1) * batch_size // replicas)
        windows = BPTTWindows(self.streams[split], columns, rows, self.bptt, self.vocab.pad_id, self.vocab[BOS])
        if split == "train" and self.variable_bptt:
            # Every process draws the same lengths, so all of them step as often.
            epoch = trainer.current_epoch if trainer else 0
            windows = BPTTWindows(self.streams[split], columns, rows, self.bptt, self.vocab.pad_id, self.vocab[BOS],
                                  variable_window_lengths(windows.length, self.bptt, self.seed, epoch))
        return windows

    def _loader(self, split: str, batch_size: int, loader: type[DataLoader] = DataLoader) -> DataLoader:
        # batch_size=None: each item already is a batch; order matters, so no shuffling.
        return loader(self.windows(split, batch_size), batch_size=None, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        # Lightning counts the batches of an epoch when it asks for the loader; variable windows change the count.
        if self.variable_bptt and self.trainer and self.trainer.reload_dataloaders_every_n_epochs != 1:
            raise DataError("data.variable_bptt=true draws other windows every epoch; set "
                            "trainer.reload_dataloaders_every_n_epochs=1 so that each epoch's loader is made anew")
        # Resumable: a resumed epoch continues at the window after the checkpoint (the task saves the state).
        return self._loader("train", self.batch_size, ResumableLoader)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def ordered_dataloader(self, split: str) -> DataLoader:
        """The windows of any split added with ``add_split``, as ``test_dataloader`` reads test."""
        return self._loader(split, self.eval_batch_size)


def _encode(vocab: Vocabulary, batch: dict) -> dict:
    bos, eos = vocab[BOS], vocab[EOS]
    return {"input_ids": [[bos, *vocab.encode(tokens), eos] for tokens in batch["tokens"]]}


def _collate(pad_id: int, rows: list[dict]) -> dict[str, Tensor]:
    inputs, mask = pad_sequences([row["input_ids"][:-1] for row in rows], pad_id)  # (B, T): <bos> w1 .. wn
    targets, _ = pad_sequences([row["input_ids"][1:] for row in rows], IGNORE_INDEX)  # (B, T): w1 .. wn <eos>
    return {"tokens": inputs, "targets": targets, "mask": mask}
