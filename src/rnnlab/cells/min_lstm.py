"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"), in the paper's log-space variant.

    f(n) = σ(W_f x(n) + b_f)                         forget gate, from the input alone
    i(n) = σ(W_i x(n) + b_i)                         input gate, from the input alone
    f'(n) = f(n) / (f(n) + i(n)),  i'(n) = i(n) / (f(n) + i(n))      normalised: f' + i' = 1
    h~(n) = g(W_h x(n) + b_h)                         candidate; g(v) = v + 0.5 (v ≥ 0), σ(v) (v < 0)
    h(n) = f'(n) × h(n−1) + i'(n) × h~(n)

The paper's minLSTM (its section "minLSTM") drops the LSTM's output gate, the memory ``c`` beside ``h`` and every
dependency of gates and candidate on ``h(n−1)``, and normalises the two gates so that the scale of ``h`` does not
grow with the sequence length. As for ``rnnlab.cells.min_gru``, this is the log-space version of the paper's
appendix (the candidate through the positive ``g``), and the recurrence ``h(n) = a(n) × h(n−1) + b(n)`` with
``a = f'``, ``b = i' × h~`` runs as the log-space scan of ``rnnlab.kernels.scan``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, RecurrentCell, State
from rnnlab.cells.min_gru import g


@CELLS.register("min_lstm")
class MinLSTMCell(RecurrentCell):
    """minLSTM cell; its fused kernel is the log-space parallel scan ``min_lstm``.

    Weights stacked, rows forget gate, input gate, candidate: ``weight_ih`` ``(3H, I)``, ``bias`` ``(3H,)``.

    Args:
        input_size: size of ``x_t``.
        hidden_size: size of ``h_t``.
        forget_bias: initial bias of the forget gate (the input gate's starts at 0). Through the normalisation
            it sets ``f' = σ(b_f) / (σ(b_f) + 0.5)`` at zero input at the start: 0.59 for 1.0, 0.66 for 3.0,
            at most 2/3.
    """

    gate_names = ("forget", "input")

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0):
        super().__init__(input_size, hidden_size)
        self.forget_bias = forget_bias
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.bias = nn.Parameter(torch.empty(3 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights uniform in ±1/sqrt(H); biases zero except the forget gate's, set to ``forget_bias``."""
        self.init_with_forget_bias(block=0)

    def _gates_and_candidate(self, x_t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(f', i', h~)`` of one step, each ``(B, H)``."""
        k_f, k_i, v = F.linear(x_t, self.weight_ih, self.bias).chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return f / (f + i), i / (f + i), g(v)

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """The normalised gates ``f'`` and ``i'``, the weights the step gives ``h(n−1)`` and ``h~``."""
        f, i, _ = self._gates_and_candidate(x_t)
        return {"forget": f, "input": i}

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        f, i, candidate = self._gates_and_candidate(x_t)
        h = f * state[0] + i * candidate  # (B, H) h(n) = f' × h(n−1) + i' × h~
        return h, (h,)

    def fused_kernel(self) -> tuple[str, list[Tensor]]:
        return "min_lstm", [self.weight_ih, self.bias]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}"
