"""The adding problem (Hochreiter & Schmidhuber 1997): the sum of the two marked values among T steps."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnlab.data.synthetic import SYNTHETIC_TASKS, SyntheticTask, pack


def generate_adding(rng: np.random.Generator, n: int, distance: int) -> dict[str, Tensor]:
    """Adding-problem sequences of length ``distance``: one marker in each half.

    Returns:
        ``inputs`` ``(n, T, 2)`` float ``[value, marker]``, ``mask`` ``(n, T)``, ``targets`` ``(n,)`` float.
    """
    if distance < 2:
        raise ValueError(f"the adding task needs distance >= 2, got {distance}")
    values = rng.random((n, distance))  # (n, T)
    half = distance // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, distance, size=n)
    markers = np.zeros((n, distance))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    inputs = np.stack([values, markers], axis=-1)  # (n, T, 2)
    targets = values[rows, first] + values[rows, second]
    return pack(torch.from_numpy(inputs).float(), torch.from_numpy(targets).float())


@SYNTHETIC_TASKS.register("adding")
class Adding(SyntheticTask):
    """T steps of ``[value, marker]`` with values U(0, 1) and a marker in each half; a regression."""

    target = "value"

    def generate(self, rng: np.random.Generator, n: int) -> dict[str, Tensor]:
        return generate_adding(rng, n, self.distance)

    def chance(self) -> float:
        """The MSE of always predicting the mean sum 1: Var(u1 + u2) = 2 * (1/12) = 1/6."""
        return 2.0 / 12.0

    def model_kwargs(self) -> dict:
        return {"input_dim": 2, "num_outputs": 1}
