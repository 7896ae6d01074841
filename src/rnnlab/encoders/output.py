"""What every sentence encoder returns, so callers read the sentence vector the same way for each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

from torch import Tensor

from rnnlab.cells.base import State


class EncoderOutput:
    """What an encoder returns.

    Attributes:
        outputs: ``(B, T, D)`` token representations, zero at padding; None for an encoder without any (the
            CNN, whose features are windows pooled over the whole sentence).
        sentence: ``(B, D)`` the sentence representation: for a recurrent encoder the lecture's one, the forward
            RNN's state after the last real token, concatenated (BiRNN) with the backward RNN's state after the
            first token; for the CNN the pooled features.
        final_states: per layer, per direction (forward first), the final state tuple of ``(B, H)``; empty for
            an encoder without recurrent state. Given as a function, it is called when first read (a state the
            encoder's path did not keep is computed only for callers that read it); read it before the
            parameters change.
    """

    def __init__(self, outputs: Tensor | None, sentence: Tensor,
                 final_states: list[list[State]] | Callable[[], list[list[State]]]):
        self.outputs = outputs
        self.sentence = sentence
        self._final_states = final_states

    @property
    def final_states(self) -> list[list[State]]:
        if callable(self._final_states):
            self._final_states = self._final_states()
        return self._final_states


@dataclass(frozen=True)
class StateLayout:
    """How a recurrent encoder's states are laid out, declared by its cell.

    Attributes:
        cell: the cell's class name.
        names: the state tensors of each layer and direction, in order, ``h`` first, each ``(B, H)``.
        gates: the gates ``RNNEncoder.step`` reports with ``gates=True``, each ``(B, H)``.
        hidden_size: ``H``.
        bridged: how many leading state tensors a linear bridge computes (``RecurrentCell.bridged_states``).
    """

    cell: str
    names: tuple[str, ...]
    gates: tuple[str, ...]
    hidden_size: int
    bridged: int

    @property
    def num_states(self) -> int:
        return len(self.names)


class EncoderStep(NamedTuple):
    """What ``RNNEncoder.step`` returns.

    Attributes:
        hidden: ``(N, H)`` the output of the last layer stepped.
        states: per layer stepped, the new state tuple (``StateLayout.names``).
        gates: per layer stepped, the gates named as ``StateLayout.gates``; empty unless asked for.
    """

    hidden: Tensor
    states: list[State]
    gates: list[dict[str, Tensor]]
