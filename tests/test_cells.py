"""Cell math: CIFG's coupled gates, peephole reducing to LSTM, IndRNN, sLSTM and the Mogrifier against their
equations; and each cell registered with its YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF
from rnnlab.cells import CELLS, CIFGCell, ElmanCell, LSTMCell, PeepholeLSTMCell
from rnnlab.cells.discovery import cell_factory, cell_names, cell_problems
from rnnlab.cells.indrnn import IndRNNCell
from rnnlab.cells.mogrifier import MogrifierLSTMCell
from rnnlab.cells.slstm import SLSTMCell
from rnnlab.encoders import RecurrentLayer, RNNEncoder
from rnnlab.registry import Registry


def test_cifg_input_gate_is_one_minus_forget_gate() -> None:
    """The step equals an explicit ``i = 1 - f`` LSTM step, and the fused LSTM weights give σ(z_i) = 1 - σ(z_f)."""
    torch.manual_seed(0)
    cell = CIFGCell(3, 4).double()
    x, h, c = (torch.randn(5, n, dtype=torch.float64) for n in (3, 4, 4))
    z = x @ cell.weight_ih.t() + h @ cell.weight_hh.t() + cell.bias  # (B, 3H) rows f, g, o
    f, g, o = torch.sigmoid(z[:, :4]), torch.tanh(z[:, 4:8]), torch.sigmoid(z[:, 8:])
    c_new = f * c + (1 - f) * g
    h_new, (_, c_out) = cell(x, (h, c))
    assert torch.allclose(c_out, c_new, atol=1e-14)
    assert torch.allclose(h_new, o * torch.tanh(c_new), atol=1e-14)

    _, (w_ih, w_hh, b_ih, b_hh) = cell.fused_kernel()
    z4 = x @ w_ih.t() + h @ w_hh.t() + b_ih + b_hh  # (B, 4H) rows i, f, g, o
    assert torch.allclose(torch.sigmoid(z4[:, :4]), 1 - torch.sigmoid(z4[:, 4:8]), atol=1e-15)


def test_peephole_with_zero_peepholes_equals_lstm() -> None:
    torch.manual_seed(0)
    for peephole in ("full", "diagonal"):
        for implementation in ("auto", "reference"):
            lstm = RNNEncoder(LSTMCell, 3, 4, 2, True, implementation=implementation).double()
            cell = lambda i, h: PeepholeLSTMCell(i, h, peephole=peephole, peephole_init=0.0)  # noqa: E731
            peep = RNNEncoder(cell, 3, 4, 2, True, implementation=implementation).double()
            peep.load_state_dict(lstm.state_dict(), strict=False)
            x = torch.randn(3, 5, 3, dtype=torch.float64)
            mask = torch.arange(5) < torch.tensor([[5], [2], [4]])
            a, b = lstm(x, mask), peep(x, mask)
            assert torch.allclose(a.outputs, b.outputs, atol=1e-12)
            assert torch.allclose(a.sentence, b.sentence, atol=1e-12)


def test_indrnn_equals_its_equation_with_u_clamped() -> None:
    """``h(n) = max(0, W x(n) + b + u × h(n-1))`` with ``u`` clamped to ``±max_recurrent_weight``; a clamped
    weight gets no gradient."""
    torch.manual_seed(0)
    cell = IndRNNCell(3, 4, max_recurrent_weight=0.9).double()
    with torch.no_grad():
        cell.weight_hh.copy_(torch.tensor([0.5, -0.3, 1.7, -2.0]))
        cell.bias.fill_(0.5)  # units active most of the time, so the recurrence counts
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    out, (h_n,) = RecurrentLayer(cell)(x, torch.ones(2, 6, dtype=torch.bool))
    u, h, expected = torch.tensor([0.5, -0.3, 0.9, -0.9], dtype=torch.float64), torch.zeros(2, 4), []
    for t in range(6):
        h = torch.clamp(x[:, t] @ cell.weight_ih.t() + cell.bias + u * h, min=0)
        expected.append(h)
    assert torch.allclose(out, torch.stack(expected, dim=1), atol=1e-14)
    assert torch.equal(h_n, out[:, -1])
    out.sum().backward()
    assert (cell.weight_hh.grad[:2] != 0).all() and (cell.weight_hh.grad[2:] == 0).all()
    free = IndRNNCell(3, 4, max_recurrent_weight=None)
    assert free.recurrent_weight() is free.weight_hh and ((free.weight_hh >= 0) & (free.weight_hh <= 1)).all()
    with pytest.raises(ValueError, match="max_recurrent_weight"):
        IndRNNCell(3, 4, max_recurrent_weight=0.0)


@pytest.mark.parametrize("forget_gate", ["exp", "sigmoid"])
def test_slstm_equals_the_unstabilised_equations(forget_gate: str) -> None:
    """The stabiliser cancels: on small inputs the paper's plain ``c / n`` (exp gates, no ``m``) gives the same
    ``h``, and the cell's ``c``, ``n`` are the plain ones divided by ``exp(m)``."""
    torch.manual_seed(0)
    cell = SLSTMCell(3, 4, forget_gate=forget_gate).double()
    with torch.no_grad():
        for parameter in cell.parameters():
            parameter.normal_(std=0.5)
    state = cell.initial_state(2, torch.device("cpu"), torch.float64)
    h, c, n = (torch.zeros(2, 4, dtype=torch.float64) for _ in range(3))
    for x_t in torch.randn(8, 2, 3, dtype=torch.float64):
        pre_i, pre_f, pre_z, pre_o = (x_t @ cell.weight_ih.t() + h @ cell.weight_hh.t() + cell.bias).split(4, dim=-1)
        f = torch.exp(pre_f) if forget_gate == "exp" else torch.sigmoid(pre_f)
        c = f * c + torch.exp(pre_i) * torch.tanh(pre_z)
        n = f * n + torch.exp(pre_i)
        h = torch.sigmoid(pre_o) * c / n
        h_cell, state = cell(x_t, state)
        assert torch.allclose(h_cell, h, atol=1e-12)
        assert torch.allclose(state[1] * torch.exp(state[3]), c, rtol=1e-12)
        assert torch.allclose(state[2] * torch.exp(state[3]), n, rtol=1e-12)


