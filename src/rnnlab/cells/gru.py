"""The gated recurrent unit (Cho et al. 2014), in PyTorch's formulation (``torch.nn.GRU``).

    r(n) = σ(W_ir x(n) + b_ir + W_hr h(n-1) + b_hr)          reset gate
    z(n) = σ(W_iz x(n) + b_iz + W_hz h(n-1) + b_hz)          update gate
    g(n) = tanh(W_ig x(n) + b_ig + r(n) × (W_hg h(n-1) + b_hg))
    h(n) = (1 - z(n)) × g(n) + z(n) × h(n-1)

The reset gate scales the recurrent projection after its bias (``b_hg`` inside the product), as cuDNN does;
Cho et al. apply it to ``h(n-1)`` before the projection. No separate memory: ``h`` is the whole state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, RecurrentCell, State


@CELLS.register("gru")
class GRUCell(RecurrentCell):
    """GRU cell; the same function as ``torch.nn.GRU`` after copying its weights.

    Weights in PyTorch's layout, rows reset, update, candidate: ``weight_ih`` ``(3H, I)``, ``weight_hh``
    ``(3H, H)``, and two biases ``bias_ih``, ``bias_hh`` ``(3H,)`` (both are needed: ``b_hg`` sits inside the
    reset product).
    """

    recurrent_weights = ("weight_hh",)

    gate_names = ("reset", "update")

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size))
        self.uniform_init()  # PyTorch's default, biases included

    def _step(self, x_t: Tensor, h_prev: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(r, z, h)`` of one step, each ``(B, H)``."""
        x_r, x_z, x_g = F.linear(x_t, self.weight_ih, self.bias_ih).chunk(3, dim=-1)
        h_r, h_z, h_g = F.linear(h_prev, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        g = torch.tanh(x_g + r * h_g)
        return r, z, (1 - z) * g + z * h_prev

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        r, z, _ = self._step(x_t, state[0])
        return {"reset": r, "update": z}

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        _, _, h = self._step(x_t, state[0])
        return h, (h,)

    def fused_kernel(self) -> tuple[str, list[Tensor]]:
        return "gru", [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
