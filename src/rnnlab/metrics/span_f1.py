"""Entity-level (span) precision, recall and F1, as conlleval and seqeval's default mode compute them.

A predicted entity counts only if its type, start and end all equal a gold entity's. Chunks are read with
conlleval's rules, so IOB1 (the CoNLL-2003 files), IOB2 and BIOES tags all work without conversion.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

Span = tuple[str, int, int]  # (type, first token, last token)


def _split(tag: str) -> tuple[str, str]:
    """``"B-PER" -> ("B", "PER")``; ``"O" -> ("O", "")``; a bare prefix has an empty type."""
    if tag == "O" or not tag:
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _chunk_ends(prev: str, prev_kind: str, tag: str, kind: str) -> bool:
    """Whether a chunk ends between the previous token and this one (conlleval's endOfChunk)."""
    return (prev in ("E", "S") or
            (prev == "B" and tag in ("B", "S", "O")) or
            (prev == "I" and tag in ("B", "S", "O")) or
            (prev != "O" and prev_kind != kind))


def _chunk_starts(prev: str, prev_kind: str, tag: str, kind: str) -> bool:
    """Whether a chunk starts at this token (conlleval's startOfChunk)."""
    return (tag in ("B", "S") or
            (prev in ("E", "S", "O") and tag in ("E", "I")) or
            (tag != "O" and prev_kind != kind))


def extract_spans(tags: Sequence[str]) -> set[Span]:
    """The entities of one sentence's tag sequence."""
    spans: set[Span] = set()
    prev, prev_kind, start = "O", "", 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, kind = _split(tag)
        if _chunk_ends(prev, prev_kind, prefix, kind) and prev != "O":
            spans.add((prev_kind, start, position - 1))
        if _chunk_starts(prev, prev_kind, prefix, kind):
            start = position
        prev, prev_kind = prefix, kind
    return spans


class SpanF1(Metric):
    """Micro precision/recall/F1 over entities, plus precision/recall/F1 per entity type.

    States are per-type counts summed across processes, so the metric syncs under DDP.

    Args:
        tags: the tag vocabulary; ids passed to ``update`` index into it.
        ignore_index: target id marking padding.
    """

    full_state_update = False

    def __init__(self, tags: Sequence[str], ignore_index: int = -100, **kwargs):
        super().__init__(**kwargs)
        self.tags = list(tags)
        self.types = sorted({_split(t)[1] for t in self.tags if _split(t)[0] != "O"})
        self.type_index = {kind: i for i, kind in enumerate(self.types)}
        self.ignore_index = ignore_index
        for name in ("correct", "predicted", "gold"):
            self.add_state(name, default=torch.zeros(len(self.types), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Counts entities of a batch.

        Args:
            preds: ``(B, T)`` predicted tag ids.
            target: ``(B, T)`` gold tag ids, ``ignore_index`` at padding.
        """
        counts = torch.zeros(3, len(self.types), dtype=torch.long)
        for pred_row, gold_row in zip(preds.tolist(), target.tolist()):
            real = [i for i, g in enumerate(gold_row) if g != self.ignore_index]
            predicted = extract_spans([self.tags[pred_row[i]] for i in real])
            gold = extract_spans([self.tags[gold_row[i]] for i in real])
            for row, spans in enumerate((predicted & gold, predicted, gold)):
                for kind, _, _ in spans:
                    counts[row, self.type_index[kind]] += 1
        self.correct += counts[0].to(self.correct.device)
        self.predicted += counts[1].to(self.predicted.device)
        self.gold += counts[2].to(self.gold.device)

    @staticmethod
    def _prf(correct: Tensor, predicted: Tensor, gold: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        precision = correct / predicted.clamp(min=1)
        recall = correct / gold.clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        return precision.float(), recall.float(), f1.float()

    def compute(self) -> dict[str, Tensor]:
        """``precision``, ``recall``, ``f1`` (micro, in [0, 1]) and ``precision_<TYPE>``, ``recall_<TYPE>``,
        ``f1_<TYPE>`` per entity type."""
        overall = self._prf(self.correct.sum(), self.predicted.sum(), self.gold.sum())
        per_type = self._prf(self.correct, self.predicted, self.gold)  # each (types,)
        result = dict(zip(("precision", "recall", "f1"), overall))
        for name, values in zip(("precision", "recall", "f1"), per_type):
            result.update({f"{name}_{kind}": values[i] for i, kind in enumerate(self.types)})
        return result
