"""The span F1 metric equals seqeval (default, conlleval-compatible mode) on IOB1, IOB2 and BIOES."""

from __future__ import annotations

import random

import pytest
import torch
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities

from rnnlab.metrics import SpanF1, extract_spans

TYPES = ["PER", "LOC", "ORG"]
PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}


def tag_set(scheme: str) -> list[str]:
    return ["O"] + [f"{p}-{t}" for p in PREFIXES[scheme] for t in TYPES]


def to_ids(sentences: list[list[str]], tags: list[str]) -> torch.Tensor:
    index = {t: i for i, t in enumerate(tags)}
    ids = torch.full((len(sentences), max(len(s) for s in sentences)), -100)
    for row, sentence in enumerate(sentences):
        ids[row, :len(sentence)] = torch.tensor([index[t] for t in sentence])
    return ids


EDGE_CASES = [
    ["O", "O"],
    ["I-PER"],                           # IOB1: an entity starting with I-
    ["I-PER", "I-PER", "B-PER", "I-PER"],  # IOB1: B- separates two adjacent entities
    ["B-PER", "I-LOC"],                  # type change inside a chunk
    ["I-PER", "O", "I-PER"],
    ["E-LOC", "S-LOC", "B-LOC", "E-LOC"],
    ["B-ORG", "B-ORG", "I-ORG", "E-ORG", "S-PER"],
    ["I-LOC", "E-LOC", "I-LOC"],
]


@pytest.mark.parametrize("scheme", sorted(PREFIXES))
def test_spans_equal_seqeval_on_random_sequences(scheme: str) -> None:
    rng = random.Random(0)
    tags = tag_set(scheme)
    for _ in range(2000):
        sequence = [rng.choice(tags) for _ in range(rng.randint(0, 9))]
        assert extract_spans(sequence) == set(get_entities(sequence)), sequence


def test_spans_equal_seqeval_on_edge_cases() -> None:
    for sequence in EDGE_CASES:
        assert extract_spans(sequence) == set(get_entities(sequence)), sequence


@pytest.mark.parametrize("scheme", sorted(PREFIXES))
def test_metric_equals_seqeval_scores(scheme: str) -> None:
    rng = random.Random(1)
    tags = tag_set(scheme)
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(200)] + EDGE_CASES
    # Predictions: gold with some tags flipped, so scores are neither 0 nor 1.
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in sentence] for sentence in gold]
    edge_tags = {t for sentence in EDGE_CASES for t in sentence}
    metric = SpanF1(sorted({*tags, *edge_tags, "B-MISC", "I-MISC"}))  # MISC never occurs: its counts stay 0
    for start in range(0, len(gold), 64):  # several batches accumulate
        metric.update(to_ids(pred[start:start + 64], metric.tags), to_ids(gold[start:start + 64], metric.tags))
    result = metric.compute()
    assert result["f1"].item() == pytest.approx(f1_score(gold, pred), abs=1e-6)
    assert result["precision"].item() == pytest.approx(precision_score(gold, pred), abs=1e-6)
    assert result["recall"].item() == pytest.approx(recall_score(gold, pred), abs=1e-6)
    for kind in TYPES:
        only = [[t if t.endswith(kind) else "O" for t in s] for s in gold]
        only_pred = [[t if t.endswith(kind) else "O" for t in s] for s in pred]
        assert result[f"f1_{kind}"].item() == pytest.approx(f1_score(only, only_pred), abs=1e-6)
        assert result[f"precision_{kind}"].item() == pytest.approx(precision_score(only, only_pred), abs=1e-6)
        assert result[f"recall_{kind}"].item() == pytest.approx(recall_score(only, only_pred), abs=1e-6)
    assert result["f1_MISC"].item() == result["precision_MISC"].item() == result["recall_MISC"].item() == 0.0


def test_perfect_and_empty_predictions() -> None:
    tags = tag_set("IOB2")
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    metric = SpanF1(tags)
    metric.update(to_ids(gold, tags), to_ids(gold, tags))
    assert metric.compute()["f1"].item() == 1.0
    metric.reset()
    metric.update(to_ids([["O"] * 4], tags), to_ids(gold, tags))
    assert metric.compute()["f1"].item() == 0.0