def test_the_default_slstm_keeps_writing_on_a_long_stream() -> None:
    """On a stream (a stateful LM carries the state across windows) the exponential forget gate with the default
    forget bias 1 gives each new input a weight e^-1 below the memory per step: after 300 steps new inputs no longer
    count, and the model sits at the unigram level. The default YAML's sigmoid forget gate keeps writing."""
    forget_gate = OmegaConf.load(CONF / "model" / "cell" / "slstm.yaml").forget_gate

    def write_weight(gate: str) -> float:
        torch.manual_seed(0)
        cell = SLSTMCell(16, 16, forget_bias=1.0, forget_gate=gate)
        state = cell.initial_state(4, torch.device("cpu"), torch.float32)
        with torch.no_grad():
            for x_t in 0.1 * torch.randn(300, 4, 16):
                _, state = cell(x_t, state)
            return cell.gates(0.1 * torch.randn(4, 16), state)["input"].mean().item()

    assert write_weight(forget_gate) > 0.5
    assert write_weight("exp") < 1e-30


def test_slstm_stays_finite_with_large_preactivations() -> None:
    """Pre-activations in the thousands (exp overflows float32 beyond 88): outputs, states and gradients stay
    finite, and the normaliser never falls below 1."""
    torch.manual_seed(0)
    cell = SLSTMCell(3, 4)
    with torch.no_grad():
        for parameter in cell.parameters():
            parameter.normal_(std=300.0)
    x = torch.randn(3, 12, 3, requires_grad=True)
    out, state = RecurrentLayer(cell)(x, torch.arange(12) < torch.tensor([[12], [7], [0]]))
    h_n, c_n, n_n, m_n = state
    assert all(torch.isfinite(s).all() for s in (out, h_n, c_n, n_n, m_n[:2]))  # m stays -inf for the empty one
    assert (n_n[:2] >= 1).all()
    grads = torch.autograd.grad(out.sum() + state[0].sum(), [x, *cell.parameters()])
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name,block", [("lstm", 1), ("peephole", 1), ("slstm", 1), ("cifg", 0), ("min_lstm", 0)])
def test_forget_bias_sets_the_forget_rows_only(name: str, block: int) -> None:
    cell = cell_factory(name, forget_bias=2.5)(3, 4)
    expected = torch.zeros_like(cell.bias)
    expected[4 * block:4 * (block + 1)] = 2.5  # hidden size 4
    assert torch.equal(cell.bias.detach(), expected)


def test_lstm_input_bias_sets_the_input_rows_beside_the_forget_rows() -> None:
    cell = cell_factory("lstm", forget_bias=3.0, input_bias=-3.0)(3, 4)
    expected = torch.tensor([-3.0] * 4 + [3.0] * 4 + [0.0] * 8)  # input, forget, candidate, output
    assert torch.equal(cell.bias.detach(), expected)


