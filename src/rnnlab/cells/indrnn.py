"""IndRNN, the independently recurrent neural network (Li et al. 2018).

    h(n) = ReLU(W x(n) + u × h(n−1) + b)        u a vector: each unit reads only its own past

With a diagonal recurrence the gradient that reaches ``h_k(n)`` from step ``T`` is the one at ``T`` times
``u_k^(T−n)`` and the ReLU's derivatives (0 or 1), so each unit's memory and gradient are set by its own ``u_k``
alone. The paper (its section on backpropagation through an IndRNN) keeps that factor between ``ε`` and ``γ``
over ``T`` steps by constraining ``|u_k|`` to ``[ε^(1/T), γ^(1/T)]``; its experiments with ReLU bound
``|u_k| ≤ 2^(1/T)``, a gradient that grows at most twofold over the sequence. The lower end is a matter of
initialisation here: a unit with ``u_k ≥ 2^(−10/T)`` keeps at least ``2^−10`` of its value over ``T`` steps
while it stays active.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, RecurrentCell, State


@CELLS.register("indrnn")
class IndRNNCell(RecurrentCell):
    """IndRNN cell with a ReLU and bounded recurrent weights; runs the per-step loop (no fused kernel).

    ``weight_ih`` ``(H, I)``, ``weight_hh`` ``(H,)`` (the vector ``u``), ``bias`` ``(H,)``.

    Args:
        input_size: size of ``x_t``.
        hidden_size: size of ``h_t``.
        max_recurrent_weight: the bound on ``|u|``, enforced in every step by clamping, so the gradient is
            always that of the function computed; a weight the optimiser pushes beyond it acts as the bound and
            receives no gradient from then on (only weight decay moves it back). 1.0 (default) is the paper's
            ``2^(1/T)`` as the sequence grows (1.007 at T = 100) and holds at any length: no unit grows through
            its recurrence alone. ``2 ** (1 / T)`` follows the paper for sequences of ``T`` steps; ``None``
            leaves ``u`` free.
        recurrent_init: ``u`` starts uniform in ``[recurrent_init, 1]`` (default 0: ``[0, 1]``);
            ``2 ** (-10 / T)`` starts every unit with a memory of ``T`` steps.
    """

    recurrent_weights = ("weight_hh",)

    def __init__(self, input_size: int, hidden_size: int, max_recurrent_weight: float | None = 1.0,
                 recurrent_init: float = 0.0):
        super().__init__(input_size, hidden_size)
        if max_recurrent_weight is not None and max_recurrent_weight <= 0:
            raise ValueError(f"max_recurrent_weight must be positive or None, got {max_recurrent_weight}")
        if not 0.0 <= recurrent_init <= 1.0:
            raise ValueError(f"recurrent_init must lie in [0, 1], got {recurrent_init}")
        self.max_recurrent_weight = max_recurrent_weight
        self.recurrent_init = recurrent_init
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Input weights uniform in ±1/sqrt(H), bias zero, ``u`` uniform in ``[recurrent_init, 1]``."""
        self.uniform_init()
        nn.init.zeros_(self.bias)
        nn.init.uniform_(self.weight_hh, self.recurrent_init, 1.0)

    def recurrent_weight(self) -> Tensor:
        """``u`` as the step uses it, ``(H,)``: clamped to ``±max_recurrent_weight``."""
        if self.max_recurrent_weight is None:
            return self.weight_hh
        return self.weight_hh.clamp(-self.max_recurrent_weight, self.max_recurrent_weight)

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h = torch.relu(F.linear(x_t, self.weight_ih, self.bias) + self.recurrent_weight() * state[0])  # (B, H)
        return h, (h,)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, max_recurrent_weight={self.max_recurrent_weight}, "
                f"recurrent_init={self.recurrent_init}")
