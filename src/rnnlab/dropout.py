"""The dropouts of recurrent networks (AWD-LSTM, Merity et al. 2018), shared by every model.

- standard dropout: a fresh mask for every element, so for every time step;
- locked (variational) dropout (Gal & Ghahramani 2016): one mask per sequence, the same at every time step;
- weight drop (DropConnect on the hidden-to-hidden matrices; Wan et al. 2013): one mask on the weights per
  forward pass, applied once to the matrix so every kernel runs the dropped matrix at full speed.

Word-type dropout lives with the embeddings (``rnnlab.models.embeddings``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

DROPOUT_KINDS = ("standard", "locked")


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence.

    Args:
        p: probability of zeroing an element; kept elements are scaled by ``1/(1-p)``.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, ...)`` -> the same with one ``(B, 1, ...)`` mask for all ``T`` steps; a 2-D ``(B, D)`` input
        (one position, or a sentence vector) gets ordinary dropout."""
        if not self.training or self.p == 0.0:
            return x
        if x.dim() < 3:
            return F.dropout(x, self.p, True)
        mask = x.new_empty(x.shape[0], 1, *x.shape[2:]).bernoulli_(1.0 - self.p) / (1.0 - self.p)  # (B, 1, ...)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def make_dropout(p: float, kind: str = "standard") -> nn.Module:
    """The dropout module of ``model.dropout_kind``: ``nn.Dropout`` (``standard``) or ``LockedDropout``."""
    if kind not in DROPOUT_KINDS:
        raise ValueError(f"model.dropout_kind must be one of {DROPOUT_KINDS}, got {kind!r}")
    return nn.Dropout(p) if kind == "standard" else LockedDropout(p)


class DropConnect(nn.Module):
    """A parametrization that drops elements of a weight while training (``F.dropout`` on the weight).

    Args:
        p: probability of zeroing a weight; kept weights are scaled by ``1/(1-p)``.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, weight: Tensor) -> Tensor:
        return F.dropout(weight, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_recurrent_weights(cell: nn.Module, p: float) -> None:
    """Registers ``DropConnect(p)`` on each of the cell's ``recurrent_weights``.

    A parametrized weight is recomputed at every access, so callers run a forward pass inside
    ``torch.nn.utils.parametrize.cached()``: one mask per pass, shared by every time step.

    Raises:
        ValueError: ``p`` outside ``[0, 1)``, or ``p > 0`` for a cell without hidden-to-hidden weights.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"model.weight_drop must be in [0, 1), got {p}")
    if p == 0.0:
        return
    names = getattr(cell, "recurrent_weights", ())
    if not names:
        raise ValueError(f"model.weight_drop={p} drops hidden-to-hidden weights, which {type(cell).__name__} "
                         f"does not have (its recurrence is elementwise, without a matrix); set model.weight_drop=0")
    for name in names:
        parametrize.register_parametrization(cell, name, DropConnect(p))
