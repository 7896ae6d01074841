"""The project's GRU kernel (``rnnlab.kernels.gru``) computes what the per-step loop does, and CPUs run it."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from rnnlab.encoders.engine import force_layout, kernel_on
from rnnlab.kernels import KERNELS, LibraryKernel, SequenceKernel
from rnnlab.kernels.gru import gru_sequence
from test_fast_paths import ENCODERS, INPUT, assert_close, fast_and_reference, make_mask, random_states, \
    run_and_differentiate

LENGTHS = {"ragged": [6, 1, 4, 6, 2], "full": [5, 5, 5], "empty": [4, 0, 3], "trailing-padding": ([3, 0, 2], 6)}


def batch(lengths: str, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Inputs ``(B, T, I)`` that require grad and their mask, for one entry of ``LENGTHS``."""
    sizes, steps = LENGTHS[lengths] if isinstance(LENGTHS[lengths], tuple) else (LENGTHS[lengths], None)
    mask = make_mask(sizes, steps)
    return torch.randn(*mask.shape, INPUT, dtype=dtype, requires_grad=True), mask


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_kernel_equals_reference(encoder: str, lengths: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs, sentence, final states and every gradient (inputs, weights, initial states) equal the step loop's
    to 1e-10 in float64: forward, reverse, two-layer, stacked and independent BiRNNs, with ragged, full and empty
    sentences; and the kernel ran, once per layer and direction."""
    calls = count_calls(monkeypatch)
    torch.manual_seed(0)
    fast, reference = fast_and_reference("gru", encoder, torch.float64)
    x, mask = batch(lengths, torch.float64)
    for states in (None, random_states(fast, len(mask), torch.float64)):
        assert_close(run_and_differentiate(fast, x, mask, states), run_and_differentiate(reference, x, mask, states),
                     1e-10)
    num_layers, bidirectional, _, _ = ENCODERS[encoder]
    assert len(calls) == 2 * num_layers * (2 if bidirectional else 1)


@pytest.mark.parametrize("lengths", ["ragged", "full"])
def test_kernel_equals_reference_in_float32(lengths: str) -> None:
    """In float32 the kernel and the step loop differ by rounding alone (the order of additions)."""
    torch.manual_seed(0)
    fast, reference = fast_and_reference("gru", "bi-stacked", torch.float32)
    x, mask = batch(lengths, torch.float32)
    states = random_states(fast, len(mask), torch.float32)
    assert_close(run_and_differentiate(fast, x, mask, states), run_and_differentiate(reference, x, mask, states),
                 1e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [[4, 3, 1], [4, 4, 4], [3, 2, 0]], ids=["ragged", "full", "empty"])
def test_kernel_gradcheck(lengths: list[int], reverse: bool) -> None:
    """The hand-written backward against finite differences, biases included."""
    torch.manual_seed(0)
    steps, rows, h = 4, 3, 2
    sizes = torch.tensor(lengths)
    batch_sizes = (sizes.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(dim=1).tolist()

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    inputs = (rand(steps, rows, 3), rand(rows, h), rand(3 * h, 3), rand(3 * h, h), rand(3 * h), rand(3 * h))
    assert torch.autograd.gradcheck(lambda *args: gru_sequence(*args, sizes, batch_sizes, reverse), inputs)


def test_rule() -> None:
    """CPUs run GRUs on the project's kernel, GPUs on ``torch.gru`` (cuDNN); a forced layout runs ``torch.gru``."""
    assert isinstance(KERNELS["gru"], LibraryKernel) and isinstance(KERNELS["gru_sequence"], SequenceKernel)
    assert kernel_on("gru", torch.device("cpu")) == "gru_sequence"
    assert kernel_on("gru", torch.device("cuda")) == "gru"
    assert kernel_on("lstm", torch.device("cpu")) == "lstm"
    with force_layout("padded"):
        assert kernel_on("gru", torch.device("cpu")) == "gru"


@pytest.mark.parametrize("lengths", ["ragged", "full"])
def test_cpu_never_runs_torch_gru(lengths: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``torch.gru`` gone from the registry's library kernel, a GRU encoder on the CPU still runs (through
    the project's kernel); forcing a layout brings ``torch.gru`` back."""
    calls = count_calls(monkeypatch)
    monkeypatch.setitem(KERNELS._entries, "gru", LibraryKernel(None, num_states=1, cpu="gru_sequence"))
    torch.manual_seed(0)
    fast, _ = fast_and_reference("gru", "bi-stacked", torch.float64)
    x, mask = batch(lengths, torch.float64)
    fast(x, mask).outputs.sum().backward()
    assert len(calls) == 4
    with force_layout("padded"), pytest.raises(TypeError, match="not callable"):
        fast(x, mask)


def count_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replaces the registered ``gru_sequence`` with a wrapper that records each call in the returned list."""
    calls: list[int] = []
    kernel = KERNELS["gru_sequence"]
    monkeypatch.setitem(KERNELS._entries, "gru_sequence",
                        SequenceKernel(lambda *args: calls.append(1) or kernel.run(*args), kernel.num_states))
    return calls
