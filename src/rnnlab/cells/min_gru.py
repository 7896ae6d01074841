"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), in the paper's log-space variant.

    z(n) = σ(W_z x(n) + b_z)                         update gate, from the input alone
    h~(n) = g(W_h x(n) + b_h)                         candidate; g(v) = v + 0.5 (v ≥ 0), σ(v) (v < 0)
    h(n) = (1 − z(n)) × h(n−1) + z(n) × h~(n)

The paper's minGRU (its section "minGRU") drops the GRU's reset gate and every dependency of the gate and the
candidate on ``h(n−1)``, and the candidate's tanh. Its log-space version (the paper's appendix) passes the
candidate through ``g``, which is positive, so that ``log h~`` exists and the recurrence runs as a scan in log
space; this cell is that variant: the step below and the scan of ``rnnlab.kernels.scan`` compute the same function.
As neither ``z`` nor ``h~`` reads ``h(n−1)``, ``h(n) = a(n) × h(n−1) + b(n)`` with ``a = 1 − z`` and
``b = z × h~`` is a linear recurrence, known for every step before it runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, RecurrentCell, State


def g(v: Tensor) -> Tensor:
    """Feng et al.'s positive candidate activation: ``v + 0.5`` for ``v ≥ 0``, ``σ(v)`` below (both 0.5 at 0)."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


@CELLS.register("min_gru")
class MinGRUCell(RecurrentCell):
    """minGRU cell; its fused kernel is the log-space parallel scan ``min_gru``.

    Weights stacked, rows update gate then candidate: ``weight_ih`` ``(2H, I)``, ``bias`` ``(2H,)``. No recurrent
    weights: the state enters only through the gate's interpolation.
    """

    gate_names = ("update",)

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(2 * hidden_size, input_size))
        self.bias = nn.Parameter(torch.empty(2 * hidden_size))
        self.uniform_init()  # biases included, as GRUCell

    def _gate_and_candidate(self, x_t: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, h~)`` of one step, each ``(B, H)``."""
        k, v = F.linear(x_t, self.weight_ih, self.bias).chunk(2, dim=-1)
        return torch.sigmoid(k), g(v)

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        return {"update": self._gate_and_candidate(x_t)[0]}

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        z, candidate = self._gate_and_candidate(x_t)
        h = (1 - z) * state[0] + z * candidate  # (B, H) h(n) = (1 − z) × h(n−1) + z × h~
        return h, (h,)

    def fused_kernel(self) -> tuple[str, list[Tensor]]:
        return "min_gru", [self.weight_ih, self.bias]
