"""POS and NER tagging data: CoNLL / CoNLL-U files or the Hub -> HF datasets -> bucketed padded batches."""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Iterable

import datasets

from rnnlab.data.batching import pad_sequences
from rnnlab.data.special import IGNORE_INDEX
from rnnlab.data.bucketed import BucketedDataModule
from rnnlab.data.errors import DataError
from rnnlab.data.formats import COLUMN_FORMATS, ColumnOptions
from rnnlab.data.readers import Sentences, check_conll_options
from rnnlab.data.sources import load_with_fallback
from rnnlab.data.tag_schemes import SCHEMES, retag
from rnnlab.data.vocab import Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


class TaggingDataModule(BucketedDataModule):
    """Sentences with one tag per token.

    Args:
        name: dataset name used in messages.
        subdir: folder of this dataset inside ``data_dir``.
        files: file name per split (``train``, ``validation``, ``test``); absolute paths are used as given.
        format: a name in ``rnnlab.data.formats.COLUMN_FORMATS`` (``"conll"`` columns, ``"conllu"``).
        token_column: word column (``conll`` only).
        tag_column: tag column; for ``conllu`` the field index (3 = UPOS).
        encoding: text encoding of the files.
        delimiter: ``conll`` only: ``"whitespace"`` (columns split on spaces and tabs) or ``"tab"`` (on tabs
            only, so tokens may contain spaces).
        comment_prefix: ``conll`` only: lines starting with it are skipped (e.g. ``"#"``); None: no comments.
        data_dir: local data root (``paths.data_dir``); None to use the Hub.
        hub: Hub source: ``{path, tokens, tags}`` for a parquet dataset, or ``{urls: {split: url}}`` for
            files in ``format`` downloaded by URL.
        batch_size: training batch size.
        eval_batch_size: validation/test batch size.
        min_freq: words rarer than this in train map to ``<unk>``.
        lowercase: lowercase words before lookup (characters always keep the original spelling).
        max_word_length: characters kept per word for character-level features (batch key ``chars``); 0 for
            none. Longer words keep their first and last ``max_word_length / 2`` characters. The
            ``model/chars`` options set it.
        num_workers: DataLoader workers.
        seed: seed of the batch order.
        tag_scheme: null keeps the files' tags; ``iob2`` or ``bioes`` rewrites entity tags into that scheme
            as they are read (the same entities: ``rnnlab.data.tag_schemes``), so the model learns, predicts and
            is scored in it.
    """

    def __init__(self, name: str, subdir: str, files: dict[str, str], format: str = "conll",
                 token_column: int = 0, tag_column: int = -1, encoding: str = "utf-8",
                 delimiter: str = "whitespace", comment_prefix: str | None = None, data_dir: str | None = None,
                 hub: dict | None = None, batch_size: int = 32, eval_batch_size: int = 128, min_freq: int = 1,
                 lowercase: bool = False, max_word_length: int = 0, num_workers: int = 0, seed: int = 0,
                 tag_scheme: str | None = None):
        super().__init__(batch_size, eval_batch_size, num_workers, seed)
        self.read_columns = COLUMN_FORMATS[format]
        missing = set(SPLITS) - set(files)
        if missing:
            raise ValueError(f"data.files needs an entry for {sorted(missing)}")
        check_conll_options(delimiter, comment_prefix)
        if max_word_length < 0:
            raise ValueError(f"data.max_word_length must be >= 0, got {max_word_length}")
        if tag_scheme not in (None, *SCHEMES):
            raise DataError(f"data.tag_scheme={tag_scheme!r} is no tag scheme; set it to one of {', '.join(SCHEMES)}, "
                            f"or null to keep the files' tags")
        self.tag_scheme = tag_scheme
        self.name, self.subdir, self.files = name, subdir, dict(files)
        self.format, self.token_column, self.tag_column = format, token_column, tag_column
        self.encoding, self.data_dir, self.hub = encoding, data_dir, hub
        self.delimiter, self.comment_prefix = delimiter, comment_prefix
        self.columns = ColumnOptions(token_column, tag_column, encoding, delimiter, comment_prefix)
        self.min_freq, self.lowercase, self.max_word_length = min_freq, lowercase, max_word_length
        self.vocab: Vocabulary | None = None
        self.chars: Vocabulary | None = None
        self.tags: Vocabulary | None = None
        self.unseen_tag_counts: dict[str, Counter] = {}

    # ----------------------------------------------------------------- reading
    def _read(self, path: Path) -> Sentences:
        return self._retagged(Sentences(partial(self.read_columns, path, self.columns)))

    def _retagged(self, sentences: Iterable[dict]) -> Iterable[dict]:
        """``sentences`` with their tags in ``tag_scheme`` (as read without one)."""
        if self.tag_scheme is None:
            return sentences
        return Sentences(lambda: map(self._retag, sentences))

    def _retag(self, sentence: dict) -> dict:
        if "tags" not in sentence:  # raw text to tag
            return sentence
        try:
            return {**sentence, "tags": retag(sentence["tags"], self.tag_scheme)}
        except ValueError as error:
            raise DataError(f"{self.name}: {error}; set data.tag_scheme=null to keep the files' tags") from None

    def _load_hub(self, splits: tuple[str, ...]) -> dict[str, Iterable[dict]]:
        if "urls" in self.hub:
            paths = datasets.DownloadManager().download({split: self.hub["urls"][split] for split in splits})
            return {split: self._read(Path(paths[split])) for split in splits}
        loaded = datasets.load_dataset(self.hub["path"])
        tag_names = loaded["train"].features[self.hub["tags"]].feature.names
        return {split: self._retagged([{"tokens": row[self.hub["tokens"]],
                                        "tags": [tag_names[t] for t in row[self.hub["tags"]]]}
                                       for row in loaded[self.hub.get("splits", {}).get(split, split)]])
                for split in splits}

    def stream_splits(self, splits: tuple[str, ...] = SPLITS) -> dict[str, Iterable[dict]]:
        """The splits' ``{"tokens", "tags"}`` sentences, read anew from the file on each pass over a split.

        Raises:
            DataError: a split is empty; a line the format cannot read raises it during a pass.
        """
        return load_with_fallback(self.name, self.data_dir, self.subdir, {s: self.files[s] for s in splits},
                                  self._read, partial(self._load_hub, splits) if self.hub else None, self.hub and (
                                      self.hub.get("path") or ", ".join(self.hub["urls"].values())))

    def read_splits(self, splits: tuple[str, ...] = SPLITS) -> dict[str, list[dict]]:
        """The splits as lists of ``{"tokens", "tags"}`` (evaluating one split needs its sentences by index)."""
        return {split: list(sentences) for split, sentences in self.stream_splits(splits).items()}

    def read_file(self, path: str | Path) -> list[dict]:
        """One file in ``format``, as ``{"tokens", "tags"}`` sentences."""
        sentences = list(self._read(Path(path)))
        if not sentences:
            raise DataError(f"{path} holds no sentence; give a {self.format} file "
                            f"(data.format={'|'.join(COLUMN_FORMATS)})")
        return sentences

    # ----------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        """Reads the data and builds the vocabularies from train (see ``extend_vocabulary``), once.

        The files are streamed: one pass counts words and tags, a second encodes them into Arrow tables, so that
        no split is ever held as Python strings (a 1 M-sentence file fits in about its encoded size).
        """
        if self.vocab is not None:
            return
        splits = self.stream_splits()
        counts = {split: _count(splits[split]) for split in SPLITS}
        words = Counter()
        for word, n in counts["train"][0].items():
            words[self._normalise(word)] += n
        self.vocab = self.extend_vocabulary(
            Vocabulary.from_counts(words, min_freq=self.min_freq),
            ([self._normalise(w) for w in ex["tokens"]] for split in SPLITS[1:] for ex in splits[split]))
        if self.max_word_length:
            self.chars = Vocabulary.from_counts(_characters(counts["train"][0]))
        train_tags = Vocabulary.from_counts(counts["train"][1], specials=())
        # Tags absent from train cannot be learned, but gold spans of them must still count as misses.
        unseen = {split: Counter({t: n for t, n in counts[split][1].items() if t not in train_tags})
                  for split in SPLITS[1:]}
        self.unseen_tag_counts = {split: counts for split, counts in unseen.items() if counts}
        for split, counts in self.unseen_tag_counts.items():
            log.warning("%s: %d %s tokens carry tags unseen in train: %s", self.name, sum(counts.values()),
                        split, dict(counts))
        extra = sorted(set().union(*unseen.values()))
        self.tags = Vocabulary([*train_tags.items, *extra], unk=None)
        for split in SPLITS:  # every tag is known by now: no check of unseen tags, which would read a file again
            super().add_split(split, splits[split])
        sampler = self.batch_sampler("train", shuffle=True)
        log.info("%s: %d words, %d characters, %d tags; %s sentences; padding with length buckets: %.1f%%",
                 self.name, len(self.vocab), len(self.chars or ()), len(self.tags),
                 {s: len(d) for s, d in self.datasets.items()}, 100 * sampler.padding_fraction())

    def _normalise(self, word: str) -> str:
        return word.lower() if self.lowercase else word

    def model_kwargs(self) -> dict:
        """What the model needs from the data: vocabularies as JSON-friendly dicts (``chars`` when built)."""
        kwargs = {"vocab": self.vocab.to_dict(), "tags": self.tags.to_dict()}
        if self.chars is not None:
            kwargs["chars"] = self.chars.to_dict()
        return kwargs

    def set_vocabularies(self, model_kwargs: dict) -> None:
        """The inverse of ``model_kwargs``: a trained model's vocabularies, to read new data as training did."""
        self.vocab, self.tags = Vocabulary.from_dict(model_kwargs["vocab"]), Vocabulary.from_dict(model_kwargs["tags"])
        self.chars = Vocabulary.from_dict(model_kwargs["chars"]) if model_kwargs.get("chars") else None

    def add_split(self, name: str, examples: Iterable[dict]) -> None:
        """Encodes a split; gold tags the model lacks (evaluation data only) are appended to ``tags``.

        ``examples`` is read twice (a list, or ``Sentences``).

        Setup puts every split's tags in the vocabulary, so only data read later (``eval.py input=FILE``) can
        bring new ones. Their ids follow the model's tags, so the model never predicts them and their gold
        entities (tokens) count as misses; ``TaggingModule.set_gold_tags`` makes its metrics score them.
        """
        unseen = sorted({tag for example in examples for tag in example["tags"] if tag not in self.tags})
        if unseen:
            log.warning("%s: tags %s are not among the model's tags %s; the model never predicts them, so their "
                        "gold entities (tokens) count as misses", name, unseen, self.tags.items)
            self.tags = Vocabulary([*self.tags.items, *unseen], unk=None)
        super().add_split(name, examples)

    def encoder(self):
        return partial(_encode, self.vocab, self.tags, self._normalise, self.chars, self.max_word_length)

    def collate_fn(self):
        return partial(_collate, self.vocab.pad_id, self.chars.pad_id if self.chars else None)


