"""Multi-layer, reverse and bidirectional recurrent encoders over padded batches."""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn

from rnnlab.cells.base import RecurrentCell, State
from rnnlab.encoders.batch import SortedBatch
from rnnlab.encoders.layer import RecurrentLayer
from rnnlab.encoders.output import EncoderOutput
from rnnlab.kernels import KERNELS, LibraryKernel, SequenceKernel
from rnnlab.kernels.library import run_library_kernel

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

        With ``implementation="auto"``, cells that map onto a PyTorch stack kernel run the whole stack
        in one kernel call (two for an ``"independent"`` multi-layer BiRNN) on one packed batch; cells with
        a sequence kernel run on one sorted, time-major copy of the batch shared by all layers.

        Args:
            x: ``(B, T, I)`` right-padded inputs.
            mask: ``(B, T)`` bool, True at real tokens.
            initial_states: optional, as ``EncoderOutput.final_states``.

        Returns:
            ``EncoderOutput`` with ``D = get_output_dim()``; in the parameters' dtype under autocast.
        """
        device = x.device.type
        if torch.is_autocast_enabled(device):
            # The recurrence runs in the parameters' precision, the layers around it in autocast's: bf16 keeps 8
            # significant bits, so once |c| passes 256 the update c + i·g rounds back to c and the memory stops
            # changing (an LM trained with Adam under bf16 stalled at the unigram level that way).
            dtype = next(self.parameters()).dtype
            with torch.autocast(device, enabled=False):
                states = None if initial_states is None else [[tuple(s.to(dtype) for s in state) for state in layer]
                                                               for layer in initial_states]
                return self._encode(x.to(dtype), mask, states)
        return self._encode(x, mask, initial_states)

    def _encode(self, x: Tensor, mask: Tensor, initial_states: list[list[State]] | None) -> EncoderOutput:
        if initial_states is None:
            initial_states = [[direction.cell.initial_state(x.shape[0], x.device, x.dtype) for direction in layer]
                              for layer in self.layers]
        kernels = [[direction.kernel() for direction in layer] for layer in self.layers]
        modes = {kernel[0] if kernel is not None else None for layer in kernels for kernel in layer}
        mode = modes.pop() if len(modes) == 1 else None
        kind = KERNELS[mode] if mode is not None else None
        if isinstance(kind, LibraryKernel):
            lengths = mask.sum(dim=1)  # (B,)
            if bool((lengths > 0).all()):  # packing refuses empty sentences
                outputs, final_states = self._library(mode, kernels, x, lengths, initial_states)
                return self._output(outputs, final_states)
        if isinstance(kind, SequenceKernel):
            batch = SortedBatch(mask)
            sorted_states = [[tuple(map(batch.sort, state)) for state in layer] for layer in initial_states]
            outputs, final_states = self._stack(
                batch.to_time_major(x), sorted_states,
                lambda k, d, v, state: self.layers[k][d].run_sorted(kernels[k][d], v, batch, state))
            final_states = [[tuple(map(batch.unsort, state)) for state in layer] for layer in final_states]
            return self._output(batch.from_time_major(outputs), final_states)
        outputs, final_states = self._stack(x, initial_states,
                                            lambda k, d, v, state: self.layers[k][d](v, mask, state))
        return self._output(outputs, final_states)

    def _stack(self, x: Tensor, initial_states: list[list[State]],
               run: Callable[[int, int, Tensor, State], tuple[Tensor, State]]) -> tuple[Tensor, list[list[State]]]:
        """Layer by layer; ``run(layer, direction, inputs, state)`` runs one direction of one layer."""
        num_directions = len(self.layers[0])
        inputs = [x] * num_directions  # what each direction reads at the current layer
        final_states: list[list[State]] = []
        for k in range(self.num_layers):
            if k > 0:
                inputs = [self.dropout(v) for v in inputs]
            results = [run(k, d, v, s) for d, (v, s) in enumerate(zip(inputs, initial_states[k]))]
            outputs = [out for out, _ in results]  # each (..., H)
            final_states.append([state for _, state in results])
            if self.bidirectional and self.style == "stacked":
                inputs = [torch.cat(outputs, dim=-1)] * num_directions  # (..., 2H)
            else:
                inputs = outputs
        return torch.cat(outputs, dim=-1), final_states

    def _library(self, mode: str, kernels: list[list[tuple[str, list[Tensor]]]], x: Tensor, lengths: Tensor,
                 initial_states: list[list[State]]) -> tuple[Tensor, list[list[State]]]:
        """The whole stack through ``run_library_kernel``: one call, or one per direction if independent."""
        run = partial(run_library_kernel, mode, x=x, lengths=lengths, num_layers=self.num_layers,
                      dropout=self.dropout.p, train=self.training)
        directions = range(len(self.layers[0]))
        if self.bidirectional and (self.style == "stacked" or self.num_layers == 1):
            outputs, flat = run([p for layer in kernels for kernel in layer for p in kernel[1]],
                                states=[state for layer in initial_states for state in layer], bidirectional=True)
            return outputs, [flat[2 * k:2 * k + 2] for k in range(self.num_layers)]
        results = [run([p for layer in kernels for p in layer[d][1]], states=[layer[d] for layer in initial_states],
                       reverse=self.layers[0][d].reverse) for d in directions]
        outputs = torch.cat([out for out, _ in results], dim=-1)  # (B, T, D*H)
        return outputs, [[flat[k] for _, flat in results] for k in range(self.num_layers)]

    @staticmethod
    def _output(outputs: Tensor, final_states: list[list[State]]) -> EncoderOutput:
        sentence = torch.cat([state[0] for state in final_states[-1]], dim=-1)  # (B, D)
        return EncoderOutput(outputs, sentence, final_states)
