"""One recurrent layer: a cell run over a padded batch, in either direction, with a mask."""

from __future__ import annotations

from torch import Tensor, nn

from rnnlab.cells.base import RecurrentCell, State
from rnnlab.encoders.engine import run_stack
from rnnlab.kernels import get_kernel

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
        """Runs the layer through the recurrence engine (``rnnlab.encoders.engine``) as a one-layer stack.

        Args:
            x: ``(B, T, I)`` inputs, right-padded.
            mask: ``(B, T)`` bool, True at real tokens (a prefix of each row).
            state: initial state, a tuple of ``(B, H)``; zeros when None.

        Returns:
            ``outputs`` ``(B, T, H)``, zero at padding, and the final state after each sentence's last real
            token in reading order (for ``reverse``, after its first token); in the parameters' dtype under
            autocast.
        """
        outputs, final_states = run_stack([[self]], x, mask, None if state is None else [[state]])
        return outputs, final_states.states[0][0]
