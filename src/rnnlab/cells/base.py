"""The interface every recurrent cell implements: one time step, ``forward(x_t, state) -> (h_t, state)``."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from rnnlab.cells.gates import get_gate_function
from rnnlab.registry import Registry

State = tuple[Tensor, ...]

# Every module of this package is imported at the first look-up, so a new cell is one file that registers its
# class; its YAML in conf/model/cell/ is Hydra's option for it (rnnlab.cells.discovery checks the two agree).
CELLS: Registry[type[RecurrentCell]] = Registry("cell", "model/cell", package="rnnlab.cells")


class RecurrentCell(nn.Module, ABC):
    """One time step of a recurrent network.

    A cell knows nothing of sequences, padding or direction: the recurrent layer (``rnnlab.encoders.layer``)
    runs the time loop. To add a cell variant, subclass this in one file of this package, register it with
    ``@CELLS.register("<name>")``, and point ``conf/model/cell/<name>.yaml`` at it.

    A cell declares itself to the rest of the framework: ``state_names`` names its state tensors (``h`` first),
    ``gate_names`` the gates ``gates()`` returns (for the memory heatmaps), ``recurrent_weights`` its
    hidden-to-hidden parameters (``rnnlab.dropout.drop_recurrent_weights``), and ``fused_kernel()`` may name a
    whole-sequence kernel of ``rnnlab.kernels`` that computes exactly this cell. ``tunable`` names the options
    of its YAML that a tuned comparison (``rnnlab.cli.tuned``) searches besides the shared space, each with its
    range in the grammar of ``rnnlab.run.tuning``'s module docstring, e.g. ``{"rounds": {"int": [1, 6]}}``.

    Args:
        input_size: size of ``x_t``.
        hidden_size: size of ``h_t`` and of every state tensor.
    """

    state_names: tuple[str, ...] = ("h",)
    gate_names: tuple[str, ...] = ()
    recurrent_weights: tuple[str, ...] = ()  # hidden-to-hidden parameters, which model.weight_drop drops
    tunable: dict[str, dict] = {}

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size

    @property
    def num_states(self) -> int:
        """How many tensors the state holds."""
        return len(self.state_names)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        """Zeros for every state tensor, each ``(B, H)``."""
        return tuple(torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
                     for _ in range(self.num_states))

    @property
    def bridged_states(self) -> int:
        """How many leading state tensors a linear bridge computes (``rnnlab.models.decoding.Bridge``)."""
        return self.num_states

    def complete_state(self, bridged: State) -> State:
        """A whole state from the ``bridged_states`` leading tensors a linear bridge computed, each ``(B, H)`` in
        (−1, 1); cells whose other states obey constraints complete them here."""
        return bridged

    def uniform_init(self) -> None:
        """Every parameter uniform in ``±1/sqrt(H)``, PyTorch's RNN default; biases are then set by subclasses."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def init_with_forget_bias(self, block: int) -> None:
        """``uniform_init``, then ``self.bias`` zero except its ``block``-th ``H`` rows (the forget gate's), set to
        ``self.forget_bias``."""
        self.uniform_init()
        with torch.no_grad():
            self.bias.zero_()
            self.bias[block * self.hidden_size:(block + 1) * self.hidden_size].fill_(self.forget_bias)

    def fused_kernel(self) -> tuple[str, list[Tensor]] | None:
        """Parameters mapped onto a whole-sequence kernel that computes exactly this cell, or ``None``.

        Returns:
            ``(name, params)``: a kernel registered in ``rnnlab.kernels.KERNELS`` carrying ``num_states`` state
            tensors, with the parameters that kernel documents (``[w_ih, w_hh, b_ih, b_hh]`` in PyTorch's layout
            for ``lstm``, ``gru``, ``rnn_tanh``); built from this cell's parameters on each call so gradients
            flow back to them.
        """
        return None

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """One step's gates, named as ``gate_names``, each ``(B, H)``; none for a cell without gates."""
        return {}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"

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

    state_names = ("h", "c")
    gate_names = ("forget", "input", "output")

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

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        values = self.gate_values(x_t, state)
        return {name: values[name] for name in self.gate_names}

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        gates = self.gate_values(x_t, state)
        h = gates["output"] * torch.tanh(gates["memory"])  # h(n) = o(n) × tanh(c(n))
        return h, (h, gates["memory"])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}, gate={self.gate_name!r}"