def _count(sentences: Iterable[dict]) -> tuple[Counter, Counter]:
    """How often each token (as written) and each tag occurs, in one pass."""
    tokens, tags = Counter(), Counter()
    for sentence in sentences:
        tokens.update(sentence["tokens"])
        tags.update(sentence["tags"])
    return tokens, tags


def _characters(tokens: Counter) -> Counter:
    """How often each character occurs in the counted tokens."""
    characters = Counter()
    for token, n in tokens.items():
        for character in token:
            characters[character] += n
    return characters


def _encode(vocab: Vocabulary, tags: Vocabulary, normalise, chars: Vocabulary | None, max_word_length: int,
            batch: dict) -> dict:
    """Sentences without ``tags`` (raw text to tag) get ``IGNORE_INDEX`` targets."""
    tag_ids = ([tags.encode(sentence) for sentence in batch["tags"]] if "tags" in batch
               else [[IGNORE_INDEX] * len(tokens) for tokens in batch["tokens"]])
    encoded = {"input_ids": [vocab.encode(normalise(w) for w in tokens) for tokens in batch["tokens"]],
               "tag_ids": tag_ids, "length": [len(tokens) for tokens in batch["tokens"]]}
    if chars is not None:
        encoded["char_ids"] = [[chars.encode(_clip(w, max_word_length)) for w in tokens] for tokens in batch["tokens"]]
    return encoded


def _clip(word: str, length: int) -> str:
    """The word, or its first and last ``length / 2`` characters: prefixes and suffixes (-ing, -ly) both tell."""
    return word if len(word) <= length else word[:length - length // 2] + word[len(word) - length // 2:]


def _collate(pad_id: int, char_pad_id: int | None, rows: list[dict]) -> dict:
    tokens, mask = pad_sequences([row["input_ids"] for row in rows], pad_id)  # (B, T)
    tags, _ = pad_sequences([row["tag_ids"] for row in rows], IGNORE_INDEX)
    batch = {"tokens": tokens, "tags": tags, "mask": mask}
    if char_pad_id is not None:
        words, _ = pad_sequences([word for row in rows for word in row["char_ids"]], char_pad_id)  # (W, L)
        batch["chars"] = words.new_full((*mask.shape, words.shape[1]), char_pad_id)  # (B, T, L)
        batch["chars"][mask] = words  # the real words, in row order
    return batch
