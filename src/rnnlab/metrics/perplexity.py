"""Perplexity over a whole split: ``exp(total NLL / total predicted tokens)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import MeanMetric


class Perplexity(MeanMetric):
    """``exp`` of the mean token NLL over everything seen since the last reset.

    ``update(nll)`` takes the NLL (natural log) of each predicted token, or ``update(mean_nll, weight=count)``
    a batch's mean over ``count`` tokens. Sums are kept in float64 and summed across processes, so the value
    is that of the whole split, never a mean of per-batch perplexities.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(nan_strategy="error", **kwargs)
        self.set_dtype(torch.float64)

    def compute(self) -> Tensor:
        return super().compute().exp()
