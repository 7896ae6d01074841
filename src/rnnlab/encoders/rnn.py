"""Multi-layer, reverse and bidirectional recurrent encoders over padded batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from rnnlab.cells.base import RecurrentCell, State
from rnnlab.encoders.layer import RecurrentLayer

CellFactory = Callable[[int, int], RecurrentCell]
STYLES = ("stacked", "independent")


@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        outputs: ``(B, T, D)`` token representations, zero at padding.
        sentence: ``(B, D)`` the lecture's sentence representation: the forward RNN's state after the last
            real token, concatenated (BiRNN) with the backward RNN's state after the first token.
        final_states: per layer, per direction (forward first), the final state tuple of ``(B, H)``.
    """

    outputs: Tensor
    sentence: Tensor
    final_states: list[list[State]]


class RNNEncoder(nn.Module):
    """Stack of recurrent layers, one or both directions.

    Args:
        cell: builds a cell from ``(input_size, hidden_size)``; Hydra passes a partial of a cell class.
        input_size: size of each input vector.
        hidden_size: hidden size of every layer and direction.
        num_layers: depth of each direction.
        bidirectional: run a forward and a backward RNN with separate parameters; token representation is
            the concatenation of both.
        style: for a multi-layer BiRNN, ``"stacked"`` (layer k of both directions reads the concatenated
            outputs of layer k-1, so every cell above the first has seen the whole sentence) or
            ``"independent"`` (a multi-layer forward RNN and a multi-layer backward RNN joined only at the top).
        reverse: for a unidirectional encoder, read right to left.
        dropout: dropout between layers (not after the last one; heads apply their own).
        implementation: passed to every ``RecurrentLayer``.
    """

    def __init__(self, cell: CellFactory, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, style: str = "stacked", reverse: bool = False,
                 dropout: float = 0.0, implementation: str = "auto"):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        if bidirectional and reverse:
            raise ValueError("reverse applies to unidirectional encoders; a bidirectional one reads both ways")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.style = style
        directions = [False, True] if bidirectional else [reverse]
        # Layer k of a direction reads the concatenation of all directions only in the stacked style.
        wide = bidirectional and style == "stacked"

        def layer_input(k: int) -> int:
            if k == 0:
                return input_size
            return hidden_size * len(directions) if wide else hidden_size

        self.layers = nn.ModuleList(
            nn.ModuleList(RecurrentLayer(cell(layer_input(k), hidden_size), backwards, implementation)
                          for backwards in directions)
            for k in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def get_output_dim(self) -> int:
        """Size of each token representation and of the sentence representation."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    def forward(self, x: Tensor, mask: Tensor, initial_states: list[list[State]] | None = None) -> EncoderOutput:
        """Encodes a padded batch.

        Args:
            x: ``(B, T, I)`` right-padded inputs.
            mask: ``(B, T)`` bool, True at real tokens.
            initial_states: optional, as ``EncoderOutput.final_states``.

        Returns:
            ``EncoderOutput`` with ``D = get_output_dim()``.
        """
        num_directions = len(self.layers[0])
        inputs = [x] * num_directions  # what each direction reads at the current layer
        final_states: list[list[State]] = []
        for k, layer in enumerate(self.layers):
            if k > 0:
                inputs = [self.dropout(v) for v in inputs]
            states = initial_states[k] if initial_states is not None else [None] * num_directions
            results = [direction(v, mask, s) for direction, v, s in zip(layer, inputs, states)]
            outputs = [out for out, _ in results]  # each (B, T, H)
            final_states.append([state for _, state in results])
            if self.bidirectional and self.style == "stacked":
                inputs = [torch.cat(outputs, dim=-1)] * num_directions  # (B, T, 2H)
            else:
                inputs = outputs
        sentence = torch.cat([state[0] for state in final_states[-1]], dim=-1)  # (B, D)
        return EncoderOutput(torch.cat(outputs, dim=-1), sentence, final_states)
