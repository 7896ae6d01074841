"""Vocabularies: built once from the training split, stored as JSON with the run and in checkpoints."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

from rnnlab.atomic import write_atomic
from rnnlab.data.special import PAD, UNK


class Vocabulary:
    """A bijection between strings and ids.

    Args:
        items: the strings, in id order.
        unk: the string unknown items map to, or None for a closed set (tags, labels).
    """

    def __init__(self, items: Iterable[str], unk: str | None = UNK):
        self.items = list(items)
        self.index = {item: i for i, item in enumerate(self.items)}
        if len(self.index) != len(self.items):
            raise ValueError("vocabulary items must be unique")
        if unk is not None and unk not in self.index:
            raise ValueError(f"unknown token {unk!r} is not in the vocabulary")
        self.unk = unk

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], min_freq: int = 1,
              specials: tuple[str, ...] = (PAD, UNK), max_size: int | None = None) -> "Vocabulary":
        """Counts items; keeps those seen at least ``min_freq`` times, most frequent first, after ``specials``."""
        return cls.from_counts(Counter(item for sequence in sequences for item in sequence), min_freq, specials,
                               max_size)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_freq: int = 1, specials: tuple[str, ...] = (PAD, UNK),
                    max_size: int | None = None) -> "Vocabulary":
        """``build`` from counts already made (ties broken by the item, so the ids do not depend on the order)."""
        kept = [item for item, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                if n >= min_freq and item not in specials]
        if max_size is not None:
            kept = kept[:max(0, max_size - len(specials))]
        return cls([*specials, *kept], unk=UNK if UNK in specials else None)

    def extend(self, items: Iterable[str]) -> "Vocabulary":
        """This vocabulary with the new ``items`` appended, each once, in order; the ids it gave stay."""
        added = (item for item in dict.fromkeys(items) if item not in self.index)
        return Vocabulary([*self.items, *added], unk=self.unk)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: str) -> bool:
        return item in self.index

    def __getitem__(self, item: str) -> int:
        if item in self.index:
            return self.index[item]
        if self.unk is None:
            raise KeyError(f"{item!r} is not in the closed vocabulary")
        return self.index[self.unk]

    def encode(self, sequence: Iterable[str]) -> list[int]:
        return [self[item] for item in sequence]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.items[i] for i in ids]

    @property
    def pad_id(self) -> int:
        return self.index[PAD]

    def to_dict(self) -> dict:
        return {"items": self.items, "unk": self.unk}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        return cls(data["items"], unk=data["unk"])

    def save(self, path: str | Path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False))
