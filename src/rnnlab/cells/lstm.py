"""The LSTM cell of the lecture (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    f(n) = σ(U1 [x(n); h(n-1)] + b1)        forget gate
    i(n) = σ(U2 [x(n); h(n-1)] + b2)        input gate
    c(n) = f(n) × c(n-1) + i(n) × tanh(U3 [x(n); h(n-1)] + b3)
    o(n) = σ(U4 [x(n); h(n-1)] + b4)        output gate
    h(n) = o(n) × tanh(c(n))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, GatedCell, State


@CELLS.register("lstm")
class LSTMCell(GatedCell):
    """LSTM cell; the same function as ``torch.nn.LSTM``.

    The four ``U`` matrices are stored stacked in PyTorch's row order, input, forget, candidate, output:
    ``weight_ih`` ``(4H, I)``, ``weight_hh`` ``(4H, H)``, ``bias`` ``(4H,)`` (lecture: U2, U1, U3, U4).

    Args:
        input_bias: initial input-gate bias. The default 0 opens the gate halfway (σ(0) = 0.5), so every input
            writes into a fresh memory; a negative value starts it nearly closed, as coupling does for the CIFG
            (i = 1 − f) and chrono initialisation does with b_i = −b_f (Tallec & Ollivier 2018).
    """

    recurrent_weights = ("weight_hh",)

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, gate: str = "sigmoid",
                 input_bias: float = 0.0):
        super().__init__(input_size, hidden_size, forget_bias, gate)
        self.input_bias = input_bias
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights uniform in ±1/sqrt(H); biases zero except the forget gate's (``forget_bias``) and the input
        gate's (``input_bias``)."""
        self.init_with_forget_bias(block=1)
        with torch.no_grad():
            self.bias[:self.hidden_size].fill_(self.input_bias)

    def gate_values(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """One step of the equations above: the gates and the new memory (``forward`` adds h = o × tanh(c)).

        Returns:
            ``forget``, ``input``, ``output`` and ``memory`` (the new c), each ``(B, H)``.
        """
        h_prev, c_prev = state
        z = F.linear(x_t, self.weight_ih, self.bias) + F.linear(h_prev, self.weight_hh)  # (B, 4H)
        z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
        f, i = self.gate(z_f), self.gate(z_i)
        return {"forget": f, "input": i, "output": self.gate(z_o), "memory": f * c_prev + i * torch.tanh(z_g)}

    def fused_kernel(self) -> tuple[str, list[Tensor]] | None:
        if self.gate_name != "sigmoid":
            return None
        return "lstm", [self.weight_ih, self.weight_hh, self.bias, torch.zeros_like(self.bias)]
