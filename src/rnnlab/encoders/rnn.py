"""Multi-layer, reverse and bidirectional recurrent encoders over padded batches."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrize import type_before_parametrizations

from rnnlab.cells.base import RecurrentCell, State
from rnnlab.dropout import drop_recurrent_weights, make_dropout
from rnnlab.encoders.engine import run_stack, step_stack
from rnnlab.encoders.layer import RecurrentLayer
from rnnlab.encoders.output import EncoderOutput, EncoderStep, StateLayout

CellFactory = Callable[[int, int], RecurrentCell]
STYLES = ("stacked", "independent")


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
        dropout_kind: ``standard`` or ``locked`` (one mask per sentence) between layers (``rnnlab.dropout``).
        weight_drop: DropConnect probability on every cell's hidden-to-hidden weights while training, one mask
            per forward pass (``rnnlab.dropout.drop_recurrent_weights``).
    """

    def __init__(self, cell: CellFactory, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, style: str = "stacked", reverse: bool = False,
                 dropout: float = 0.0, implementation: str = "auto", dropout_kind: str = "standard",
                 weight_drop: float = 0.0):
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
        self.directions = (False, True) if bidirectional else (reverse,)  # per direction: reads right to left
        # Layer k of a direction reads the concatenation of all directions only in the stacked style.
        wide = bidirectional and style == "stacked"

        def layer_input(k: int) -> int:
            if k == 0:
                return input_size
            return hidden_size * len(self.directions) if wide else hidden_size

        self.layers = nn.ModuleList(
            nn.ModuleList(RecurrentLayer(cell(layer_input(k), hidden_size), backwards, implementation)
                          for backwards in self.directions)
            for k in range(num_layers))
        for layer in self.layers:
            for direction in layer:
                drop_recurrent_weights(direction.cell, weight_drop)
        self.dropout = make_dropout(dropout, dropout_kind)
        self._wide = wide
        self._recorder: list[list[list[Tensor]]] | None = None  # set by record_steps

    def get_output_dim(self) -> int:
        """Size of each token representation and of the sentence representation."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def state_layout(self) -> StateLayout:
        """What ``step`` and ``EncoderOutput.final_states`` hold per layer and direction."""
        cell = self.layers[0][0].cell
        return StateLayout(type_before_parametrizations(cell).__name__, cell.state_names, cell.gate_names,
                           self.hidden_size, cell.bridged_states)

    def complete_state(self, bridged: State) -> State:
        """A whole state from its ``state_layout.bridged`` leading tensors (``RecurrentCell.complete_state``)."""
        return self.layers[0][0].cell.complete_state(bridged)

    def forward(self, x: Tensor, mask: Tensor, initial_states: list[list[State]] | None = None) -> EncoderOutput:
        """Encodes a padded batch through the recurrence engine (``rnnlab.encoders.engine``), which picks the
        stack's path (one library kernel call for the whole stack, one sequence kernel call per layer and
        direction on a batch sorted once, or the step loop) and runs it in the parameters' precision.

        Args:
            x: ``(B, T, I)`` right-padded inputs.
            mask: ``(B, T)`` bool, True at real tokens.
            initial_states: optional, as ``EncoderOutput.final_states``.

        Returns:
            ``EncoderOutput`` with ``D = get_output_dim()``; in the parameters' dtype under autocast.
        """
        outputs, final_states = run_stack(self.layers, x, mask, initial_states, self._wide, self.dropout,
                                          self._recorder)
        sentence = torch.cat(final_states.hidden[-1], dim=-1)  # (B, D)
        return EncoderOutput(outputs, sentence, lambda: final_states.states)

    def step(self, x_t: Tensor, states: list[State] | None = None, num_layers: int | None = None,
             gates: bool = False) -> EncoderStep:
        """One position through the forward direction, in the parameters' precision: what a decoder generates
        with, and how the diagnostics look inside the cells.

        Args:
            x_t: ``(N, I)`` inputs of the first layer.
            states: per layer, a state tuple of ``(N, H)`` named as ``state_layout.names``; zeros when None.
            num_layers: step only the first this many layers (default all). In a stacked BiRNN a layer above the
                first reads both directions, so only the first layer's forward direction steps alone.
            gates: also return the gates each layer's cell computed.

        Returns:
            ``EncoderStep``: the ``(N, H)`` output of the last layer stepped, the new states, and per layer
            the gates named as ``state_layout.gates`` (empty unless ``gates``).
        """
        layers = self.layers[:num_layers or self.num_layers]
        if len(layers) > 1 and self._wide:
            raise ValueError("only the first layer of a stacked BiRNN steps alone; pass num_layers=1")
        recorded_gates: list[dict[str, Tensor]] = []
        hidden, new_states = step_stack(layers, x_t, states, self.dropout, recorded_gates if gates else None)
        return EncoderStep(hidden, new_states, recorded_gates)

    @contextmanager
    def record_steps(self) -> Iterator[list[list[list[Tensor]]]]:
        """While open, ``forward`` runs the step loop and records each step's ``h(t)`` ``(B, H)``.

        Yields:
            Per layer, per direction (forward first), the hidden states in reading order.
        """
        self._recorder = [[[] for _ in layer] for layer in self.layers]
        try:
            yield self._recorder
        finally:
            self._recorder = None
