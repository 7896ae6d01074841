"""The loaders every sentence-level DataModule shares: length-bucketed batches, sharded by rank."""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
from abc import abstractmethod
from typing import Callable, Container, Iterable, Iterator

import datasets
import lightning as L
from datasets.arrow_writer import ArrowWriter
from datasets.fingerprint import get_temporary_cache_files_directory
from torch.utils.data import DataLoader

from rnnlab.data.batching import map_rows
from rnnlab.data.resumable import ResumableLoader
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.data.vocab import Vocabulary
from rnnlab.data.pretrained import knows

log = logging.getLogger(__name__)

ENCODE_BATCH = 1000  # examples encoded at a time: the batch size of ``datasets.Dataset.map``


class BucketedDataModule(L.LightningDataModule):
    """Base of the DataModules whose examples are sentences of varying length.

    Subclasses fill ``self.datasets`` (split name -> HF ``Dataset`` with a ``length`` column) in ``setup``,
    say how examples become rows in ``encoder`` and how rows become a batch in ``collate_fn``.

    When the model's input embedding has pretrained vectors, whoever builds the run sets ``pretrained_words``
    (the words they hold) before ``setup``, and ``setup`` passes the input vocabulary through
    ``extend_vocabulary``.

    Args:
        batch_size: training batch size.
        eval_batch_size: validation/test batch size.
        num_workers: DataLoader workers.
        seed: seed of the batch order.
    """

    def __init__(self, batch_size: int, eval_batch_size: int, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed
        self.datasets: dict[str, datasets.Dataset] = {}
        self.pretrained_words: Container[str] | None = None

    def extend_vocabulary(self, vocab: Vocabulary, sequences: Iterable[Iterable[str]]) -> Vocabulary:
        """The input vocabulary and the words of the validation and test input that have a pretrained vector.

        Those words keep their pretrained row instead of becoming ``<unk>`` (Lample et al. 2016). Only an input
        vocabulary grows, never labels or targets; without ``pretrained_words`` nothing changes.

        Args:
            vocab: the vocabulary built from train.
            sequences: the validation and test token sequences, normalised as for lookup.

        Returns:
            ``vocab`` with the new words appended (by their exact or lowercased form, see ``rnnlab.data.pretrained``).
        """
        if self.pretrained_words is None:
            return vocab
        extended = vocab.extend(word for sequence in sequences for word in sequence
                                if word not in vocab and knows(self.pretrained_words, word))
        log.info("%s: %d validation/test words with a pretrained vector join the %d vocabulary words of train",
                 self.name, len(extended) - len(vocab), len(vocab))
        return extended

    @abstractmethod
    def encoder(self) -> Callable[[dict], dict]:
        """Columns of examples -> columns of rows (``length`` among them), for ``datasets.map(batched=True)``;
        picklable. Examples without gold (tags, labels, references) encode too: their targets are ignored."""

    @abstractmethod
    def collate_fn(self) -> Callable[[list[dict]], dict]:
        """Rows of ``self.datasets`` -> a padded batch; picklable (module-level function or partial)."""

    def add_split(self, name: str, examples: Iterable[dict]) -> None:
        """Encodes examples into ``self.datasets[name]``, a memory-mapped Arrow file.

        Examples are encoded ``ENCODE_BATCH`` at a time and written out, so a split streamed from a file never
        sits in memory, as Python objects or as a growing Arrow buffer. The rows and their types are those
        ``datasets.Dataset.map(batched=True)`` writes (the same writer); the file lies in the folder ``datasets``
        deletes when the process ends.
        """
        chunks = _chunks(examples, ENCODE_BATCH)
        first = next(chunks, None)
        if first is None:  # no example, no column types to write: the empty table ``map`` gave
            self.datasets[name] = datasets.Dataset.from_dict({})
            return
        handle, path = tempfile.mkstemp(".arrow", f"{name}-", get_temporary_cache_files_directory())
        os.close(handle)
        encoder = self.encoder()
        with ArrowWriter(path=path, update_features=True) as writer:
            for chunk in itertools.chain([first], chunks):
                writer.write_batch(encoder({key: [example.get(key) for example in chunk] for key in chunk[0]}))
            writer.finalize()
        self.datasets[name] = datasets.Dataset.from_file(path)

    def encode(self, examples: list[dict]) -> list[dict]:
        """Examples -> rows for ``collate_fn``, without a ``Dataset`` (new sentences at inference)."""
        return map_rows(self.encoder(), examples)

    def ordered_dataloader(self, split: str) -> DataLoader:
        """Batches of ``eval_batch_size`` examples in file order, so that predictions line up with the input."""
        return DataLoader(self.datasets[split], batch_size=self.eval_batch_size, collate_fn=self.collate_fn(),
                          num_workers=self.num_workers)

    def batch_sampler(self, split: str, shuffle: bool) -> BucketBatchSampler:
        """Batches of similar lengths; under DDP each rank takes its own share (``trainer`` says which)."""
        trainer = self.trainer
        return BucketBatchSampler(self.datasets[split]["length"],
                                  self.batch_size if shuffle else self.eval_batch_size, shuffle=shuffle,
                                  seed=self.seed, num_replicas=trainer.world_size if trainer else 1,
                                  rank=trainer.global_rank if trainer else 0)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        loader = ResumableLoader if shuffle else DataLoader  # training continues mid-epoch after a resume
        return loader(self.datasets[split], batch_sampler=self.batch_sampler(split, shuffle),
                          collate_fn=self.collate_fn(), num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    items = iter(items)
    while chunk := list(itertools.islice(items, size)):
        yield chunk
