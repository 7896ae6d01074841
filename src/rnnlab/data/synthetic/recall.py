"""Key recall: a key symbol, then T distractor symbols; the label is the key, T steps before the end."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnlab.data.synthetic import SYNTHETIC_TASKS, SyntheticTask, pack


def generate_recall(rng: np.random.Generator, n: int, distance: int, num_classes: int,
                    vocab_size: int) -> dict[str, Tensor]:
    """Key-recall sequences.

    Ids: 0 padding (unused), ``1..num_classes`` keys, the rest up to ``vocab_size`` distractors.

    Returns:
        ``inputs`` ``(n, T+1)`` long, ``mask`` ``(n, T+1)`` bool, ``targets`` ``(n,)`` long in
        ``[0, num_classes)``.
    """
    keys = rng.integers(0, num_classes, size=n)  # (n,)
    distractors = rng.integers(1 + num_classes, vocab_size, size=(n, distance))  # (n, T)
    inputs = np.concatenate([1 + keys[:, None], distractors], axis=1)  # (n, T+1)
    return pack(torch.from_numpy(inputs), torch.from_numpy(keys))


@SYNTHETIC_TASKS.register("recall")
class Recall(SyntheticTask):
    """A left-to-right reader must carry the key across T steps; chance accuracy 1/num_classes."""

    def check(self) -> None:
        if not 2 <= self.num_classes < self.vocab_size:
            raise ValueError(f"recall needs 2 <= num_classes < vocab_size (room for distractors), "
                             f"got {self.num_classes} and {self.vocab_size}")

    def generate(self, rng: np.random.Generator, n: int) -> dict[str, Tensor]:
        return generate_recall(rng, n, self.distance, self.num_classes, self.vocab_size)

    def chance(self) -> float:
        return 1.0 / self.num_classes  # keys are uniform

    def model_kwargs(self) -> dict:
        return {"vocab_size": self.vocab_size + 1, "num_outputs": self.num_classes}
