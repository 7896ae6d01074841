"""The time loop: one cell run over a padded batch, in either direction, with a mask."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab.cells.base import RecurrentCell, State
from rnnlab.encoders.batch import SortedBatch
from rnnlab.kernels.peephole import peephole_lstm_sequence

IMPLEMENTATIONS = ("auto", "reference")
LIBRARY_KERNELS = {"lstm": torch.lstm, "rnn_tanh": torch.rnn_tanh}


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


def run_library_kernel(mode: str, params: list[Tensor], x: Tensor, lengths: Tensor, states: list[State],
                       num_layers: int = 1, bidirectional: bool = False, reverse: bool = False,
                       dropout: float = 0.0, train: bool = False) -> tuple[Tensor, list[State]]:
    """Runs a stack of layers in one call of ``torch.lstm`` / ``torch.rnn_tanh``, packed if lengths vary.

    Args:
        mode: a key of ``LIBRARY_KERNELS``.
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
    run = LIBRARY_KERNELS[mode]
    total_length = x.shape[1]
    if reverse:
        x = reverse_padded(x, lengths)
    hx = tuple(torch.stack(s) for s in zip(*states))  # each (L*D, B, H)
    if mode == "rnn_tanh":
        hx = hx[0]
    if bool((lengths == total_length).all()):  # no padding: skip packing
        out, *final = run(x, hx, params, True, num_layers, dropout, train, bidirectional, True)
    else:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        hx = tuple(s.index_select(1, order) for s in hx) if mode == "lstm" else hx.index_select(1, order)
        data, *final = run(packed.data, packed.batch_sizes, hx, params, True, num_layers, dropout, train,
                           bidirectional)
        out, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, order, unorder),
                                     batch_first=True, total_length=total_length)
        final = [s.index_select(1, unorder) for s in final]
    if reverse:
        out = reverse_padded(out, lengths)
    return out, list(zip(*final))


def _peephole_lstm(params: list[Tensor], x: Tensor, batch: SortedBatch, state: State,
                   reverse: bool) -> tuple[Tensor, State]:
    out, h, c = peephole_lstm_sequence(x, *state, *params, batch.lengths, batch.batch_sizes, reverse)
    return out, (h, c)


# Whole-sequence kernels of this library: (params, x (T, B, I) sorted, batch, state, reverse) -> (out, state).
SEQUENCE_KERNELS: dict[str, Callable[[list[Tensor], Tensor, SortedBatch, State, bool], tuple[Tensor, State]]] = {
    "peephole_lstm": _peephole_lstm,
}


class RecurrentLayer(nn.Module):
    """Runs a cell over a sequence; padding never changes a sentence's outputs or final state.

    Args:
        cell: the cell of every time step.
        reverse: read the sequence right to left (each sentence from its last real token).
        implementation: ``"auto"`` runs a whole-sequence kernel where the cell maps exactly onto one
            (``RecurrentCell.fused_kernel``: PyTorch's LSTM/RNN kernels or ``SEQUENCE_KERNELS``), else the
            per-step loop; ``"reference"`` always runs the per-step loop over ``cell.forward``, the definition
            the fast paths are tested against.
    """

    def __init__(self, cell: RecurrentCell, reverse: bool = False, implementation: str = "auto"):
        super().__init__()
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        self.cell = cell
        self.reverse = reverse
        self.implementation = implementation

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def kernel(self) -> tuple[str, list[Tensor]] | None:
        """The cell's fused kernel if this layer may use it, else None (the per-step loop)."""
        if self.implementation != "auto":
            return None
        kernel = self.cell.fused_kernel()
        if kernel is not None and kernel[0] not in LIBRARY_KERNELS and kernel[0] not in SEQUENCE_KERNELS:
            raise ValueError(f"{type(self.cell).__name__} asks for an unknown kernel {kernel[0]!r}")
        return kernel

    def forward(self, x: Tensor, mask: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Runs the layer.

        Args:
            x: ``(B, T, I)`` inputs, right-padded.
            mask: ``(B, T)`` bool, True at real tokens (a prefix of each row).
            state: initial state, a tuple of ``(B, H)``; zeros when None.

        Returns:
            ``outputs`` ``(B, T, H)``, zero at padding, and the final state after each sentence's last real
            token in reading order (for ``reverse``, after its first token).
        """
        if state is None:
            state = self.cell.initial_state(x.shape[0], x.device, x.dtype)
        kernel = self.kernel()
        if kernel is not None and kernel[0] in SEQUENCE_KERNELS:
            batch = SortedBatch(mask)
            out, state = self.run_sorted(kernel, batch.to_time_major(x), batch, tuple(map(batch.sort, state)))
            return batch.from_time_major(out), tuple(map(batch.unsort, state))
        lengths = mask.sum(dim=1)  # (B,)
        if kernel is not None and bool((lengths > 0).all()):  # packing refuses empty sentences
            out, (state,) = run_library_kernel(kernel[0], kernel[1], x, lengths, [state], reverse=self.reverse)
            return out, state
        return self._loop(x, mask, state)

    def run_sorted(self, kernel: tuple[str, list[Tensor]], x: Tensor, batch: SortedBatch,
                   state: State) -> tuple[Tensor, State]:
        """Runs a sequence kernel on a ``SortedBatch`` layout: ``x`` ``(T, B, I)``, ``state`` sorted.

        Returns:
            ``(T, B, H)`` outputs, zero at padding, and the final state, sorted.
        """
        mode, params = kernel
        return SEQUENCE_KERNELS[mode](params, x, batch, state, self.reverse)

    def _loop(self, x: Tensor, mask: Tensor, state: State) -> tuple[Tensor, State]:
        steps = range(x.shape[1] - 1, -1, -1) if self.reverse else range(x.shape[1])
        outputs: list[Tensor] = [x.new_empty(0)] * x.shape[1]
        for t in steps:
            h, new_state = self.cell(x[:, t], state)
            keep = mask[:, t].unsqueeze(1)  # (B, 1): padding leaves the state untouched
            state = tuple(torch.where(keep, new, old) for new, old in zip(new_state, state))
            outputs[t] = h * keep
        return torch.stack(outputs, dim=1), state
