"""The Mogrifier LSTM (Melis, Kočiský & Blunsom 2020): before each LSTM step, the input and the previous output
gate each other in turn for r rounds,

    x^i = 2σ(Q^i h^(i-1)) × x^(i-2)      for odd i ≤ r
    h^i = 2σ(R^i x^(i-1)) × h^(i-2)      for even i ≤ r

starting from x^(-1) = x(n) and h^0 = h(n-1); the LSTM step of ``rnnlab.cells.lstm`` then reads the last x and h
of the rounds. With r = 0 it is that LSTM. The factor 2 makes a gate at σ(0) the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, State
from rnnlab.cells.lstm import LSTMCell


@CELLS.register("mogrifier")
class MogrifierLSTMCell(LSTMCell):
    """Mogrifier LSTM cell.

    Round i's matrix is ``Q^i`` ``(I, H)`` for odd i (it scales x) and ``R^i`` ``(H, I)`` for even i (it scales h):
    ``rounds_weights[i - 1]``, or with ``rank`` k (the paper's low-rank variant) the product of
    ``rounds_weights[i - 1]`` ``(out, k)`` and ``rounds_factors[i - 1]`` ``(k, in)``. The rounds have no bias, as
    in the paper's equations. The rounds run inside the step, so no whole-sequence kernel computes this cell: the
    engine runs its step loop.

    Args:
        rounds: r, the number of rounds; the paper tuned it in 1–6 and found 4–6 best on PTB.
        rank: k for low-rank round matrices; None for full matrices.
        (the rest as ``LSTMCell``)
    """

    tunable = {"rounds": {"int": [1, 6]}}  # the paper's range

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, gate: str = "sigmoid",
                 input_bias: float = 0.0, rounds: int = 5, rank: int | None = None):
        super().__init__(input_size, hidden_size, forget_bias, gate, input_bias)
        if rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {rounds}")
        if rank is not None and rank < 1:
            raise ValueError(f"rank must be >= 1 or None (full matrices), got {rank}")
        self.rounds, self.rank = rounds, rank
        shapes = [(input_size, hidden_size) if i % 2 == 1 else (hidden_size, input_size)  # (out, in)
                  for i in range(1, rounds + 1)]
        if rank is None:
            self.rounds_weights = nn.ParameterList(nn.Parameter(torch.empty(*shape)) for shape in shapes)
            self.rounds_factors = nn.ParameterList()
        else:
            self.rounds_weights = nn.ParameterList(nn.Parameter(torch.empty(out, rank)) for out, _ in shapes)
            self.rounds_factors = nn.ParameterList(nn.Parameter(torch.empty(rank, inp)) for _, inp in shapes)
        self.reset_parameters()

    def round_matrix(self, index: int) -> Tensor:
        """The matrix of round ``index + 1``, ``(out, in)``."""
        if self.rank is None:
            return self.rounds_weights[index]
        return self.rounds_weights[index] @ self.rounds_factors[index]

    def mogrify(self, x_t: Tensor, h_prev: Tensor) -> tuple[Tensor, Tensor]:
        """The rounds: ``(x, h)`` after each has scaled the other, ``(B, I)`` and ``(B, H)``."""
        for index in range(self.rounds):
            if index % 2 == 0:  # odd round i = index + 1: h gates x
                x_t = 2 * torch.sigmoid(F.linear(h_prev, self.round_matrix(index))) * x_t
            else:
                h_prev = 2 * torch.sigmoid(F.linear(x_t, self.round_matrix(index))) * h_prev
        return x_t, h_prev

    def gate_values(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        h_prev, c_prev = state
        x_t, h_prev = self.mogrify(x_t, h_prev)
        return super().gate_values(x_t, (h_prev, c_prev))

    def fused_kernel(self) -> tuple[str, list[Tensor]] | None:
        return None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rounds={self.rounds}, rank={self.rank}"
