"""The fast paths (library kernels, sequence kernels) compute exactly what the per-step reference loop does."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import Tensor, nn

from rnnlab.cells.discovery import cell_factory, cell_names
from rnnlab.encoders import RecurrentLayer, RNNEncoder
from rnnlab.kernels.peephole import peephole_lstm_sequence
from rnnlab.kernels.scan import METHODS, force_method
from rnnlab.run.precision import cpu_bf16_support

INPUT, HIDDEN = 3, 4
# Every cell of conf/model/cell/, as a run builds it, and variants that matter here: peepholes that are not zero
# (else their terms go untested) and a gate without a kernel ("auto" falls back to the per-step loop).
CELLS = {name: cell_factory(name) for name in cell_names()} | {
    "peephole-full": cell_factory("peephole", peephole="full", peephole_init=0.3),
    "peephole-diagonal": cell_factory("peephole", peephole="diagonal", peephole_init=0.3),
    "peephole-hard-sigmoid": cell_factory("peephole", gate="hard_sigmoid", peephole_init=0.3),
}
FAST_CELLS = [name for name, factory in CELLS.items() if factory(INPUT, HIDDEN).fused_kernel() is not None]
# (num_layers, bidirectional, style, reverse)
ENCODERS = {
    "forward": (1, False, "stacked", False),
    "reverse": (1, False, "stacked", True),
    "2-layer-reverse": (2, False, "stacked", True),
    "bi-stacked": (2, True, "stacked", False),
    "bi-independent": (2, True, "independent", False),
}
TOLERANCE = {torch.float64: 1e-5, torch.float32: 1e-4}


def make_mask(lengths: list[int], steps: int | None = None) -> Tensor:
    steps = steps or max(lengths)
    return torch.arange(steps) < torch.tensor(lengths).unsqueeze(1)  # (B, T)


def random_states(encoder: RNNEncoder, batch: int, dtype: torch.dtype) -> list[list[tuple[Tensor, ...]]]:
    """Non-zero initial states that require grad, so their gradients are compared too."""
    return [[tuple(torch.randn(batch, HIDDEN, dtype=dtype, requires_grad=True)
                   for _ in range(direction.cell.num_states)) for direction in layer] for layer in encoder.layers]


def run_and_differentiate(encoder: RNNEncoder, x: Tensor, mask: Tensor,
                          states: list[list[tuple[Tensor, ...]]] | None) -> list[Tensor]:
    """Outputs, sentence, final states, and the gradients of a loss touching all of them."""
    result = encoder(x, mask, states)
    finals = [s for layer in result.final_states for state in layer for s in state]
    weights = torch.linspace(-1, 1, result.outputs.numel(), dtype=x.dtype).view_as(result.outputs)
    loss = (result.outputs * weights).sum() + sum((0.7 + k) * s.sum() for k, s in enumerate(finals))
    leaves = [x, *encoder.parameters()]
    if states is not None:
        leaves += [s for layer in states for state in layer for s in state]
    return [result.outputs, result.sentence, *finals, *torch.autograd.grad(loss, leaves)]


def assert_close(got: list[Tensor], expected: list[Tensor], tolerance: float) -> None:
    assert len(got) == len(expected)
    for k, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape, k
        assert (a - b).abs().max().item() < tolerance, f"tensor {k}: {(a - b).abs().max().item():.3g}"


def fast_and_reference(cell: str, encoder: str, dtype: torch.dtype) -> tuple[RNNEncoder, RNNEncoder]:
    num_layers, bidirectional, style, reverse = ENCODERS[encoder]
    fast = RNNEncoder(CELLS[cell], INPUT, HIDDEN, num_layers, bidirectional, style, reverse).to(dtype)
    reference = RNNEncoder(CELLS[cell], INPUT, HIDDEN, num_layers, bidirectional, style, reverse,
                           implementation="reference").to(dtype)
    reference.load_state_dict(fast.state_dict())
    return fast, reference


@pytest.mark.parametrize("dtype,lengths", [(torch.float64, [6, 1, 4, 6, 2]), (torch.float64, [5, 5, 5]),
                                          (torch.float32, [6, 1, 4, 6, 2])], ids=["float64-ragged", "float64-full",
                                                                                "float32-ragged"])
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("cell", CELLS)
def test_encoder_fast_path_equals_reference(cell: str, encoder: str, dtype: torch.dtype,
                                            lengths: list[int]) -> None:
    torch.manual_seed(0)
    fast, reference = fast_and_reference(cell, encoder, dtype)
    x = torch.randn(len(lengths), max(lengths), INPUT, dtype=dtype, requires_grad=True)
    mask = make_mask(lengths)
    for states in (None, random_states(fast, len(lengths), dtype)):
        expected = run_and_differentiate(reference, x, mask, states)
        assert_close(run_and_differentiate(fast, x, mask, states), expected, TOLERANCE[dtype])


@pytest.mark.parametrize("cell", FAST_CELLS)
def test_empty_sentences_and_trailing_padding(cell: str) -> None:
    """A sentence of length 0 keeps its initial state; padding columns past every sentence are harmless."""
    torch.manual_seed(0)
    fast, reference = fast_and_reference(cell, "bi-stacked", torch.float64)
    x = torch.randn(3, 6, INPUT, dtype=torch.float64, requires_grad=True)
    mask = make_mask([4, 0, 2], steps=6)
    states = random_states(fast, 3, torch.float64)
    assert_close(run_and_differentiate(fast, x, mask, states), run_and_differentiate(reference, x, mask, states),
                 1e-10)


@pytest.mark.parametrize("cell", FAST_CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_fast_path_equals_reference(cell: str, reverse: bool) -> None:
    torch.manual_seed(0)
    fast = RecurrentLayer(CELLS[cell](INPUT, HIDDEN).double(), reverse)
    reference = RecurrentLayer(fast.cell, reverse, implementation="reference")
    x = torch.randn(4, 5, INPUT, dtype=torch.float64, requires_grad=True)
    mask = make_mask([5, 1, 3, 5])
    results = []
    for layer in (fast, reference):
        out, state = layer(x, mask)
        loss = (out * torch.arange(out.numel(), dtype=out.dtype).view_as(out)).sum() + sum(s.sum() for s in state)
        results.append([out, *state, *torch.autograd.grad(loss, [x, *fast.cell.parameters()])])
    assert_close(*results, 1e-10)


@pytest.mark.parametrize("cell", ["lstm", "peephole-full"])
def test_dropout_between_layers(cell: str) -> None:
    """Dropout is active in training mode and off in evaluation mode, where both paths agree."""
    torch.manual_seed(0)
    fast = RNNEncoder(CELLS[cell], INPUT, HIDDEN, 2, True, dropout=0.5).double()
    reference = RNNEncoder(CELLS[cell], INPUT, HIDDEN, 2, True, dropout=0.5, implementation="reference").double()
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(3, 5, INPUT, dtype=torch.float64)
    mask = make_mask([5, 2, 4])
    assert not torch.equal(fast(x, mask).outputs, fast(x, mask).outputs)
    fast.eval()
    reference.eval()
    assert torch.allclose(fast(x, mask).outputs, reference(x, mask).outputs, atol=1e-12)


@pytest.mark.parametrize("peephole", ["full", "diagonal"])
@pytest.mark.parametrize("reverse", [False, True])
def test_peephole_kernel_gradcheck(peephole: str, reverse: bool) -> None:
    torch.manual_seed(0)
    steps, batch, h = 4, 3, 2
    lengths = torch.tensor([4, 3, 1])
    batch_sizes = (lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(dim=1).tolist()

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    w_ci, w_co = (rand(2 * h, h), rand(h, h)) if peephole == "full" else (rand(2 * h), rand(h))
    inputs = (rand(steps, batch, 3), rand(batch, h), rand(batch, h), rand(4 * h, 3), rand(4 * h, h), rand(4 * h),
              w_ci, w_co)
    assert torch.autograd.gradcheck(
        lambda *args: peephole_lstm_sequence(*args, lengths, batch_sizes, reverse), inputs)


def test_padding_invariance() -> None:
    """A sentence alone gives the same outputs and sentence vector as inside a batch of longer ones."""
    torch.manual_seed(0)
    for cell in CELLS:
        for implementation in ("auto", "reference"):
            encoder = RNNEncoder(CELLS[cell], INPUT, HIDDEN, 2, True, implementation=implementation).double()
            x = torch.randn(3, 7, INPUT, dtype=torch.float64)
            batch = encoder(x, make_mask([7, 3, 5]))
            alone = encoder(x[1:2, :3], make_mask([3]))
            assert torch.allclose(batch.outputs[1, :3], alone.outputs[0], atol=1e-12), (cell, implementation)
            assert torch.allclose(batch.sentence[1], alone.sentence[0], atol=1e-12), (cell, implementation)
            assert torch.all(batch.outputs[1, 3:] == 0)


def copy_into_torch(encoder: RNNEncoder, module: nn.RNNBase) -> None:
    """Copies an ``RNNEncoder``'s weights into PyTorch's RNN of the same equations, through each cell's
    ``fused_kernel`` parameters ``[w_ih, w_hh, b_ih, b_hh]`` (PyTorch's layout)."""
    with torch.no_grad():
        for k, layer in enumerate(encoder.layers):
            for d, direction in enumerate(layer):
                suffix = f"_l{k}" + ("_reverse" if d else "")
                for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), direction.cell.fused_kernel()[1]):
                    getattr(module, name + suffix).copy_(value)


