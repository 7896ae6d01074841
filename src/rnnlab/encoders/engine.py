"""The recurrence engine: how a stack of recurrent layers runs, decided in one place for every caller.

The encoder (``RNNEncoder``), a lone ``RecurrentLayer``, the translation decoder (teacher forcing, input feeding,
greedy and beam search), the diagnostics and the benchmark all run their recurrences through ``run_stack`` (a
whole padded batch) or ``step_stack`` (one position). ``run_stack`` takes one of three paths per stack:

- library kernel: every cell maps onto the same PyTorch stack kernel (``torch.lstm``, ...), run on one of two
  layouts (``library_layout``): packed, the whole stack in one call (one call per direction for an independent
  multi-layer BiRNN), or padded, one call per layer and direction on the padded batch itself;
- sequence kernel: every cell names the same project kernel (``rnnlab.kernels``), or, on CPUs, a library kernel
  whose ``cpu`` twin is one (``torch.gru`` -> ``rnnlab.kernels.gru``: faster or level at every shape timed):
  one sorted, time-major copy of the batch shared by all layers, one kernel call per layer and direction;
- step loop: ``cell.forward`` step by step, for cells without a kernel, ``implementation="reference"``, a stack
  whose layers do not all name the same kernel, batches with an empty sentence on the packed layout (packing
  refuses them), and while steps are recorded.

Dropout between layers is ``standard`` (``nn.Dropout``) or locked (``rnnlab.dropout.LockedDropout``, one mask
per sentence). The library kernels drop in-kernel with standard masks only, so a training stack with locked
dropout runs one library call per layer and direction, the locked dropout between them; the other paths go
layer by layer anyway. ``step_stack`` sees one position at a time and cannot keep a mask across calls: there
a locked module drops like a standard one, a fresh mask per step. Cells under weight drop
(``rnnlab.dropout.drop_recurrent_weights``) run inside ``parametrize.cached()``: the dropped matrix is computed
once per ``run_stack`` or ``step_stack`` call, the same at every step, and every kernel reads it.

Which layout is fastest is a property of the device and the batch, not of the cell. cuDNN runs packed batches
fast, so GPUs keep them. On CPUs PyTorch runs a packed batch step by step in its generic code, while oneDNN
runs a padded one as one primitive: measured on 2 cores (``docs/benchmarks.md``, "Ragged batches"), the padded
layout was 2–83× faster than the packed one at T = 40, 200 and 2,000 with lengths uniform in [T/2, T], so
CPUs run ragged batches padded. Every layout computes the same function up to float rounding; on the padded
layout the LSTM's final memory ``c`` is not among the kernel's outputs and is recomputed only if a caller reads
the final states (the translation encoder's bridge does; taggers and classifiers read outputs and ``h`` alone).

Precision: under autocast the recurrence runs in the parameters' dtype with autocast off, and so do its inputs
and initial states; the layers around it stay in autocast's. bf16 keeps 8 significant bits, so once ``|c|``
passes 256 the update ``c + i·g`` rounds back to ``c`` and the memory stops changing (an LM trained with Adam
under bf16 stalled at the unigram level that way).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from rnnlab.cells.base import State
from rnnlab.dropout import LockedDropout
from rnnlab.kernels import KERNELS, LibraryKernel, SequenceKernel
from rnnlab.kernels.batch import SortedBatch
from rnnlab.kernels.library import run_library_kernel, run_padded_layer

if TYPE_CHECKING:
    from rnnlab.encoders.layer import RecurrentLayer

Stack = Sequence[Sequence["RecurrentLayer"]]  # per layer, per direction (forward first)
StackStates = list[list[State]]  # per layer, per direction, a cell's state tuple of (B, H)
Recorder = list[list[list[Tensor]]]  # per layer, per direction, h(t) (B, H) of each step in reading order
LAYOUTS = ("packed", "padded")
_forced_layout: list[str] = []  # set by force_layout


@dataclass
class FinalStates:
    """The state after each sentence's last token in reading order, per layer and direction (forward first).

    Attributes:
        hidden: each ``h`` ``(B, H)``, always computed.
        rest: per layer and direction, a function returning the state's other tensors; the padded layout
            computes the LSTM's ``c`` only when ``states`` is first read.
    """

    hidden: list[list[Tensor]]
    rest: list[list[Callable[[], State]]]
    _states: StackStates | None = field(default=None, repr=False)

    @classmethod
    def known(cls, states: StackStates) -> FinalStates:
        """Final states already computed whole."""
        return cls([[state[0] for state in layer] for layer in states], [], states)

    @property
    def states(self) -> StackStates:
        """Every state tuple, as ``run_stack``'s ``initial_states``."""
        if self._states is None:
            self._states = [[(h, *rest()) for h, rest in zip(*layer)] for layer in zip(self.hidden, self.rest)]
        return self._states


