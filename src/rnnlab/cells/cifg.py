"""LSTM with coupled input and forget gates (CIFG): ``i(n) = 1 - f(n)``.

Each memory cell is either kept as it is or replaced by a new value. The input gate has no parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, GatedCell, State


@CELLS.register("cifg")
class CIFGCell(GatedCell):
    """Coupled-input-forget-gate LSTM cell.

    Parameters are stacked in row order forget, candidate, output: ``weight_ih`` ``(3H, I)``,
    ``weight_hh`` ``(3H, H)``, ``bias`` ``(3H,)``.

    Since σ(-z) = 1 - σ(z), the cell is exactly an LSTM whose input-gate weights are the negated forget-gate
    weights; ``fused_kernel`` assembles those on the fly so PyTorch's LSTM kernel can run it.
    """

    recurrent_weights = ("weight_hh",)

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, gate: str = "sigmoid"):
        super().__init__(input_size, hidden_size, forget_bias, gate)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(3 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights uniform in ±1/sqrt(H); biases zero except the forget gate's, set to ``forget_bias``."""
        self.init_with_forget_bias(block=0)

    def gate_values(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """One step of the equations above: the gates and the new memory (``forward`` adds h = o × tanh(c)).

        Returns:
            ``forget``, ``input`` (= 1 - forget), ``output`` and ``memory`` (the new c), each ``(B, H)``.
        """
        h_prev, c_prev = state
        z = F.linear(x_t, self.weight_ih, self.bias) + F.linear(h_prev, self.weight_hh)  # (B, 3H)
        z_f, z_g, z_o = z.chunk(3, dim=-1)
        f = self.gate(z_f)
        return {"forget": f, "input": 1.0 - f, "output": self.gate(z_o),
                "memory": f * c_prev + (1.0 - f) * torch.tanh(z_g)}

    def fused_kernel(self) -> tuple[str, list[Tensor]] | None:
        if self.gate_name != "sigmoid":
            return None

        def as_lstm(w: Tensor) -> Tensor:  # (3H, ...) rows f, g, o -> (4H, ...) rows i=-f, f, g, o
            w_f = w[:self.hidden_size]
            return torch.cat([-w_f, w], dim=0)

        return "lstm", [as_lstm(self.weight_ih), as_lstm(self.weight_hh), as_lstm(self.bias),
                        self.bias.new_zeros(4 * self.hidden_size)]
