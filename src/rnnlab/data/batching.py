"""Encoding and padding helpers shared by every DataModule."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor


def map_rows(encoder: Callable[[dict], dict], examples: list[dict]) -> list[dict]:
    """Applies a batched encoder (columns -> columns, as ``datasets.map(batched=True)`` calls it) to examples.

    Inference encodes new sentences so, with the very function the DataModule maps over its splits.
    """
    encoded = encoder({key: [example[key] for example in examples] for key in examples[0]})
    return [dict(zip(encoded, values)) for values in zip(*encoded.values())]


def pad_sequences(sequences: Sequence[Sequence[int]], pad: int) -> tuple[Tensor, Tensor]:
    """Right-pads id sequences.

    Returns:
        ``ids`` ``(B, T)`` long and ``mask`` ``(B, T)`` bool (True at real positions), ``T`` the longest length.
    """
    lengths = torch.tensor([len(s) for s in sequences])
    ids = torch.full((len(sequences), int(lengths.max()) if len(sequences) else 0), pad, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    mask = torch.arange(ids.shape[1]) < lengths.unsqueeze(1)
    return ids, mask
