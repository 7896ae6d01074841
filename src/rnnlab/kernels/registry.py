"""The open registry of whole-sequence kernels: what a cell may name in ``RecurrentCell.fused_kernel()``.

Two kinds, told apart by how the encoder runs them:

- ``LibraryKernel``: a PyTorch stack kernel (``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh``) that runs a
  whole multi-layer, bidirectional stack in one call over a packed batch, or one layer and direction over the
  padded batch (``rnnlab.kernels.library``); its parameters are ``[w_ih, w_hh, b_ih, b_hh]`` per layer and
  direction in PyTorch's layout.
- ``SequenceKernel``: one layer and direction over a batch sorted by length, time-major
  (``rnnlab.kernels.batch.SortedBatch``), as the project's own kernels are written.

A kernel registers itself in ``KERNELS`` where it is defined (``KERNELS.register("name")(SequenceKernel(...))``),
a ``rnnlab.registry.Registry`` that imports every module of this package before its first look-up: a new kernel is
one module in ``rnnlab/kernels/``, and nothing else is edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import Tensor

from rnnlab.kernels.batch import SortedBatch
from rnnlab.registry import Registry

State = tuple[Tensor, ...]


@dataclass(frozen=True)
class LibraryKernel:
    """A PyTorch kernel over a whole stack of layers.

    Args:
        run: ``torch.lstm``-style function, called as ``run(x, hx, params, has_biases, num_layers, dropout,
            train, bidirectional, batch_first)`` or, packed, ``run(data, batch_sizes, hx, params, ...)``.
        num_states: state tensors it carries (2 for ``(h, c)``, 1 for ``h``).
        memory: for a kernel with a state beside ``h``, ``memory(params, x, outputs, state, lengths)``: that state
            after each sentence's last token, ``(B, H)``, recomputed from one layer's inputs ``x`` ``(B, T, I)``
            and outputs ``(B, T, H)`` in reading order. Run on the padded batch, the kernel returns its states
            after the batch's last step only; every ``h`` is among its outputs, the memory is not.
        cpu: a ``SequenceKernel`` of the same parameters that the engine runs instead on CPUs, where it measured
            faster (``rnnlab.encoders.engine.kernel_on``).
    """

    run: Callable
    num_states: int
    memory: Callable[[list[Tensor], Tensor, Tensor, State, Tensor], Tensor] | None = None
    cpu: str | None = None


@dataclass(frozen=True)
class SequenceKernel:
    """A kernel over one layer and direction of a sorted, time-major batch.

    Args:
        run: ``run(params, x, batch, state, reverse) -> (outputs, state)`` with ``x`` ``(T, B, I)`` sorted as
            ``batch``, ``state`` a tuple of ``(B, H)`` in the same order, and ``outputs`` ``(T, B, H)`` zero at
            padding.
        num_states: state tensors it carries.
    """

    run: Callable[[list[Tensor], Tensor, SortedBatch, State, bool], tuple[Tensor, State]]
    num_states: int


Kernel = Union[LibraryKernel, SequenceKernel]


def lstm_memory(params: list[Tensor], x: Tensor, outputs: Tensor, state: State, lengths: Tensor) -> Tensor:
    """``c`` after each sentence's last token, from ``torch.lstm``'s inputs and outputs on a padded batch.

    With every ``h(t-1)`` known, all gates come from one product per weight matrix, and only
    ``c(t) = f(t) c(t-1) + i(t) g(t)`` is left to run step by step: elementwise, up to the longest sentence.

    Args:
        params: ``[w_ih, w_hh, b_ih, b_hh]`` of the layer, rows input, forget, candidate, output.
        x: ``(B, T, I)`` the layer's inputs in reading order.
        outputs: ``(B, T, H)`` its outputs ``h(t)``.
        state: initial ``(h0, c0)``, each ``(B, H)``.
        lengths: ``(B,)`` real lengths.
    """
    w_ih, w_hh, b_ih, b_hh = params
    h_prev = torch.cat([state[0].unsqueeze(1), outputs[:, :-1]], dim=1)  # (B, T, H)
    z = torch.addmm(b_ih + b_hh, x.reshape(-1, x.shape[2]), w_ih.t()).view(*x.shape[:2], -1)  # (B, T, 4H)
    z = z + h_prev @ w_hh.t()
    i, f, g, _ = z.chunk(4, dim=-1)
    keep, write = torch.sigmoid(f), torch.sigmoid(i) * torch.tanh(g)  # each (B, T, H)
    c = state[1]
    running = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    for t in range(int(lengths.max())):
        c = torch.where(t < running, keep[:, t] * c + write[:, t], c)
    return c


KERNELS: Registry[Kernel] = Registry("kernel", "RecurrentCell.fused_kernel()", package="rnnlab.kernels")


def get_kernel(name: str, num_states: int) -> Kernel:
    """The kernel registered as ``name``, checked against the state tensors of the cell that asks for it.

    Raises:
        ValueError: no kernel is registered as ``name`` (``UnknownName``, listing the names), or it carries
            another number of state tensors.
    """
    kernel = KERNELS[name]
    if kernel.num_states != num_states:
        raise ValueError(f"kernel {name!r} carries {kernel.num_states} state tensors, the cell {num_states}")
    return kernel
