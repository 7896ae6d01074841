"""Library kernels on either layout of a ragged batch (packed, padded) compute what the per-step loop does."""

from __future__ import annotations

import pytest
import torch

from rnnlab.encoders import RecurrentLayer, RNNEncoder
from rnnlab.encoders.engine import force_layout, library_layout
from rnnlab.kernels import KERNELS, LibraryKernel
from test_fast_paths import CELLS, ENCODERS, HIDDEN, INPUT, assert_close, fast_and_reference, make_mask, \
    random_states, run_and_differentiate

LIBRARY_CELLS = [name for name, factory in CELLS.items()
                 if (kernel := factory(INPUT, HIDDEN).fused_kernel()) is not None
                 and isinstance(KERNELS[kernel[0]], LibraryKernel)]
LENGTHS = {"ragged": [6, 1, 4, 6, 2], "full": [5, 5, 5], "empty": [4, 0, 3]}


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("layout", ["packed", "padded"])
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("cell", LIBRARY_CELLS)
def test_layout_equals_reference(cell: str, encoder: str, layout: str, lengths: str) -> None:
    """Outputs, sentence, every final state and every gradient (inputs, weights, initial states) equal the step
    loop's, forward, reverse, stacked and independent BiRNNs, with ragged, full and empty sentences."""
    torch.manual_seed(0)
    fast, reference = fast_and_reference(cell, encoder, torch.float64)
    x = torch.randn(len(LENGTHS[lengths]), max(LENGTHS[lengths]), INPUT, dtype=torch.float64, requires_grad=True)
    mask = make_mask(LENGTHS[lengths])
    for states in (None, random_states(fast, len(LENGTHS[lengths]), torch.float64)):
        expected = run_and_differentiate(reference, x, mask, states)
        with force_layout(layout):
            assert_close(run_and_differentiate(fast, x, mask, states), expected, 1e-10)


@pytest.mark.parametrize("reverse", [False, True])
def test_padded_layer_final_memory(reverse: bool) -> None:
    """A lone LSTM layer on the padded layout returns ``c`` after each sentence's last token (recomputed from its
    outputs), with its gradient, as the step loop does."""
    torch.manual_seed(0)
    fast = RecurrentLayer(CELLS["lstm"](INPUT, HIDDEN).double(), reverse)
    reference = RecurrentLayer(fast.cell, reverse, implementation="reference")
    x = torch.randn(4, 7, INPUT, dtype=torch.float64, requires_grad=True)
    mask = make_mask([7, 2, 5, 0])
    results = []
    for layer in (fast, reference):
        with force_layout("padded"):
            out, (h, c) = layer(x, mask)
        results.append([out, h, c, *torch.autograd.grad(c.sum() + 0.5 * h.sum(), [x, *fast.cell.parameters()])])
    assert_close(*results, 1e-10)


def test_memory_recomputed_only_when_final_states_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tagger reads outputs and the sentence vector: the padded layout never recomputes the LSTM's memory for
    it; a caller that reads the final states gets it once."""
    calls = []
    kernel = KERNELS["lstm"]
    monkeypatch.setitem(KERNELS._entries, "lstm", LibraryKernel(kernel.run, kernel.num_states,
                                                                lambda *args: calls.append(1) or kernel.memory(*args)))
    torch.manual_seed(0)
    fast, _ = fast_and_reference("lstm", "bi-stacked", torch.float64)
    x = torch.randn(3, 5, INPUT, dtype=torch.float64)
    with force_layout("padded"):
        encoded = fast(x, make_mask([5, 2, 3]))
    encoded.outputs.sum().backward()
    assert encoded.sentence.shape == (3, 2 * HIDDEN) and calls == []
    assert len(encoded.final_states) == 2 and len(encoded.final_states[1][1]) == 2
    assert len(calls) == 4  # c of each layer and direction, once
    encoded.final_states
    assert len(calls) == 4


def test_layout_rule() -> None:
    """GPUs keep cuDNN's packed batches, CPUs run ragged batches padded; a forced layout wins on every device."""
    assert library_layout(torch.device("cuda")) == "packed"
    assert library_layout(torch.device("cpu")) == "padded"
    with force_layout("packed"):
        assert library_layout(torch.device("cpu")) == "packed"
    with pytest.raises(ValueError, match="layout must be one of"):
        with force_layout("sorted"):
            pass


def test_final_memory_read_under_autocast_keeps_the_parameters_precision() -> None:
    """The memory recomputed when the final states are read under bf16 autocast is the float32 one, as the rest of
    the recurrence (bf16 gates would move it by ~1e-3)."""
    torch.manual_seed(0)
    encoder = RNNEncoder(CELLS["lstm"], 16, 32)
    x, mask = torch.randn(3, 30, 16), make_mask([30, 12, 25])
    with force_layout("padded"), torch.no_grad():
        expected = encoder(x, mask).final_states[0][0][1]  # (3, H)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            c = encoder(x, mask).final_states[0][0][1]
    assert c.dtype == torch.float32
    assert (c - expected).abs().max() < 1e-6
