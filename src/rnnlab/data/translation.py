"""Parallel text for translation: line-aligned files or the Hub -> Moses tokens -> HF datasets -> bucketed batches.

Rules for odd input:
    - the two sides of a split must have the same number of lines, else ``DataError`` names both files and
      both counts;
    - a pair with an empty (or whitespace-only) side is dropped from train, with a logged count; in
      validation and test it is kept, so scores always cover the whole set: the source is then the lone
      ``<eos>`` and the reference the empty string;
    - a file that does not decode with ``encoding`` raises ``DataError`` naming the file and line.
"""

from __future__ import annotations

import logging
from functools import partial
from itertools import chain
from pathlib import Path

import datasets
from sacremoses import MosesTokenizer

from rnnlab.data.batching import pad_sequences
from rnnlab.data.bucketed import BucketedDataModule
from rnnlab.data.errors import DataError
from rnnlab.data.readers import read_lines
from rnnlab.data.sources import load_with_fallback, local_files
from rnnlab.data.special import BOS, EOS, PAD, UNK
from rnnlab.data.vocab import Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SOURCE_SPECIALS = (PAD, UNK, EOS)
TARGET_SPECIALS = (PAD, UNK, BOS, EOS)


class TranslationDataModule(BucketedDataModule):
    """Sentence pairs for a conditional language model.

    Source ids end with ``<eos>`` (no source is empty, and the encoder sees where the sentence ends); target
    ids are ``<bos> y_1 .. y_n <eos>``: the decoder reads all but the last and predicts all but the first.
    Batches also carry the raw reference text, which BLEU and chrF score against, and each pair's index in
    its split.

    Args:
        name: dataset name used in messages.
        subdir: folder of this dataset inside ``data_dir``.
        files: file stem per split (``train``, ``validation``, ``test``); the files are
            ``<stem>.<lang><suffix>``, e.g. ``train.de.gz``; an absolute stem is used as given.
        suffix: file name ending after the language code (``.gz`` files are decompressed).
        source_lang: source language code (file suffix and Moses tokenizer language).
        target_lang: target language code.
        encoding: text encoding of the files.
        data_dir: local data root (``paths.data_dir``); None to use the Hub.
        hub: Hub source ``{path, splits: {split: hub_split}}``, a parquet dataset whose rows hold one column per
            language code; None for local files only.
        batch_size: training batch size (sentence pairs).
        eval_batch_size: validation/test batch size.
        min_freq: words rarer than this in train map to ``<unk>``.
        target_min_freq: the same for the target side (None: ``min_freq``); the target vocabulary sets the
            size, and so the cost, of the output layer.
        max_vocab: cap on each vocabulary's size, specials included; None for no cap.
        lowercase: lowercase both sides before tokenising (references stay raw; the task then scores
            case-insensitively).
        max_train_length: drop training pairs with a side longer than this many tokens; None keeps all.
        num_workers: DataLoader workers.
        seed: seed of the batch order.
    """

    def __init__(self, name: str, subdir: str, files: dict[str, str], suffix: str = "", source_lang: str = "de",
                 target_lang: str = "en", encoding: str = "utf-8", data_dir: str | None = None,
                 hub: dict | None = None, batch_size: int = 64, eval_batch_size: int = 256, min_freq: int = 1,
                 target_min_freq: int | None = None, max_vocab: int | None = None, lowercase: bool = False,
                 max_train_length: int | None = None, num_workers: int = 0, seed: int = 0):
        super().__init__(batch_size, eval_batch_size, num_workers, seed)
        missing = set(SPLITS) - set(files)
        if missing:
            raise ValueError(f"data.files needs an entry for {sorted(missing)}")
        if source_lang == target_lang:
            raise ValueError(f"data.source_lang and data.target_lang must differ, both are {source_lang!r}")
        self.name, self.subdir, self.files, self.suffix = name, subdir, dict(files), suffix
        self.source_lang, self.target_lang = source_lang, target_lang
        self.encoding, self.data_dir, self.hub = encoding, data_dir, hub
        self.min_freq, self.max_vocab, self.lowercase = min_freq, max_vocab, lowercase
        self.target_min_freq = min_freq if target_min_freq is None else target_min_freq
        self.max_train_length = max_train_length
        self.source_vocab: Vocabulary | None = None
        self.target_vocab: Vocabulary | None = None

    # ----------------------------------------------------------------- reading
    def _file_names(self, splits: tuple[str, ...]) -> dict[str, str]:
        """One entry per split and side, keyed ``"<split>.<lang>"``."""
        return {f"{split}.{lang}": f"{self.files[split]}.{lang}{self.suffix}"
                for split in splits for lang in (self.source_lang, self.target_lang)}

    def _read_local(self, path: Path) -> list[str]:
        return [line for _, line in read_lines(path, self.encoding)]

    def _load_hub(self, splits: tuple[str, ...]) -> dict[str, list[str]]:
        loaded = datasets.load_dataset(self.hub["path"])
        names = self.hub.get("splits") or {}
        return {f"{split}.{lang}": loaded[names.get(split, split)][lang]
                for split in splits for lang in (self.source_lang, self.target_lang)}

    def _pairs(self, split: str, sources: list[str], targets: list[str], source_where: str,
               target_where: str) -> list[dict]:
        """Aligned lines -> ``{"source", "target", "index"}`` pairs, empty pairs handled as documented."""
        if len(sources) != len(targets):
            raise DataError(f"{self.name}: the {split} files are not line-aligned: {source_where} has "
                            f"{len(sources)} lines but {target_where} has {len(targets)}")
        pairs = [{"source": s.strip(), "target": t.strip()} for s, t in zip(sources, targets)]
        if split == "train":
            kept = [pair for pair in pairs if pair["source"] and pair["target"]]
            if len(kept) < len(pairs):
                log.warning("%s: dropped %d training pairs with an empty side", self.name, len(pairs) - len(kept))
            pairs = kept
        if not pairs:
            raise DataError(f"{self.name}: the {split} split ({source_where}, {target_where}) holds no sentence "
                            f"pair; check data.files.{split}")
        return [{**pair, "index": index} for index, pair in enumerate(pairs)]

    def read_splits(self, splits: tuple[str, ...] = SPLITS) -> dict[str, list[dict]]:
        """The splits as lists of ``{"source", "target", "index"}`` raw lines, empty pairs handled as documented.

        Raises:
            DataError: the two sides of a split differ in length, or a split holds no pair.
        """
        names = self._file_names(splits)
        sides = load_with_fallback(self.name, self.data_dir, self.subdir, names, self._read_local,
                                   partial(self._load_hub, splits) if self.hub else None,
                                   self.hub and self.hub.get("path"))
        paths = local_files(self.data_dir, self.subdir, names)
        where = {key: str(paths[key]) if paths else f"{self.hub['path']} [{key}]" for key in names}
        keys = {split: (f"{split}.{self.source_lang}", f"{split}.{self.target_lang}") for split in splits}
        return {split: self._pairs(split, sides[source], sides[target], where[source], where[target])
                for split, (source, target) in keys.items()}

    def read_file(self, stem: str | Path) -> list[dict]:
        """The line-aligned files ``<stem>.<source_lang><suffix>`` and ``<stem>.<target_lang><suffix>``, as pairs."""
        paths = [Path(f"{stem}.{lang}{self.suffix}") for lang in (self.source_lang, self.target_lang)]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise DataError(f"{', '.join(missing)} not found: translation input names a file stem, read as "
                            f"<stem>.{self.source_lang}{self.suffix} and <stem>.{self.target_lang}{self.suffix} "
                            f"(the ending is data.suffix, now {self.suffix!r})")
        return self._pairs(Path(stem).name, *(self._read_local(path) for path in paths), *map(str, paths))

    # ----------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        """Reads and tokenises the data and builds both vocabularies from train, once; the source vocabulary
        passes through ``extend_vocabulary`` (the target one is the output layer's classes: never extended)."""
        if self.source_vocab is not None:
            return
        splits = self.read_splits()
        tokenise = self._tokeniser()
        tables = {split: datasets.Dataset.from_list(pairs).map(tokenise, batched=True,
                                                               desc=f"tokenising {self.name} {split}")
                  for split, pairs in splits.items()}
        if self.max_train_length:
            limit = self.max_train_length
            before = len(tables["train"])
            tables["train"] = tables["train"].filter(
                lambda row: len(row["source_tokens"]) <= limit and len(row["target_tokens"]) <= limit)
            log.info("%s: %d of %d training pairs are at most %d tokens long", self.name, len(tables["train"]),
                     before, limit)
        self.source_vocab = self.extend_vocabulary(
            Vocabulary.build(tables["train"]["source_tokens"], self.min_freq, SOURCE_SPECIALS, self.max_vocab),
            chain(tables["validation"]["source_tokens"], tables["test"]["source_tokens"]))
        self.target_vocab = Vocabulary.build(tables["train"]["target_tokens"], self.target_min_freq,
                                             TARGET_SPECIALS, self.max_vocab)
        encode = partial(_encode, self.source_vocab, self.target_vocab)
        for split, table in tables.items():
            self.datasets[split] = table.map(encode, batched=True,
                                             remove_columns=["source", "source_tokens", "target_tokens"],
                                             desc=f"encoding {self.name} {split}")
        sampler = self.batch_sampler("train", shuffle=True)
        log.info("%s %s->%s: vocabularies %d / %d; %s pairs; padding with length buckets: %.1f%%", self.name,
                 self.source_lang, self.target_lang, len(self.source_vocab), len(self.target_vocab),
                 {s: len(d) for s, d in self.datasets.items()}, 100 * sampler.padding_fraction())

    def model_kwargs(self) -> dict:
        """What the model needs from the data: vocabularies as JSON-friendly dicts, the target language."""
        return {"source_vocab": self.source_vocab.to_dict(), "target_vocab": self.target_vocab.to_dict(),
                "target_lang": self.target_lang, "lowercase": self.lowercase}

    def set_vocabularies(self, model_kwargs: dict) -> None:
        """The inverse of ``model_kwargs``: a trained model's vocabularies, to read new text as training did."""
        self.source_vocab = Vocabulary.from_dict(model_kwargs["source_vocab"])
        self.target_vocab = Vocabulary.from_dict(model_kwargs["target_vocab"])

    def _tokeniser(self):
        return partial(_tokenise, MosesTokenizer(self.source_lang), MosesTokenizer(self.target_lang),
                       self.lowercase)

    def encoder(self):
        """Raw pairs -> rows: Moses tokens, then ids (``setup`` runs the two steps apart, to build the
        vocabularies in between)."""
        return partial(_tokenise_and_encode, self._tokeniser(), partial(_encode, self.source_vocab,
                                                                        self.target_vocab))

    def collate_fn(self):
        return partial(_collate, self.source_vocab.pad_id, self.target_vocab.pad_id)


def _tokenise(source_tokenizer: MosesTokenizer, target_tokenizer: MosesTokenizer, lowercase: bool,
              batch: dict) -> dict:
    def tokens(tokenizer: MosesTokenizer, text: str) -> list[str]:
        # escape=False keeps & < > " ' as they are, so detokenised output compares with raw references.
        return tokenizer.tokenize(text.lower() if lowercase else text, escape=False) if text else []

    return {"source_tokens": [tokens(source_tokenizer, s) for s in batch["source"]],
            "target_tokens": [tokens(target_tokenizer, t) for t in batch["target"]]}


def _encode(source_vocab: Vocabulary, target_vocab: Vocabulary, batch: dict) -> dict:
    bos, eos = target_vocab[BOS], target_vocab[EOS]
    source_ids = [[*source_vocab.encode(tokens), source_vocab[EOS]] for tokens in batch["source_tokens"]]
    return {"source_ids": source_ids,
            "target_ids": [[bos, *target_vocab.encode(tokens), eos] for tokens in batch["target_tokens"]],
            "length": [len(ids) for ids in source_ids],
            "target": batch["target"], "index": batch["index"]}


def _tokenise_and_encode(tokenise, encode, batch: dict) -> dict:
    return encode({**batch, **tokenise(batch)})


def _collate(source_pad: int, target_pad: int, rows: list[dict]) -> dict:
    source, source_mask = pad_sequences([row["source_ids"] for row in rows], source_pad)  # (B, S)
    target, target_mask = pad_sequences([row["target_ids"] for row in rows], target_pad)  # (B, T + 2)
    return {"source": source, "source_mask": source_mask, "target": target, "target_mask": target_mask,
            "references": [row["target"] for row in rows], "index": [row["index"] for row in rows]}
