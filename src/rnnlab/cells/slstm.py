"""sLSTM, the scalar-memory cell of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory").

Pre-activations read ``x(n)`` and ``h(n−1)``, ``k~(n) = W_k x(n) + R_k h(n−1) + b_k`` for each of z, i, f, o:

    z(n) = tanh(z~(n))                              cell input
    i(n) = exp(i~(n))                               exponential input gate
    f(n) = σ(f~(n))  or  exp(f~(n))                 forget gate (``forget_gate``)
    o(n) = σ(o~(n))                                 output gate
    c(n) = f(n) × c(n−1) + i(n) × z(n)              memory
    n(n) = f(n) × n(n−1) + i(n)                     normaliser
    h(n) = o(n) × c(n) / n(n)

``exp`` overflows, so the paper (section "sLSTM", its stabilisation) carries a stabiliser state ``m`` and
computes with rescaled gates that never exceed 1:

    m(n) = max(log f(n) + m(n−1), log i(n))
    i'(n) = exp(log i(n) − m(n)),   f'(n) = exp(log f(n) + m(n−1) − m(n))

Replacing ``i, f`` by ``i', f'`` scales ``c(n)`` and ``n(n)`` by the same ``exp(−m(n))``, so ``h = o × c / n`` is
unchanged: ``c`` and ``n`` here are the paper's divided by ``exp(m)``. One head: ``R`` is a full ``H x H``
matrix (the paper's block-diagonal ``R`` with a single block); the rest of the sLSTM block (normalisation,
up- and down-projections around the cell) is not part of the cell.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import CELLS, RecurrentCell, State

FORGET_GATES = ("exp", "sigmoid")


@CELLS.register("slstm")
class SLSTMCell(RecurrentCell):
    """sLSTM cell (single head), stabilised; runs the per-step loop (no fused kernel).

    Rows of ``weight_ih`` ``(4H, I)``, ``weight_hh`` ``(4H, H)`` (the paper's ``R``) and ``bias`` ``(4H,)`` are
    ordered input gate, forget gate, cell input, output gate, as in ``LSTMCell``. The state is ``(h, c, n, m)``.

    Args:
        input_size: size of ``x_t``.
        hidden_size: size of ``h_t`` and of each state tensor.
        forget_bias: initial bias of the forget gate: ``σ(b)`` at zero input, or ``log f`` for ``exp`` (the
            memory's weight against a new input's ``exp(0) = 1``).
        forget_gate: ``"sigmoid"`` (default; xLSTM's reference code computes it as ``log σ``) or ``"exp"``, the
            paper's other choice. With ``exp`` a positive forget pre-activation weights the memory ``e^(log f)``
            above each new input per step, so on a long stream (a stateful LM) new inputs stop counting.
    """

    recurrent_weights = ("weight_hh",)

    state_names = ("h", "c", "n", "m")
    gate_names = ("forget", "input", "output")

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, forget_gate: str = "sigmoid"):
        super().__init__(input_size, hidden_size)
        if forget_gate not in FORGET_GATES:
            raise ValueError(f"forget_gate must be one of {FORGET_GATES}, got {forget_gate!r}")
        self.forget_bias = forget_bias
        self.forget_gate = forget_gate
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights uniform in ±1/sqrt(H); biases zero except the forget gate's, set to ``forget_bias``."""
        self.init_with_forget_bias(block=1)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        """``h, c, n`` zero and ``m = −inf``, each ``(B, H)``.

        ``m`` is the largest log-weight in the sums ``c`` and ``n`` hold, and an empty memory holds none: with
        ``m(0) = −inf`` the first step gives ``m(1) = log i(1)``, ``f'(1) = 0`` and ``i'(1) = 1``, so
        ``n(1) = 1``. From then on one of ``f'``, ``i'`` is 1 at every step, hence ``n(n) ≥ 1``: the division
        is always defined. (A zero ``m(0)`` would give ``n(1) = i'(1)``, which underflows to 0 when
        ``log f(1) − log i(1)`` is large.) A caller's state needs ``n ≥ 0`` and ``c``, ``n`` of one memory.
        """
        h, c, n = (torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype) for _ in range(3))
        return h, c, n, torch.full((batch_size, self.hidden_size), -math.inf, device=device, dtype=dtype)

    @property
    def bridged_states(self) -> int:
        """A bridge sets ``h`` and ``c`` only: a computed ``n`` near 0 would blow ``h = o c / n`` up."""
        return 2

    def complete_state(self, bridged: State) -> State:
        """``(h, c)`` -> ``(h, c, n = 1, m = 0)``: a memory holding ``c`` at unit weight and stabiliser 0, as after one
        write with ``i' = 1``; ``n ≥ 1`` from then on, as ``initial_state`` explains."""
        h, c = bridged
        return h, c, torch.ones_like(c), torch.zeros_like(c)

    def _step(self, x_t: Tensor, state: State) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(f', i', o, z, m(n))`` of one step, each ``(B, H)``."""
        h_prev, _, _, m_prev = state
        pre = F.linear(x_t, self.weight_ih, self.bias) + F.linear(h_prev, self.weight_hh)  # (B, 4H)
        log_i, pre_f, pre_z, pre_o = pre.chunk(4, dim=-1)  # log i(n) = i~(n)
        log_f = pre_f if self.forget_gate == "exp" else F.logsigmoid(pre_f)
        m = torch.maximum(log_f + m_prev, log_i)  # m(n) = max(log f(n) + m(n−1), log i(n))
        forget = torch.exp(log_f + m_prev - m)  # f'(n) = exp(log f(n) + m(n−1) − m(n)), in [0, 1]
        write = torch.exp(log_i - m)  # i'(n) = exp(log i(n) − m(n)), in (0, 1]
        return forget, write, torch.sigmoid(pre_o), torch.tanh(pre_z), m

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """The stabilised gates ``f'``, ``i'`` (in [0, 1], the weights the step gives the memory and the new input)
        and ``o``."""
        forget, write, output, _, _ = self._step(x_t, state)
        return {"forget": forget, "input": write, "output": output}

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        forget, write, output, z, m = self._step(x_t, state)
        _, c_prev, n_prev, _ = state
        c = forget * c_prev + write * z  # (B, H) c(n) = f' × c(n−1) + i' × z(n)
        n = forget * n_prev + write  # (B, H) n(n) = f' × n(n−1) + i'
        h = output * c / n  # (B, H) h(n) = o(n) × c(n) / n(n)
        return h, (h, c, n, m)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}, forget_gate={self.forget_gate!r}"
