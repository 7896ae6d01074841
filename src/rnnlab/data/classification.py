"""Sentence classification data: labelled text files or the Hub -> HF datasets -> bucketed padded batches.

File formats (``format``), one example per line; blank or whitespace-only lines are skipped everywhere, and a
line whose text is empty is an error naming file and line:

- ``label_text``: ``LABEL<whitespace>sentence`` (the SST ``stsa.*`` files);
- ``tsv`` / ``csv``: columns chosen by ``text_column`` / ``label_column`` (an index, or a name when
  ``header`` is true); every line must have as many columns as the first one (no multi-line CSV records);
- ``jsonl``: one JSON object per line, fields ``text_column`` / ``label_column``;
- ``lines``: one sentence per line, no label column: the label is the key of the file in ``files`` (MR's
  ``rt-polarity.pos`` / ``.neg``);
- ``sst_tree``: one sentiment tree per line in PTB brackets (``rnnlab.data.trees``), read as its sentence and
  root label (0-4); ``SentimentTreeDataModule`` also trains on the labelled phrases.

Sentences are split on whitespace (the benchmark files are tokenised already). Files are streamed: readers yield
examples, and ``setup`` reads each split once to count words and labels and once to encode it, so that no split
is held as Python objects (a pooled file's split keeps one byte per example).
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import random
from array import array
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

import datasets
import numpy as np
import torch

from rnnlab.data.batching import pad_sequences
from rnnlab.data.special import IGNORE_INDEX
from rnnlab.data.bucketed import BucketedDataModule
from rnnlab.data.errors import DataError
from rnnlab.data.readers import Sentences, read_lines
from rnnlab.data.sources import load_with_fallback
from rnnlab.data.trees import LABELS, read_tree_examples
from rnnlab.data.vocab import Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
FORMATS = ("label_text", "tsv", "csv", "jsonl", "lines", "sst_tree")


def _example(text: str, label: str | None, where: str) -> dict:
    if not text.strip():
        raise DataError(f"{where}: the example has no text; remove the line or fix its text column")
    return {"text": text, "label": label, "where": where}


def _column(columns: list[str], column: int | str, header: list[str] | None, path: Path, option: str) -> str:
    if isinstance(column, str):
        if header is None or column not in header:
            found = f"the header has {header}" if header else "the file has no header (set data.header=true)"
            raise DataError(f"{path}:1: column {column!r} of data.{option} not found; {found}")
        return columns[header.index(column)]
    return columns[column]


def read_labelled(path: str | Path, format: str, text_column: int | str = 1, label_column: int | str = 0,
                  header: bool = False, encoding: str = "utf-8") -> Iterator[dict]:
    """Reads one labelled text file (see the module docstring for the formats), an example at a time.

    Args:
        path: file to read.
        format: one of ``FORMATS``.
        text_column: text column (``tsv``/``csv``: index or header name; ``jsonl``: field name).
        label_column: label column, likewise.
        header: the first line of a ``tsv``/``csv`` file names the columns.
        encoding: text encoding.

    Yields:
        ``{"text", "label", "where"}``; ``where`` is ``"file:line"`` for error messages; ``label`` is None for
        the ``lines`` format.

    Raises:
        DataError: a malformed line, naming file and line, when the reading reaches it.
    """
    if format not in FORMATS:
        raise ValueError(f"data.format must be one of {FORMATS}, got {format!r}")
    if format == "sst_tree":
        yield from read_tree_examples(path, encoding)
        return
    path = Path(path)
    names: list[str] | None = None
    width = None
    for number, line in read_lines(path, encoding):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if format == "lines":
            yield _example(line, None, where)
        elif format == "label_text":
            parts = line.split(maxsplit=1)
            yield _example(parts[1] if len(parts) > 1 else "", parts[0], where)
        elif format == "jsonl":
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: not a JSON object ({error.msg})") from None
            missing = [c for c in (text_column, label_column) if not isinstance(row, dict) or c not in row]
            if missing:
                raise DataError(f"{where}: field(s) {missing} missing; set data.text_column / data.label_column")
            yield _example(str(row[text_column]), str(row[label_column]), where)
        else:
            columns = line.split("\t") if format == "tsv" else next(csv.reader([line]))
            if width is None:
                width = len(columns)
                needed = [c for c in (text_column, label_column) if isinstance(c, int)]
                if needed and max(needed) >= width:
                    raise DataError(f"{where}: data.text_column/label_column {needed} need more than the "
                                    f"{width} {format} columns of the first line")
            elif len(columns) != width:
                raise DataError(f"{where}: expected {width} {format} columns like the first line, found "
                                f"{len(columns)} in {line!r}")
            if header and names is None:
                names = columns
                continue
            yield _example(_column(columns, text_column, names, path, "text_column"),
                           _column(columns, label_column, names, path, "label_column"), where)


def split_indices(count: int, seed: int = 0, dev_fraction: float = 0.1, test_fraction: float = 0.1,
                  num_folds: int | None = None, fold: int = 0) -> dict[str, np.ndarray]:
    """A seeded train/validation/test split of ``count`` examples without an official one.

    With ``num_folds``, the shuffled positions are cut into ``num_folds`` near-equal folds and fold ``fold`` is
    the test split (k-fold cross-validation: folds 0..k-1 partition the data); else ``test_fraction`` of them
    is (0 for none). ``dev_fraction`` of the remaining positions is the validation split.

    Returns:
        each split's positions, ascending (so each split keeps the order of the examples).
    """
    if num_folds is not None and not 0 <= fold < num_folds:
        raise ValueError(f"data.fold must be in [0, {num_folds}), got {fold}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"data.test_fraction must be in [0, 1), got {test_fraction}")
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"data.dev_fraction must be in (0, 1), got {dev_fraction}")
    # The permutation that shuffling a list of the positions gave, in 4 bytes a position instead of 36.
    order = array("i", range(count))
    random.Random(seed).shuffle(order)
    order = np.frombuffer(order, dtype=np.int32)
    if num_folds is not None:
        bounds = [count * k // num_folds for k in range(num_folds + 1)]
        test = order[bounds[fold]:bounds[fold + 1]]
        rest = np.concatenate([order[:bounds[fold]], order[bounds[fold + 1]:]])
    else:
        cut = count - round(test_fraction * count)
        test, rest = order[cut:], order[:cut]
    dev_size = round(dev_fraction * len(rest))
    return {"train": np.sort(rest[dev_size:]), "validation": np.sort(rest[:dev_size]), "test": np.sort(test)}


def split_stream(examples: Iterable[dict], **options) -> dict[str, Sentences]:
    """``split_indices`` over a re-iterable of examples: one pass counts them, each split's pass picks its own.

    Args:
        examples: the pooled examples (a list, or ``Sentences`` read anew on each pass).
        **options: ``split_indices``'s options but ``count``.

    Returns:
        split -> its examples in their pooled order, read anew from ``examples`` on each pass.
    """
    parts = split_indices(sum(1 for _ in examples), **options)
    which = np.zeros(sum(map(len, parts.values())), dtype=np.uint8)  # (N,) the split of each example
    for code, split in enumerate(SPLITS):
        which[parts[split]] = code
    which = which.tobytes()  # iterated as Python ints, faster than numpy scalars
    return {split: Sentences(partial(_routed, examples, which, code)) for code, split in enumerate(SPLITS)}


def _routed(examples: Iterable[dict], which: bytes, code: int) -> Iterator[dict]:
    return (example for example, split in zip(examples, which, strict=True) if split == code)


class ClassificationDataModule(BucketedDataModule):
    """Sentences with one label each.

    Which splits come from where: when ``files`` names ``train``, ``validation`` and ``test`` (null entries
    are absent) and ``num_folds`` is null, those are the splits. With ``train`` and ``test`` only, the
    validation split is ``dev_fraction`` of train. Otherwise (e.g. MR's one file per label) every example is
    pooled and split by ``split_indices`` with ``split_seed``, ``dev_fraction``, ``test_fraction``,
    ``num_folds``, ``fold``.

    Args:
        name: dataset name used in messages.
        subdir: folder of this dataset inside ``data_dir``.
        files: file per split (or per label for ``format: lines``); absolute paths are used as given.
        format: see the module docstring.
        text_column: see ``read_labelled``.
        label_column: see ``read_labelled``.
        header: see ``read_labelled``.
        encoding: text encoding of the files (MR: ``cp1252``).
        labels: the declared classes, in output order; null = the labels seen in train, sorted. A label
            outside them is an error naming file and line.
        data_dir: local data root (``paths.data_dir``); None to use the Hub.
        hub: Hub source ``{path, text, label}`` of a parquet dataset with train/validation/test splits
            (``splits`` may rename them); label ids are turned into strings.
        split_seed: seed of the split of pooled data (kept apart from the training seed so that seeds can
            be averaged on one split).
        dev_fraction: share of the training data held out for validation where no validation file exists.
        test_fraction: share of pooled data held out for test when ``num_folds`` is null.
        num_folds: k of k-fold cross-validation over the pooled data; null for a single split.
        fold: which fold is the test split.
        batch_size: training batch size.
        eval_batch_size: validation/test batch size.
        min_freq: words rarer than this in train map to ``<unk>``.
        lowercase: lowercase words before lookup.
        num_workers: DataLoader workers.
        seed: seed of the batch order.
    """

    def __init__(self, name: str, subdir: str, files: dict[str, str | None], format: str = "label_text",
                 text_column: int | str = 1, label_column: int | str = 0, header: bool = False,
                 encoding: str = "utf-8", labels: list | None = None, data_dir: str | None = None,
                 hub: dict | None = None, split_seed: int = 0, dev_fraction: float = 0.1,
                 test_fraction: float = 0.1, num_folds: int | None = None, fold: int = 0, batch_size: int = 32,
                 eval_batch_size: int = 256, min_freq: int = 1, lowercase: bool = False, num_workers: int = 0,
                 seed: int = 0):
        super().__init__(batch_size, eval_batch_size, num_workers, seed)
        if format not in FORMATS:
            raise ValueError(f"data.format must be one of {FORMATS}, got {format!r}")
        self.files = {key: str(value) for key, value in files.items() if value is not None}
        if not self.files:
            raise ValueError("data.files names no file")
        if format != "lines" and not set(self.files) <= set(SPLITS):
            raise ValueError(f"data.files keys must be splits {SPLITS} (labels only with format=lines), "
                             f"got {sorted(self.files)}")
        if num_folds is not None and num_folds < 2:
            raise ValueError(f"data.num_folds must be >= 2 or null, got {num_folds}")
        self.name, self.subdir, self.format = name, subdir, format
        self.read = partial(read_labelled, format=format, text_column=text_column, label_column=label_column,
                            header=header, encoding=encoding)
        self.declared = [str(label) for label in labels] if labels is not None else None
        self.data_dir, self.hub = data_dir, hub
        self.split_options = {"seed": split_seed, "dev_fraction": dev_fraction, "test_fraction": test_fraction,
                              "num_folds": num_folds, "fold": fold}
        self.min_freq, self.lowercase = min_freq, lowercase
        self.vocab: Vocabulary | None = None
        self.labels: Vocabulary | None = None

    # ----------------------------------------------------------------- reading
    def _load_hub(self, splits: tuple[str, ...]) -> dict[str, list[dict]]:
        loaded = datasets.load_dataset(self.hub["path"])
        text, label = self.hub.get("text", "text"), self.hub.get("label", "label")
        names = self.hub.get("splits", {})
        return {split: [_example(str(row[text]), str(row[label]), f"{self.hub['path']}:{split}:{i}")
                        for i, row in enumerate(loaded[names.get(split, split)])]
                for split in splits}

    def _own_file(self, split: str) -> bool:
        """Whether a split is read from a file of its own, not carved out of pooled data."""
        return (self.split_options["num_folds"] is None and self.format != "lines" and split in self.files
                and (split == "test" or set(self.files) == set(SPLITS)))

    def _read(self, path: Path) -> Sentences:
        return Sentences(partial(self.read, path))

    def stream_splits(self, splits: tuple[str, ...] = SPLITS) -> dict[str, Iterable[dict]]:
        """The splits' ``{"text", "label", "where"}`` examples, read anew from the files on each pass over a split;
        see the class docstring for which file each comes from.

        Splits with a file of their own are read alone (evaluation needs no training data); the others need
        every file.

        Raises:
            DataError: a file holds no example; a line the format cannot read raises it during a pass.
        """
        alone = all(self._own_file(split) for split in splits)
        files = {split: self.files[split] for split in splits} if alone else self.files
        read = load_with_fallback(self.name, self.data_dir, self.subdir, files, self._read,
                                  partial(self._load_hub, splits if alone else SPLITS) if self.hub else None,
                                  self.hub and self.hub.get("path"))
        if self.format == "lines":
            read = {key: Sentences(partial(_labelled, examples, key)) for key, examples in read.items()}
        if alone:
            return read
        options = dict(self.split_options)
        if options["num_folds"] is None and set(read) == {"train", "test"}:
            read = {**split_stream(read["train"], **{**options, "test_fraction": 0.0}), "test": read["test"]}
        elif options["num_folds"] is not None or set(read) != set(SPLITS):
            pooled = [read[key] for key in self.files]
            read = split_stream(Sentences(partial(itertools.chain.from_iterable, pooled)), **options)
        return {split: read[split] for split in splits}

    def read_splits(self, splits: tuple[str, ...] = SPLITS) -> dict[str, list[dict]]:
        """The splits as lists of ``{"text", "label", "where"}`` (evaluating one split needs its examples by
        index)."""
        return {split: list(examples) for split, examples in self.stream_splits(splits).items()}

    def read_file(self, path: str | Path) -> list[dict]:
        """One labelled file in ``format``, as ``{"text", "label", "where"}`` examples."""
        examples = list(self.read(path))
        if not examples or self.format == "lines":
            raise DataError(f"{path}: {'no example' if examples else 'format lines carries no label'}; give a "
                            f"labelled file and its format (+data.format=label_text|tsv|csv|jsonl)")
        return examples

    def _check_labels(self, splits: dict[str, Iterable[dict]], counts: dict[str, Counter]) -> Vocabulary:
        """The closed label vocabulary; a label outside it is an error at its file and line.

        Args:
            splits: the examples of each split.
            counts: how often each label occurs in each split.
        """
        if self.declared is not None:
            labels, advice = self.declared, "fix the line or add the class to data.labels"
        else:
            labels = sorted(counts["train"])
            advice = "it never occurs in train; declare every class in data.labels"
        for split in SPLITS:
            if not set(counts[split]) <= set(labels):  # read the split again only to name the first bad line
                _check_known(splits[split], labels, advice)
        if len(labels) < 2:
            raise DataError(f"{self.name}: a classifier needs at least 2 classes, found {labels}")
        return Vocabulary(labels, unk=None)

    # ----------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        """Reads the data and builds the vocabularies from train (see ``extend_vocabulary``), once.

        The files are streamed: one pass over each split counts labels (and train's words), a second encodes it
        into an Arrow table.
        """
        if self.vocab is not None:
            return
        splits = self.stream_splits()
        words, train_labels = _count(splits["train"], self._tokens)
        self.labels = self._check_labels(splits, {"train": train_labels, **{
            split: _count(splits[split])[1] for split in SPLITS[1:]}})
        self.vocab = self.extend_vocabulary(
            Vocabulary.from_counts(words, min_freq=self.min_freq),
            (self._tokens(ex["text"]) for split in SPLITS[1:] for ex in splits[split]))
        for split in SPLITS:  # every label is checked by now: no second check, which would read a file again
            super().add_split(split, splits[split])
        log.info("%s: %d words, classes %s with train counts %s; %s examples", self.name, len(self.vocab),
                 self.labels.items, [train_labels[label] for label in self.labels.items],
                 {s: len(d) for s, d in self.datasets.items()})

    def _tokens(self, text: str) -> list[str]:
        return (text.lower() if self.lowercase else text).split()

    def model_kwargs(self) -> dict:
        """What the model needs from the data: vocabularies as JSON-friendly dicts."""
        return {"vocab": self.vocab.to_dict(), "labels": self.labels.to_dict()}

    def set_vocabularies(self, model_kwargs: dict) -> None:
        """The inverse of ``model_kwargs``: a trained model's vocabularies, to read new data as training did."""
        self.vocab = Vocabulary.from_dict(model_kwargs["vocab"])
        self.labels = Vocabulary.from_dict(model_kwargs["labels"])

    def add_split(self, name: str, examples: list[dict]) -> None:
        _check_known(examples, self.labels.items, "evaluate on data labelled with the model's classes")
        super().add_split(name, examples)

    def encoder(self):
        return partial(_encode, self.vocab, self.labels, self._tokens)

    def collate_fn(self):
        return partial(_collate, self.vocab.pad_id)


class SentimentTreeDataModule(ClassificationDataModule):
    """The Stanford Sentiment Treebank as trees (``data=sst_trees``): trains on every labelled phrase, evaluates
    on whole sentences.

    Training examples are the phrases of every train tree, its sentence among them (Kim 2014 and Tai et al. 2015
    trained so); validation and test examples, like any file given to ``read_file``, are the sentences with their
    root labels. ``binary`` granularity drops neutral phrases and sentences (see ``rnnlab.data.trees``).

    Args:
        name: dataset name used in messages.
        subdir: folder of this dataset inside ``data_dir``.
        files: tree file per split (``train``, ``validation``, ``test``).
        granularity: ``fine`` (labels 0-4) or ``binary`` (``0`` negative, ``1`` positive).
        deduplicate: keep each (phrase, label) pair of train once (frequent phrases, e.g. single words, then
            weigh no more than rare ones).
        sentences_only: train on the sentences alone (the sentence-level task of ``data=sst2`` / ``sst5``).
        encoding: text encoding of the files.
        data_dir: local data root (``paths.data_dir``); there is no Hub copy.
        batch_size: training batch size.
        eval_batch_size: validation/test batch size.
        min_freq: words rarer than this in the train phrases map to ``<unk>``.
        lowercase: lowercase words before lookup.
        num_workers: DataLoader workers.
        seed: seed of the batch order.
    """

    def __init__(self, name: str, subdir: str, files: dict[str, str], granularity: str = "fine",
                 deduplicate: bool = False, sentences_only: bool = False, encoding: str = "utf-8",
                 data_dir: str | None = None, batch_size: int = 32, eval_batch_size: int = 256, min_freq: int = 1,
                 lowercase: bool = False, num_workers: int = 0, seed: int = 0):
        if granularity not in LABELS:
            raise ValueError(f"data.granularity must be one of {list(LABELS)}, got {granularity!r}")
        missing = set(SPLITS) - set(files)
        if missing:
            raise ValueError(f"data.files needs a tree file for {sorted(missing)}")
        super().__init__(name, subdir, files, format="sst_tree", encoding=encoding, labels=LABELS[granularity],
                         data_dir=data_dir, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         min_freq=min_freq, lowercase=lowercase, num_workers=num_workers, seed=seed)
        # Every labelled node of each file; ``read_splits`` and ``read_file`` keep what each split needs.
        self.read = partial(read_tree_examples, encoding=encoding, granularity=granularity, phrases=True)
        self.granularity, self.deduplicate, self.sentences_only = granularity, deduplicate, sentences_only

    def stream_splits(self, splits: tuple[str, ...] = SPLITS) -> dict[str, Iterable[dict]]:
        """Train: its phrases (or sentences), de-duplicated on request; validation and test: sentences."""
        streams = super().stream_splits(splits)
        for split, examples in streams.items():
            if split != "train" or self.sentences_only:
                examples = Sentences(partial(_sentences, examples))
            if split == "train" and self.deduplicate:
                examples = Sentences(partial(_first_of_each, examples))
            streams[split] = examples
        if "train" in streams:
            log.info("%s: training on %s%s, %s labels", self.name, "sentences" if self.sentences_only else "phrases",
                     " (each phrase and label once)" if self.deduplicate else "", self.granularity)
        return streams

    def read_file(self, path: str | Path) -> list[dict]:
        """The sentences of a tree file, with their root labels."""
        return list(_sentences(super().read_file(path)))


def _labelled(examples: Iterable[dict], label: str) -> Iterator[dict]:
    """The examples of a ``lines`` file, labelled with its key in ``files``."""
    return ({**example, "label": label} for example in examples)


def _sentences(examples: Iterable[dict]) -> Iterator[dict]:
    return (example for example in examples if example["sentence"])


def _first_of_each(examples: Iterable[dict]) -> Iterator[dict]:
    """Each ``(text, label)`` pair once, where it first occurs (the set of pairs is what de-duplicating holds)."""
    seen: set[tuple[str, str]] = set()
    for example in examples:
        key = (example["text"], example["label"])
        if key not in seen:
            seen.add(key)
            yield example


def _count(examples: Iterable[dict], tokenize=None) -> tuple[Counter, Counter]:
    """How often each label occurs and, given ``tokenize``, each word, in one pass."""
    words, labels = Counter(), Counter()
    for example in examples:
        labels[example["label"]] += 1
        if tokenize is not None:
            words.update(tokenize(example["text"]))
    return words, labels


def _check_known(examples: list[dict], labels: list[str], advice: str) -> None:
    known = set(labels)
    for example in examples:
        if example["label"] not in known:
            raise DataError(f"{example['where']}: label {example['label']!r} is not one of the classes {labels}; "
                            f"{advice}")


def _encode(vocab: Vocabulary, labels: Vocabulary, tokenize, batch: dict) -> dict:
    """Texts without ``label`` (raw text to classify) get the label ``IGNORE_INDEX``."""
    tokens = [tokenize(text) for text in batch["text"]]
    return {"input_ids": [vocab.encode(sentence) for sentence in tokens],
            "label": labels.encode(batch["label"]) if "label" in batch else [IGNORE_INDEX] * len(tokens),
            "length": [len(sentence) for sentence in tokens]}


def _collate(pad_id: int, rows: list[dict]) -> dict:
    tokens, mask = pad_sequences([row["input_ids"] for row in rows], pad_id)  # (B, T)
    return {"tokens": tokens, "mask": mask, "labels": torch.tensor([row["label"] for row in rows])}  # labels (B,)
