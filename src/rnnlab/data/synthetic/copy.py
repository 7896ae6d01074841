"""Copy: K data symbols, T blanks whose last one is a delimiter, then K blanks during which the K symbols must be
reproduced; every output symbol is T + K steps from its input."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnlab.data.special import IGNORE_INDEX
from rnnlab.data.synthetic import SYNTHETIC_TASKS, SyntheticTask, pack

# Token ids below the data symbols.
COPY_BLANK, COPY_DELIMITER, COPY_OFFSET = 1, 2, 3


def generate_copy(rng: np.random.Generator, n: int, distance: int, copy_length: int,
                  vocab_size: int) -> dict[str, Tensor]:
    """Copy-task sequences of length ``2K + T``.

    Ids: 0 padding (unused), ``COPY_BLANK``, ``COPY_DELIMITER``, then ``vocab_size`` data symbols.

    Returns:
        ``inputs`` ``(n, 2K+T)`` long, ``mask``, ``targets`` ``(n, 2K+T)`` long: the symbol class
        (``0..vocab_size-1``) on the last K steps, ``IGNORE_INDEX`` elsewhere.
    """
    if distance < 1:
        raise ValueError(f"the copy task needs distance >= 1 (the delimiter), got {distance}")
    k = copy_length
    symbols = rng.integers(0, vocab_size, size=(n, k))  # (n, K)
    inputs = np.full((n, 2 * k + distance), COPY_BLANK)
    inputs[:, :k] = COPY_OFFSET + symbols
    inputs[:, k + distance - 1] = COPY_DELIMITER
    targets = np.full_like(inputs, IGNORE_INDEX)
    targets[:, k + distance:] = symbols
    return pack(torch.from_numpy(inputs), torch.from_numpy(targets))


@SYNTHETIC_TASKS.register("copy")
class Copy(SyntheticTask):
    """A symbol class at each of the last K steps; chance per-symbol accuracy 1/vocab_size."""

    per_step = True

    def check(self) -> None:
        if self.vocab_size < 2 or self.copy_length < 1:
            raise ValueError(f"copy needs vocab_size >= 2 and copy_length >= 1, got {self.vocab_size}, "
                             f"{self.copy_length}")

    def generate(self, rng: np.random.Generator, n: int) -> dict[str, Tensor]:
        return generate_copy(rng, n, self.distance, self.copy_length, self.vocab_size)

    def chance(self) -> float:
        return 1.0 / self.vocab_size

    def model_kwargs(self) -> dict:
        return {"vocab_size": COPY_OFFSET + self.vocab_size, "num_outputs": self.vocab_size}