def mogrifier_reference(x: torch.Tensor, cell: MogrifierLSTMCell) -> torch.Tensor:
    """The outputs over ``x`` ``(B, T, I)``, written from the paper's equations with its indices: x^(-1) = x(n),
    h^0 = h(n-1), x^i = 2σ(Q^i h^(i-1)) × x^(i-2) for odd i, h^i = 2σ(R^i x^(i-1)) × h^(i-2) for even i."""
    r, size = cell.rounds, cell.hidden_size
    matrices = {i: cell.round_matrix(i - 1) for i in range(1, r + 1)}  # Q^i for odd i, R^i for even i
    h, c, outputs = torch.zeros(len(x), size, dtype=x.dtype), torch.zeros(len(x), size, dtype=x.dtype), []
    for step in range(x.shape[1]):
        xs, hs = {-1: x[:, step]}, {0: h}
        for i in range(1, r + 1):
            if i % 2 == 1:
                xs[i] = 2 * torch.sigmoid(hs[i - 1] @ matrices[i].t()) * xs[i - 2]
            else:
                hs[i] = 2 * torch.sigmoid(xs[i - 1] @ matrices[i].t()) * hs[i - 2]
        x_last, h_last = xs[max(xs)], hs[max(hs)]  # the last round of each
        z_i, z_f, z_g, z_o = (x_last @ cell.weight_ih.t() + h_last @ cell.weight_hh.t() + cell.bias).split(size, -1)
        c = torch.sigmoid(z_f) * c + torch.sigmoid(z_i) * torch.tanh(z_g)
        h = torch.sigmoid(z_o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("rounds,rank", [(5, None), (4, 2), (1, None)])
def test_mogrifier_equals_the_paper_equations(rounds: int, rank: int | None) -> None:
    """Outputs and every parameter's gradient equal the reference to 1e-10 in float64, over a sequence."""
    torch.manual_seed(0)
    cell = MogrifierLSTMCell(3, 4, rounds=rounds, rank=rank).double()
    with torch.no_grad():
        for parameter in cell.parameters():
            parameter.normal_(std=0.7)  # rounds far from the identity
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    out, _ = RecurrentLayer(cell)(x, torch.ones(2, 6, dtype=torch.bool))
    expected = mogrifier_reference(x, cell)
    assert torch.allclose(out, expected, atol=1e-10)
    assert not torch.allclose(out, RecurrentLayer(zero_rounds(cell))(x, torch.ones(2, 6, dtype=torch.bool))[0])
    grads = torch.autograd.grad(out.pow(2).sum(), list(cell.parameters()))
    reference = torch.autograd.grad(expected.pow(2).sum(), list(cell.parameters()))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads, reference))


def zero_rounds(cell: MogrifierLSTMCell) -> LSTMCell:
    """An LSTM with ``cell``'s LSTM weights."""
    lstm = LSTMCell(cell.input_size, cell.hidden_size).double()
    lstm.load_state_dict(cell.state_dict(), strict=False)
    return lstm


def test_mogrifier_with_no_rounds_is_the_lstm() -> None:
    torch.manual_seed(0)
    lstm = RNNEncoder(LSTMCell, 3, 4, 2, True).double()
    mogrifier = RNNEncoder(lambda i, h: MogrifierLSTMCell(i, h, rounds=0), 3, 4, 2, True).double()
    mogrifier.load_state_dict(lstm.state_dict())
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    mask = torch.arange(5) < torch.tensor([[5], [2], [4]])
    assert torch.allclose(lstm(x, mask).outputs, mogrifier(x, mask).outputs, atol=1e-12)
    with pytest.raises(ValueError, match="rounds"):
        MogrifierLSTMCell(3, 4, rounds=-1)
    with pytest.raises(ValueError, match="rank"):
        MogrifierLSTMCell(3, 4, rank=0)


# ------------------------------------------------------------- registration: one class and one YAML per cell
def test_every_shipped_cell_is_registered_with_its_yaml() -> None:
    assert cell_names() == ["cifg", "elman", "gru", "indrnn", "lstm", "min_gru", "min_lstm", "mogrifier", "peephole",
                            "slstm"]
    assert CELLS["lstm"] is LSTMCell and CELLS["slstm"] is SLSTMCell


def test_a_cell_without_its_yaml_or_a_yaml_without_its_cell_names_the_missing_part(tmp_path: Path) -> None:
    cells = Registry("cell", "model/cell")
    cells.register("lstm")(LSTMCell)
    cells.register("elman")(ElmanCell)
    (tmp_path / "lstm.yaml").write_text("_target_: rnnlab.cells.LSTMCell\n_partial_: true\n")
    (tmp_path / "orphan.yaml").write_text("_target_: rnnlab.cells.orphan.OrphanCell\n_partial_: true\n")
    (tmp_path / "elman.yaml").write_text("_target_: rnnlab.cells.LSTMCell\n_partial_: true\n")
    assert cell_problems(cells, tmp_path) == [
        f"{tmp_path}/elman.yaml builds rnnlab.cells.LSTMCell, but the cell registered as 'elman' is "
        "rnnlab.cells.elman.ElmanCell; point its _target_ at the registered class",
        f"{tmp_path}/orphan.yaml names no registered cell; register its class with @CELLS.register('orphan') "
        "(from rnnlab.cells import CELLS) in its module in src/rnnlab/cells/"]
    (tmp_path / "elman.yaml").unlink()
    assert cell_problems(cells, tmp_path)[0] == (
        f"cell 'elman' (rnnlab.cells.elman.ElmanCell) is registered but has no {tmp_path}/elman.yaml; add it with "
        "'_target_: rnnlab.cells.elman.ElmanCell', '_partial_: true' and the cell's options")
