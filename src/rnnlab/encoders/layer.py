"""The time loop: one cell run over a padded batch, in either direction, with a mask."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab.cells.base import RecurrentCell, State

IMPLEMENTATIONS = ("auto", "reference")


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


class RecurrentLayer(nn.Module):
    """Runs a cell over a sequence; padding never changes a sentence's outputs or final state.

    Args:
        cell: the cell of every time step.
        reverse: read the sequence right to left (each sentence from its last real token).
        implementation: ``"auto"`` runs a library kernel where the cell maps exactly onto one
            (``RecurrentCell.fused_kernel``), else the per-step loop; ``"reference"`` always runs the
            per-step loop over ``cell.forward``, the definition the fast paths are tested against.
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
        batch_size = x.shape[0]
        if state is None:
            state = self.cell.initial_state(batch_size, x.device, x.dtype)
        lengths = mask.sum(dim=1)  # (B,)
        kernel = self.cell.fused_kernel() if self.implementation == "auto" else None
        if kernel is not None and bool((lengths > 0).all()):
            return self._fused(kernel, x, lengths, state)
        return self._loop(x, mask, state)

    def _loop(self, x: Tensor, mask: Tensor, state: State) -> tuple[Tensor, State]:
        steps = range(x.shape[1] - 1, -1, -1) if self.reverse else range(x.shape[1])
        outputs: list[Tensor] = [x.new_empty(0)] * x.shape[1]
        for t in steps:
            h, new_state = self.cell(x[:, t], state)
            keep = mask[:, t].unsqueeze(1)  # (B, 1): padding leaves the state untouched
            state = tuple(torch.where(keep, new, old) for new, old in zip(new_state, state))
            outputs[t] = h * keep
        return torch.stack(outputs, dim=1), state

    def _fused(self, kernel: tuple[str, list[Tensor]], x: Tensor, lengths: Tensor,
               state: State) -> tuple[Tensor, State]:
        mode, params = kernel
        run = torch.lstm if mode == "lstm" else torch.rnn_tanh
        total_length = x.shape[1]
        if self.reverse:
            x = reverse_padded(x, lengths)
        if bool((lengths == total_length).all()):  # no padding: skip packing
            hx = tuple(s.unsqueeze(0) for s in state) if mode == "lstm" else state[0].unsqueeze(0)
            out, *final = run(x, hx, params, True, 1, 0.0, self.training, False, True)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            order, unorder = packed.sorted_indices, packed.unsorted_indices
            hx = (tuple(s.index_select(0, order).unsqueeze(0) for s in state) if mode == "lstm"
                  else state[0].index_select(0, order).unsqueeze(0))
            data, *final = run(packed.data, packed.batch_sizes, hx, params, True, 1, 0.0, self.training, False)
            out, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, order, unorder),
                                         batch_first=True, total_length=total_length)
            final = [s.index_select(1, unorder) for s in final]
        if self.reverse:
            out = reverse_padded(out, lengths)
        return out, tuple(s.squeeze(0) for s in final)
