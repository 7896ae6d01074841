"""Peephole LSTM: the gates also look at the memory (Gers & Schmidhuber 2000).

    f(n) = σ(U1 [x(n); h(n-1); c(n-1)] + b1)
    i(n) = σ(U2 [x(n); h(n-1); c(n-1)] + b2)
    c(n) = f(n) × c(n-1) + i(n) × tanh(U3 [x(n); h(n-1)] + b3)
    o(n) = σ(U4 [x(n); h(n-1); c(n)] + b4)      the output gate reads the new memory
    h(n) = o(n) × tanh(c(n))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, GatedCell, State


@CELLS.register("peephole")
class PeepholeLSTMCell(GatedCell):
    """Peephole LSTM cell.

    Rows of ``weight_ih``/``weight_hh``/``bias`` are ordered input, forget, candidate, output as in
    ``LSTMCell``. The memory part of U is ``weight_ci`` (input/forget gates, reading c(n-1)) and
    ``weight_co`` (output gate, reading c(n)).

    Args:
        peephole: ``"diagonal"`` (default; Gers & Schmidhuber 2000: one weight per memory cell,
            ``weight_ci`` ``(2H,)``, ``weight_co`` ``(H,)``) or ``"full"`` (the lecture's slide ``U [x; h; c]``:
            a full matrix, ``weight_ci`` ``(2H, H)``, ``weight_co`` ``(H, H)``). Diagonal is the default because
            the full matrix adds 3H² weights per layer and direction and ~1.8x an LSTM's training time at
            H=650 (docs/benchmarks.md), which makes cell comparisons uneven.
        peephole_init: initial peephole weights; 0 starts as an exact LSTM.
    """

    recurrent_weights = ("weight_hh",)

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, gate: str = "sigmoid",
                 peephole: str = "diagonal", peephole_init: float = 0.0):
        super().__init__(input_size, hidden_size, forget_bias, gate)
        if peephole not in ("full", "diagonal"):
            raise ValueError(f"peephole must be 'full' or 'diagonal', got {peephole!r}")
        self.peephole = peephole
        self.peephole_init = peephole_init
        h = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * h, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * h, h))
        self.bias = nn.Parameter(torch.empty(4 * h))
        self.weight_ci = nn.Parameter(torch.empty(2 * h, h) if peephole == "full" else torch.empty(2 * h))
        self.weight_co = nn.Parameter(torch.empty(h, h) if peephole == "full" else torch.empty(h))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As ``LSTMCell``, then peephole weights set to ``peephole_init``."""
        self.init_with_forget_bias(block=1)
        nn.init.constant_(self.weight_ci, self.peephole_init)
        nn.init.constant_(self.weight_co, self.peephole_init)

    def _peek(self, c: Tensor, weight: Tensor) -> Tensor:
        """The memory's contribution to gate pre-activations: ``(B, H) -> (B, rows)``."""
        if self.peephole == "full":
            return F.linear(c, weight)
        return c.repeat(1, weight.shape[0] // self.hidden_size) * weight

    def gate_values(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """One step of the equations above: the gates and the new memory (``forward`` adds h = o × tanh(c)).

        Returns:
            ``forget``, ``input``, ``output`` and ``memory`` (the new c), each ``(B, H)``.
        """
        h_prev, c_prev = state
        z = F.linear(x_t, self.weight_ih, self.bias) + F.linear(h_prev, self.weight_hh)  # (B, 4H)
        z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
        peek_i, peek_f = self._peek(c_prev, self.weight_ci).chunk(2, dim=-1)
        f, i = self.gate(z_f + peek_f), self.gate(z_i + peek_i)
        c = f * c_prev + i * torch.tanh(z_g)  # (B, H)
        return {"forget": f, "input": i, "output": self.gate(z_o + self._peek(c, self.weight_co)), "memory": c}

    def fused_kernel(self) -> tuple[str, list[Tensor]] | None:
        """``rnnlab.kernels.peephole``: this math over a whole sequence with a hand-written backward."""
        if self.gate_name != "sigmoid":
            return None
        return "peephole_lstm", [self.weight_ih, self.weight_hh, self.bias, self.weight_ci, self.weight_co]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", peephole={self.peephole!r}"
