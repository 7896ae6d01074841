"""PyTorch's stack kernels (``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh``) over a padded batch, two ways.

- packed (``run_library_kernel``): the whole stack in one call on a ``PackedSequence``, padding skipped. cuDNN's
  packed kernels are fast; on CPUs PyTorch runs packed batches step by step in its generic implementation.
- padded (``run_padded_layer``): one layer and direction per call on the padded batch itself, which oneDNN runs
  as one primitive. Reading left to right, padding follows each sentence's last token, so it changes no real
  output; right to left, each sentence is first reversed within its own length. Outputs at padding are zeroed,
  and ``h`` after each sentence's last token is read among the outputs; a state beside ``h`` (the LSTM's ``c``)
  is not among them, and is recomputed on request (``LibraryKernel.memory``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab.kernels.registry import KERNELS, LibraryKernel, State, lstm_memory

KERNELS.register("lstm")(LibraryKernel(torch.lstm, num_states=2, memory=lstm_memory))
KERNELS.register("gru")(LibraryKernel(torch.gru, num_states=1, cpu="gru_sequence"))  # rnnlab.kernels.gru
KERNELS.register("rnn_tanh")(LibraryKernel(torch.rnn_tanh, num_states=1))
KERNELS.register("rnn_relu")(LibraryKernel(torch.rnn_relu, num_states=1))


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverses each sequence within its own length; padding stays where it is.

    Args:
        x: ``(B, T, D)`` right-padded batch.
        lengths: ``(B,)`` real lengths.
    """
    steps = torch.arange(x.shape[1], device=x.device)  # (T,)
    index = lengths.to(x.device).unsqueeze(1) - 1 - steps  # (B, T)
    index = torch.where(index >= 0, index, steps)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def run_library_kernel(name: str, params: list[Tensor], x: Tensor, lengths: Tensor, states: list[State],
                       num_layers: int = 1, bidirectional: bool = False, reverse: bool = False,
                       dropout: float = 0.0, train: bool = False) -> tuple[Tensor, list[State]]:
    """Runs a stack of layers in one call of a ``LibraryKernel``, packed if lengths vary.

    Args:
        name: a registered ``LibraryKernel``.
        params: ``[w_ih, w_hh, b_ih, b_hh]`` of each layer and direction, layer-major, forward first.
        x: ``(B, T, I)`` right-padded inputs.
        lengths: ``(B,)`` real lengths, all positive.
        states: initial state of each layer and direction, in the order of ``params``.
        num_layers: depth of the stack.
        bidirectional: both directions, the reverse one reading each sentence from its last token.
        reverse: a unidirectional stack reading right to left.
        dropout: on the outputs of every layer but the last, while ``train``.
        train: training mode.

    Returns:
        ``(outputs, final_states)``: ``(B, T, D*H)`` zero at padding, and the final state of each layer and
        direction in the order of ``params``.
    """
    kernel = KERNELS[name]
    assert isinstance(kernel, LibraryKernel), name
    total_length = x.shape[1]
    if reverse:
        x = reverse_padded(x, lengths)
    hx = tuple(torch.stack(s) for s in zip(*states))  # each (L*D, B, H)
    one_state = kernel.num_states == 1  # torch.gru / torch.rnn_* take h alone, torch.lstm a tuple (h, c)
    if bool((lengths == total_length).all()):  # no padding: skip packing
        out, *final = kernel.run(x, hx[0] if one_state else hx, params, True, num_layers, dropout, train,
                                 bidirectional, True)
    else:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        hx = tuple(s.index_select(1, order) for s in hx)
        data, *final = kernel.run(packed.data, packed.batch_sizes, hx[0] if one_state else hx, params, True,
                                  num_layers, dropout, train, bidirectional)
        out, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, order, unorder),
                                     batch_first=True, total_length=total_length)
        final = [s.index_select(1, unorder) for s in final]
    if reverse:
        out = reverse_padded(out, lengths)
    return out, list(zip(*final))


def run_padded_layer(name: str, params: list[Tensor], x: Tensor, lengths: Tensor, state: State,
                     reverse: bool = False) -> tuple[Tensor, Tensor, Callable[[], State]]:
    """Runs one layer and direction of a ``LibraryKernel`` on the padded batch.

    Args:
        name: a registered ``LibraryKernel``.
        params: ``[w_ih, w_hh, b_ih, b_hh]`` of the layer.
        x: ``(B, T, I)`` right-padded inputs.
        lengths: ``(B,)`` real lengths, zero allowed.
        state: initial state, a tuple of ``(B, H)``.
        reverse: read each sentence from its last token to its first.

    Returns:
        ``(outputs, h_n, rest)``: ``(B, T, H)`` zero at padding, ``(B, H)`` ``h`` after each sentence's last token
        in reading order, and a function returning the final state's other tensors (computed when called).
    """
    kernel = KERNELS[name]
    assert isinstance(kernel, LibraryKernel), name
    steps = x.shape[1]
    if reverse:
        x = reverse_padded(x, lengths)
    hx = tuple(s.unsqueeze(0) for s in state)  # each (1, B, H)
    out, *_ = kernel.run(x, hx[0] if kernel.num_states == 1 else hx, params, True, 1, 0.0, False, False, True)
    lengths = lengths.to(x.device)
    out = out * (torch.arange(steps, device=x.device) < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, H)
    last = out[torch.arange(len(lengths), device=x.device), (lengths - 1).clamp(min=0)]  # (B, H)
    h_n = torch.where((lengths > 0).unsqueeze(1), last, state[0])  # an empty sentence keeps its state
    reading_order = out
    if reverse:
        out = reverse_padded(out, lengths)
    if kernel.memory is None:
        return out, h_n, lambda: ()

    def memory() -> State:
        with torch.autocast(x.device.type, enabled=False):  # read later, perhaps under autocast: keep our precision
            return (kernel.memory(params, x, reading_order, state, lengths),)

    return out, h_n, memory
