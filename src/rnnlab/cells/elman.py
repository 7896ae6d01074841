"""The Elman ("multi-layer perceptron") cell: ``h(n) = tanh(U [x(n); h(n-1)] + b)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, RecurrentCell, State


@CELLS.register("elman")
class ElmanCell(RecurrentCell):
    """Plain tanh RNN cell, the same function as ``torch.nn.RNN(nonlinearity="tanh")``.

    ``U`` is stored as its two blocks, ``weight_ih`` ``(H, I)`` and ``weight_hh`` ``(H, H)``, with one bias.
    """

    recurrent_weights = ("weight_hh",)

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights uniform in ±1/sqrt(H), bias zero."""
        self.uniform_init()
        nn.init.zeros_(self.bias)

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        (h_prev,) = state
        h = torch.tanh(F.linear(x_t, self.weight_ih, self.bias) + F.linear(h_prev, self.weight_hh))  # (B, H)
        return h, (h,)

    def fused_kernel(self) -> tuple[str, list[Tensor]]:
        return "rnn_tanh", [self.weight_ih, self.weight_hh, self.bias, torch.zeros_like(self.bias)]
