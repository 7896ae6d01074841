"""What every sentence encoder returns, so callers read the sentence vector the same way for each."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rnnlab.cells.base import State


@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        outputs: ``(B, T, D)`` token representations, zero at padding; None for an encoder without any (the
            CNN, whose features are windows pooled over the whole sentence).
        sentence: ``(B, D)`` the sentence representation: for a recurrent encoder the lecture's one, the forward
            RNN's state after the last real token, concatenated (BiRNN) with the backward RNN's state after the
            first token; for the CNN the pooled features.
        final_states: per layer, per direction (forward first), the final state tuple of ``(B, H)``; empty for
            an encoder without recurrent state.
    """

    outputs: Tensor | None
    sentence: Tensor
    final_states: list[list[State]]
