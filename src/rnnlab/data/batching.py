"""Padding helpers shared by every DataModule's collate function."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


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