@contextmanager
def force_layout(layout: str) -> Iterator[None]:
    """While open, library kernels run on ``layout`` (``"packed"`` or ``"padded"``) on every device: for tests
    and for timing one layout against the other."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    _forced_layout.append(layout)
    try:
        yield
    finally:
        _forced_layout.pop()


def library_layout(device: torch.device) -> str:
    """How library kernels run a ragged batch on ``device``: packed on GPUs (cuDNN), padded elsewhere."""
    if _forced_layout:
        return _forced_layout[-1]
    return "packed" if device.type == "cuda" else "padded"


def kernel_on(name: str, device: torch.device) -> str:
    """The kernel the engine runs for a stack whose cells name ``name``: a library kernel's ``cpu`` twin on CPUs
    (``torch.gru`` -> ``rnnlab.kernels.gru``), unless a layout is forced (``force_layout`` times and tests the
    library kernel itself); else ``name``."""
    kernel = KERNELS[name]
    if isinstance(kernel, LibraryKernel) and kernel.cpu is not None and device.type == "cpu" and not _forced_layout:
        return kernel.cpu
    return name


@contextmanager
def parameter_precision(parameter: Tensor, device_type: str) -> Iterator[Callable[[Tensor], Tensor]]:
    """Autocast off around a recurrence; yields the cast its inputs and states go through (a no-op outside
    autocast, the parameters' dtype under it)."""
    if not torch.is_autocast_enabled(device_type):
        yield lambda tensor: tensor
        return
    with torch.autocast(device_type, enabled=False):
        yield lambda tensor: tensor.to(parameter.dtype)


def run_stack(layers: Stack, x: Tensor, mask: Tensor, initial_states: StackStates | None = None,
              wide: bool = False, dropout: nn.Module | None = None,
              recorder: Recorder | None = None) -> tuple[Tensor, FinalStates]:
    """Runs a stack of layers over a padded batch, in the parameters' precision.

    Args:
        layers: per layer, one ``RecurrentLayer`` per direction (forward first).
        x: ``(B, T, I)`` right-padded inputs.
        mask: ``(B, T)`` bool, True at real tokens (a prefix of each row).
        initial_states: per layer and direction a state tuple of ``(B, H)``; zeros when None.
        wide: each layer above the first reads the outputs of every direction below (a stacked BiRNN), not
            only its own direction's.
        dropout: applied to the inputs of every layer above the first (``nn.Dropout`` or ``LockedDropout``).
        recorder: if given, runs the step loop and appends each step's ``h(t)`` to ``recorder[layer][direction]``.

    Returns:
        ``(B, T, D*H)`` top-layer outputs of all directions, zero at padding, and the final states; in the
        parameters' dtype.
    """
    with parameter_precision(next(layers[0][0].parameters()), x.device.type) as cast, parametrize.cached():
        if initial_states is None:
            initial_states = [[direction.cell.initial_state(x.shape[0], x.device, x.dtype) for direction in layer]
                              for layer in layers]
        states = [[tuple(map(cast, state)) for state in layer] for layer in initial_states]
        return _run(layers, cast(x), mask, states, wide, dropout, recorder)


def step_stack(layers: Stack, x_t: Tensor, states: list[State] | None = None, dropout: nn.Module | None = None,
               gates: list[dict[str, Tensor]] | None = None) -> tuple[Tensor, list[State]]:
    """One position through the forward direction of a stack, in the parameters' precision.

    Args:
        layers: as ``run_stack``; each layer's forward direction reads the one below it.
        x_t: ``(N, I)`` inputs of the first layer.
        states: per layer the cell's state tuple of ``(N, H)``; zeros when None.
        dropout: applied to the inputs of every layer above the first; a fresh mask per call, even if locked.
        gates: if given, each layer's ``cell.gates`` of this step is appended to it.

    Returns:
        ``(N, H)`` the top layer's output and the new states, in the parameters' dtype.
    """
    with parameter_precision(next(layers[0][0].parameters()), x_t.device.type) as cast, parametrize.cached():
        x_t = cast(x_t)
        if states is None:
            states = [layer[0].cell.initial_state(x_t.shape[0], x_t.device, x_t.dtype) for layer in layers]
        new_states = []
        for k, layer in enumerate(layers):
            if k > 0 and dropout is not None:
                x_t = dropout(x_t)
            state = tuple(map(cast, states[k]))
            if gates is not None:
                gates.append(layer[0].cell.gates(x_t, state))
            x_t, state = layer[0].cell(x_t, state)  # (N, H)
            new_states.append(state)
        return x_t, new_states


def _run(layers: Stack, x: Tensor, mask: Tensor, states: StackStates, wide: bool, dropout: nn.Module | None,
         recorder: Recorder | None) -> tuple[Tensor, FinalStates]:
    """``run_stack`` once the precision is settled: picks the path."""
    kernels = [[None if recorder is not None else direction.kernel() for direction in layer] for layer in layers]
    names = {kernel[0] if kernel is not None else None for layer in kernels for kernel in layer}
    kind = None
    if len(names) == 1 and None not in names:
        name = kernel_on(next(iter(names)), x.device)  # the same parameters under the kernel this device runs
        kernels = [[(name, params) for _, params in layer] for layer in kernels]
        kind = KERNELS[name]
    if isinstance(kind, LibraryKernel):
        lengths = mask.sum(dim=1)  # (B,)
        ragged = not bool((lengths == x.shape[1]).all())
        if ragged and library_layout(x.device) == "padded":
            return _padded(layers, kernels, x, lengths, states, wide, dropout)
        if bool((lengths > 0).all()):  # packing refuses empty sentences
            library = _library_by_layer if _locked_between(layers, dropout) else _library
            outputs, final = library(layers, kernels, x, lengths, states, wide, dropout)
            return outputs, FinalStates.known(final)
    outputs, final = _run_whole(layers, kernels, kind, x, mask, states, wide, dropout, recorder)
    return outputs, FinalStates.known(final)


def _run_whole(layers: Stack, kernels: list[list[tuple[str, list[Tensor]] | None]], kind: object, x: Tensor,
               mask: Tensor, states: StackStates, wide: bool, dropout: nn.Module | None,
               recorder: Recorder | None) -> tuple[Tensor, StackStates]:
    """A sequence kernel or the step loop: paths that compute every final state tensor as they go."""
    if isinstance(kind, SequenceKernel):
        batch = SortedBatch(mask)
        sorted_states = [[tuple(map(batch.sort, state)) for state in layer] for layer in states]
        if isinstance(dropout, LockedDropout):  # its mask is per sentence: drop (B, T, ...), not (T, B, ...)
            dropout = partial(_batch_major, dropout)
        outputs, final_states = _layer_by_layer(
            layers, batch.to_time_major(x), sorted_states, wide, dropout,
            lambda k, d, v, state: KERNELS[kernels[k][d][0]].run(kernels[k][d][1], v, batch, state,
                                                                 layers[k][d].reverse))
        final_states = [[tuple(map(batch.unsort, state)) for state in layer] for layer in final_states]
        return batch.from_time_major(outputs), final_states
    return _layer_by_layer(layers, x, states, wide, dropout, lambda k, d, v, state: _loop(
        layers[k][d], v, mask, state, None if recorder is None else recorder[k][d]))


def _batch_major(dropout: LockedDropout, x: Tensor) -> Tensor:
    """``dropout`` on time-major ``(T, B, ...)`` inputs."""
    return dropout(x.transpose(0, 1)).transpose(0, 1)


def _locked_between(layers: Stack, dropout: nn.Module | None) -> bool:
    """Whether locked dropout acts between the layers of this stack now (training, ``p > 0``, several layers)."""
    return isinstance(dropout, LockedDropout) and dropout.training and dropout.p > 0 and len(layers) > 1


def _layer_by_layer(layers: Stack, x: Tensor, states: StackStates, wide: bool,
                    dropout: Callable[[Tensor], Tensor] | None,
                    run: Callable[[int, int, Tensor, State], tuple[Tensor, State]]) -> tuple[Tensor, StackStates]:
    """Layer by layer; ``run(layer, direction, inputs, state)`` runs one direction of one layer."""
    num_directions = len(layers[0])
    inputs = [x] * num_directions  # what each direction reads at the current layer
    final_states: StackStates = []
    for k in range(len(layers)):
        if k > 0 and dropout is not None:
            inputs = [dropout(v) for v in inputs]
        results = [run(k, d, v, s) for d, (v, s) in enumerate(zip(inputs, states[k]))]
        outputs = [out for out, _ in results]  # each (..., H)
        final_states.append([state for _, state in results])
        inputs = [torch.cat(outputs, dim=-1)] * num_directions if wide else outputs  # (..., 2H) if wide
    return torch.cat(outputs, dim=-1), final_states


def _library(layers: Stack, kernels: list[list[tuple[str, list[Tensor]]]], x: Tensor, lengths: Tensor,
             states: StackStates, wide: bool, dropout: nn.Dropout | None) -> tuple[Tensor, StackStates]:
    """The whole stack through ``run_library_kernel``: one call, or one per direction if independent."""
    num_layers = len(layers)
    run = partial(run_library_kernel, kernels[0][0][0], x=x, lengths=lengths, num_layers=num_layers,
                  dropout=0.0 if dropout is None else dropout.p, train=dropout is not None and dropout.training)
    if len(layers[0]) == 2 and (wide or num_layers == 1):
        outputs, flat = run([p for layer in kernels for kernel in layer for p in kernel[1]],
                            states=[state for layer in states for state in layer], bidirectional=True)
        return outputs, [flat[2 * k:2 * k + 2] for k in range(num_layers)]
    results = [run([p for layer in kernels for p in layer[d][1]], states=[layer[d] for layer in states],
                   reverse=layers[0][d].reverse) for d in range(len(layers[0]))]
    outputs = torch.cat([out for out, _ in results], dim=-1)  # (B, T, D*H)
    return outputs, [[flat[k] for _, flat in results] for k in range(num_layers)]


def _library_by_layer(layers: Stack, kernels: list[list[tuple[str, list[Tensor]]]], x: Tensor, lengths: Tensor,
                      states: StackStates, wide: bool, dropout: nn.Module) -> tuple[Tensor, StackStates]:
    """The stack through ``run_library_kernel``, one call per layer and direction: the kernel's own dropout
    between layers is standard, so locked dropout runs between the calls."""

    def run(k: int, d: int, v: Tensor, state: State) -> tuple[Tensor, State]:
        out, (final,) = run_library_kernel(kernels[k][d][0], kernels[k][d][1], v, lengths, [state],
                                           reverse=layers[k][d].reverse)
        return out, final

    return _layer_by_layer(layers, x, states, wide, dropout, run)


def _padded(layers: Stack, kernels: list[list[tuple[str, list[Tensor]]]], x: Tensor, lengths: Tensor,
            states: StackStates, wide: bool, dropout: nn.Module | None) -> tuple[Tensor, FinalStates]:
    """The stack through ``run_padded_layer``, one call per layer and direction."""
    rests: list[list[Callable[[], State]]] = [[] for _ in layers]

    def run(k: int, d: int, v: Tensor, state: State) -> tuple[Tensor, State]:
        out, h_n, rest = run_padded_layer(kernels[k][d][0], kernels[k][d][1], v, lengths, state, layers[k][d].reverse)
        rests[k].append(rest)
        return out, (h_n,)

    outputs, hidden = _layer_by_layer(layers, x, states, wide, dropout, run)
    return outputs, FinalStates([[state[0] for state in layer] for layer in hidden], rests)


def _loop(layer: RecurrentLayer, x: Tensor, mask: Tensor, state: State,
          recorded: list[Tensor] | None) -> tuple[Tensor, State]:
    """The per-step loop over ``layer.cell.forward``: the definition the kernels are tested against."""
    steps = range(x.shape[1] - 1, -1, -1) if layer.reverse else range(x.shape[1])
    outputs: list[Tensor] = [x.new_empty(0)] * x.shape[1]
    for t in steps:
        h, new_state = layer.cell(x[:, t], state)
        if recorded is not None:
            recorded.append(h)
        keep = mask[:, t].unsqueeze(1)  # (B, 1): padding leaves the state untouched
        state = tuple(torch.where(keep, new, old) for new, old in zip(new_state, state))
        outputs[t] = h * keep
    return torch.stack(outputs, dim=1), state