# The reference implementation of each cell that has one: PyTorch's RNN of the same equations. A new cell with
# such a twin adds one line here.
TORCH_TWINS = {"elman": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@pytest.mark.parametrize("implementation", ["auto", "reference"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (2, True)],
                         ids=["layer", "2-layer", "bi-2-layer"])
@pytest.mark.parametrize("cell", TORCH_TWINS)
def test_cells_equal_torch_modules(cell: str, num_layers: int, bidirectional: bool, implementation: str) -> None:
    """Outputs and input gradients equal PyTorch's, with random biases so every bias term counts."""
    torch.manual_seed(0)
    encoder = RNNEncoder(CELLS[cell], INPUT, HIDDEN, num_layers, bidirectional, implementation=implementation).double()
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.normal_(std=0.5)
    module = TORCH_TWINS[cell](INPUT, HIDDEN, num_layers, bidirectional=bidirectional, batch_first=True).double()
    copy_into_torch(encoder, module)
    x = torch.randn(3, 5, INPUT, dtype=torch.float64, requires_grad=True)
    ours = encoder(x, make_mask([5, 5, 5])).outputs
    theirs = module(x)[0]
    assert (ours - theirs).abs().max() < 1e-10
    assert_close(torch.autograd.grad(ours.pow(2).sum(), x), torch.autograd.grad(theirs.pow(2).sum(), x), 1e-10)


@pytest.mark.parametrize("cell", FAST_CELLS)
def test_auto_never_runs_the_step_loop(cell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sigmoid cells take their whole-sequence kernel: with the per-step ``cell.forward`` gone, "auto" still
    computes the reference loop's outputs, final states and gradients."""
    torch.manual_seed(0)
    fast, reference = fast_and_reference(cell, "bi-stacked", torch.float64)
    x = torch.randn(3, 5, INPUT, dtype=torch.float64, requires_grad=True)
    mask = make_mask([5, 1, 3])
    expected = run_and_differentiate(reference, x, mask, None)
    for layer in fast.layers:
        for direction in layer:
            monkeypatch.setattr(direction.cell, "forward", None)  # calling it would raise
    assert_close(run_and_differentiate(fast, x, mask, None), expected, TOLERANCE[torch.float64])


@pytest.mark.skipif(not cpu_bf16_support()[0], reason=f"no bf16 on this CPU: {cpu_bf16_support()[1]}")
@pytest.mark.parametrize("lengths", [[5, 2, 4], [5, 5, 5]], ids=["packed", "unpadded"])
@pytest.mark.parametrize("cell", FAST_CELLS)
def test_fast_paths_run_under_autocast(cell: str, lengths: list[int]) -> None:
    """bf16 autocast on CPU: every fast path runs, forward and backward, and stays close to float32."""
    torch.manual_seed(0)
    encoder = RNNEncoder(CELLS[cell], INPUT, HIDDEN, 2, True)
    x = torch.randn(3, 5, INPUT)
    mask = make_mask(lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = encoder(x, mask).outputs
    outputs.float().sum().backward()
    assert (outputs.float() - encoder(x, mask).outputs).abs().max() < 0.05


@pytest.mark.parametrize("cell, implementation", [("lstm", "auto"), ("lstm", "reference"), ("peephole", "auto")],
                         ids=["library-kernel", "step-loop", "sequence-kernel"])
def test_memory_grows_past_256_under_autocast(cell: str, implementation: str) -> None:
    """Under bf16 autocast a memory that gains 1 a step reaches 400 after 400 steps, as in float32, in an encoder
    and in a ``RecurrentLayer`` run on its own. In bf16 itself it stops at 256, where the next representable
    number is 258 and c + i·g (i·g = 1) rounds back to c."""
    encoder = RNNEncoder(CELLS[cell], INPUT, HIDDEN, implementation=implementation)
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            parameter.fill_(30.0 if name.endswith("bias") else 0.0)  # every gate σ(30) = 1, candidate tanh(30) = 1
    layer = RecurrentLayer(CELLS[cell](INPUT, HIDDEN), implementation=implementation)  # a layer on its own
    layer.load_state_dict({name.removeprefix("layers.0.0."): value for name, value in encoder.state_dict().items()})
    x, mask = torch.zeros(1, 400, INPUT), make_mask([400])
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        memories = [encoder(x, mask).final_states[0][0][1], layer(x, mask)[1][1]]  # each (1, H)
    for c in memories:
        assert torch.allclose(c, torch.full_like(c, 400.0)), c


# What a minimal cell's gates leave of h(t-1) at each step, a(t) of h(t) = a(t) × h(t-1) + b(t).
SCAN_DECAY = {"min_gru": lambda gates: 1 - gates["update"], "min_lstm": lambda gates: gates["forget"]}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", SCAN_DECAY)
def test_linear_recurrence_over_a_long_sequence(cell: str, reverse: bool, method: str) -> None:
    """T = 300 with saturating gates: the product of a(t) over the sentence underflows even in float64 (so a
    linear-space scan would divide by zero), yet the log-space scan (GPUs) and the loop (CPUs) equal the cell's
    step loop, forward and backward, from an initial state of either sign, and stay finite."""
    torch.manual_seed(0)
    fast = RecurrentLayer(CELLS[cell](INPUT, HIDDEN).double(), reverse)
    reference = RecurrentLayer(fast.cell, reverse, implementation="reference")
    with torch.no_grad():
        for parameter in fast.cell.parameters():
            parameter.normal_(std=3.0)
    x = torch.randn(3, 300, INPUT, dtype=torch.float64, requires_grad=True)
    mask = make_mask([300, 170, 0])
    h0 = torch.randn(3, HIDDEN, dtype=torch.float64, requires_grad=True)
    decay = torch.stack([SCAN_DECAY[cell](fast.cell.gates(x[0, t:t + 1], (h0[:1],))) for t in range(300)])
    assert (decay.prod(dim=0) == 0).any()  # (1, H): A(T) = 0 in linear space
    weights = torch.randn(3, 300, HIDDEN, dtype=torch.float64)
    results = []
    for layer in (fast, reference):
        with force_method(method):
            out, (h_n,) = layer(x, mask, (h0,))
        loss = (out * weights).sum() + h_n.sum()
        results.append([out, h_n, *torch.autograd.grad(loss, [x, h0, *fast.cell.parameters()])])
    assert all(torch.isfinite(value).all() for value in results[0])
    assert_close(*results, 1e-5)


@pytest.mark.parametrize("style", ["stacked", "independent"])
def test_stepping_the_forward_direction_equals_the_encoder(style: str) -> None:
    """``RNNEncoder.step``, one position at a time, computes the forward direction's outputs and states of a
    two-layer BiLSTM; in the stacked style only its first layer steps alone."""
    torch.manual_seed(0)
    encoder = RNNEncoder(CELLS["lstm"], INPUT, HIDDEN, 2, True, style=style).double()
    x = torch.randn(3, 5, INPUT, dtype=torch.float64)
    encoded = encoder(x, make_mask([5, 5, 5]))
    depth = 1 if style == "stacked" else 2
    states = None
    for t in range(5):
        step = encoder.step(x[:, t], states, num_layers=depth, gates=True)
        states = step.states
        if depth == 2:  # the forward direction's top layer, the first half of the token representation
            torch.testing.assert_close(step.hidden, encoded.outputs[:, t, :HIDDEN])
    for k in range(depth):
        torch.testing.assert_close(states[k], encoded.final_states[k][0])
    assert [sorted(gates) for gates in step.gates] == [sorted(encoder.state_layout.gates)] * depth
    if style == "stacked":
        with pytest.raises(ValueError, match="only the first layer of a stacked BiRNN steps alone"):
            encoder.step(x[:, 0], num_layers=2)
