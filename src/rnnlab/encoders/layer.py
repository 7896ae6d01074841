"""The time loop: one cell run over a padded batch, in either direction, with a mask."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.cells.base import RecurrentCell, State
from rnnlab.encoders.batch import SortedBatch
from rnnlab.kernels import KERNELS, LibraryKernel, SequenceKernel, get_kernel
from rnnlab.kernels.library import run_library_kernel

IMPLEMENTATIONS = ("auto", "reference")


class RecurrentLayer(nn.Module):
    """Runs a cell over a sequence; padding never changes a sentence's outputs or final state.

    Args:
        cell: the cell of every time step.
        reverse: read the sequence right to left (each sentence from its last real token).
        implementation: ``"auto"`` runs a whole-sequence kernel where the cell maps exactly onto one
            (``RecurrentCell.fused_kernel``, a name in ``rnnlab.kernels.KERNELS``), else the
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
        if kernel is not None:
            get_kernel(kernel[0], self.cell.num_states)  # a clear error for a wrong name or state count
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
        kind = KERNELS[kernel[0]] if kernel is not None else None
        if isinstance(kind, SequenceKernel):
            batch = SortedBatch(mask)
            out, state = self.run_sorted(kernel, batch.to_time_major(x), batch, tuple(map(batch.sort, state)))
            return batch.from_time_major(out), tuple(map(batch.unsort, state))
        lengths = mask.sum(dim=1)  # (B,)
        if isinstance(kind, LibraryKernel) and bool((lengths > 0).all()):  # packing refuses empty sentences
            out, (state,) = run_library_kernel(kernel[0], kernel[1], x, lengths, [state], reverse=self.reverse)
            return out, state
        return self._loop(x, mask, state)

    def run_sorted(self, kernel: tuple[str, list[Tensor]], x: Tensor, batch: SortedBatch,
                   state: State) -> tuple[Tensor, State]:
        """Runs a sequence kernel on a ``SortedBatch`` layout: ``x`` ``(T, B, I)``, ``state`` sorted.

        Returns:
            ``(T, B, H)`` outputs, zero at padding, and the final state, sorted.
        """
        name, params = kernel
        return KERNELS[name].run(params, x, batch, state, self.reverse)

    def _loop(self, x: Tensor, mask: Tensor, state: State) -> tuple[Tensor, State]:
        steps = range(x.shape[1] - 1, -1, -1) if self.reverse else range(x.shape[1])
        outputs: list[Tensor] = [x.new_empty(0)] * x.shape[1]
        for t in steps:
            h, new_state = self.cell(x[:, t], state)
            keep = mask[:, t].unsqueeze(1)  # (B, 1): padding leaves the state untouched
            state = tuple(torch.where(keep, new, old) for new, old in zip(new_state, state))
            outputs[t] = h * keep
        return torch.stack(outputs, dim=1), state
