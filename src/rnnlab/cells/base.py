"""The interface every recurrent cell implements: one time step, ``forward(x_t, state) -> (h_t, state)``."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from rnnlab.cells.gates import get_gate_function

State = tuple[Tensor, ...]


class RecurrentCell(nn.Module, ABC):
    """One time step of a recurrent network.

    A cell knows nothing of sequences, padding or direction: the recurrent layer (``rnnlab.encoders.layer``)
    runs the time loop. To add a cell variant, subclass this in one file and point a YAML file in
    ``conf/model/cell/`` at it.

    Args:
        input_size: size of ``x_t``.
        hidden_size: size of ``h_t`` and of every state tensor.

    Subclasses set ``num_states`` (1 for ``(h,)``, 2 for ``(h, c)``) and may override ``fused_kernel`` to
    let the layer run a library kernel over whole sequences when the math is identical.
    """

    num_states: int = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        """Zeros for every state tensor, each ``(B, H)``."""
        return tuple(torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
                     for _ in range(self.num_states))

    def uniform_init(self) -> None:
        """Every parameter uniform in ``±1/sqrt(H)``, PyTorch's RNN default; biases are then set by subclasses."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def fused_kernel(self) -> tuple[str, list[Tensor]] | None:
        """Parameters mapped onto a whole-sequence kernel that computes exactly this cell, or ``None``.

        Returns:
            ``(mode, params)``: ``mode`` ``"lstm"`` or ``"rnn_tanh"`` with ``[w_ih, w_hh, b_ih, b_hh]`` in
            PyTorch's weight layout, or a key of ``rnnlab.encoders.layer.SEQUENCE_KERNELS`` with the
            parameters that kernel documents; built from this cell's parameters on each call so gradients
            flow back to them.
        """
        return None

    @abstractmethod
    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One step.

        Args:
            x_t: input at step t, ``(B, I)``.
            state: the previous state, a tuple of ``(B, H)`` tensors; ``state[0]`` is ``h(t-1)``.

        Returns:
            ``(h_t, new_state)`` with ``h_t`` ``(B, H)`` and ``new_state[0] is h_t``.
        """


class GatedCell(RecurrentCell):
    """Base of the LSTM family: a memory ``c`` beside ``h``, gates through a configurable gate function.

    Args:
        input_size: size of ``x_t``.
        hidden_size: size of ``h_t`` and ``c_t``.
        forget_bias: initial forget-gate bias; 1.0 keeps the memory open early in training
            (Gers et al. 2000; Jozefowicz et al. 2015).
        gate: gate function name, see ``rnnlab.cells.gates``; only ``sigmoid`` admits the fused kernels.
    """

    num_states = 2

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, gate: str = "sigmoid"):
        super().__init__(input_size, hidden_size)
        self.forget_bias = forget_bias
        self.gate_name = gate
        self.gate = get_gate_function(gate)

    @abstractmethod
    def gate_values(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """One step's gates and new memory.

        Args:
            x_t: input at step t, ``(B, I)``.
            state: ``(h(t-1), c(t-1))``, each ``(B, H)``.

        Returns:
            ``forget``, ``input``, ``output`` (the gates) and ``memory`` (the new c), each ``(B, H)``.
        """

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        gates = self.gate_values(x_t, state)
        h = gates["output"] * torch.tanh(gates["memory"])  # h(n) = o(n) × tanh(c(n))
        return h, (h, gates["memory"])

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, forget_bias={self.forget_bias}, "
                f"gate={self.gate_name!r}")
