"""The open registry of whole-sequence kernels: what a cell may name in ``RecurrentCell.fused_kernel()``.

Two kinds, told apart by how the encoder runs them:

- ``LibraryKernel``: a PyTorch stack kernel (``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh``) that runs a
  whole multi-layer, bidirectional stack in one call over a packed batch (``rnnlab.kernels.library``); its
  parameters are ``[w_ih, w_hh, b_ih, b_hh]`` per layer and direction in PyTorch's layout.
- ``SequenceKernel``: one layer and direction over a batch sorted by length, time-major
  (``rnnlab.kernels.batch.SortedBatch``), as the project's own kernels are written.

A new kernel is one module in ``rnnlab/kernels/`` that calls ``register_kernel`` at import; the package imports
every module in it, so nothing else is edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import Tensor

from rnnlab.kernels.batch import SortedBatch

State = tuple[Tensor, ...]


@dataclass(frozen=True)
class LibraryKernel:
    """A PyTorch kernel over a whole stack of layers.

    Args:
        run: ``torch.lstm``-style function, called as ``run(x, hx, params, has_biases, num_layers, dropout,
            train, bidirectional, batch_first)`` or, packed, ``run(data, batch_sizes, hx, params, ...)``.
        num_states: state tensors it carries (2 for ``(h, c)``, 1 for ``h``).
    """

    run: Callable
    num_states: int


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

KERNELS: dict[str, Kernel] = {
    "lstm": LibraryKernel(torch.lstm, num_states=2),
    "gru": LibraryKernel(torch.gru, num_states=1),
    "rnn_tanh": LibraryKernel(torch.rnn_tanh, num_states=1),
    "rnn_relu": LibraryKernel(torch.rnn_relu, num_states=1),
}


def register_kernel(name: str, kernel: Kernel) -> None:
    """Adds a kernel under ``name``; a name is registered once."""
    if name in KERNELS:
        raise ValueError(f"a kernel named {name!r} is already registered")
    KERNELS[name] = kernel


def get_kernel(name: str, num_states: int) -> Kernel:
    """The kernel registered as ``name``, checked against the state tensors of the cell that asks for it."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; registered: {sorted(KERNELS)}")
    kernel = KERNELS[name]
    if kernel.num_states != num_states:
        raise ValueError(f"kernel {name!r} carries {kernel.num_states} state tensors, the cell {num_states}")
    return kernel
