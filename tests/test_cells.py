"""Cell math: CIFG's coupled gates, peephole reducing to LSTM."""

from __future__ import annotations

import torch

from rnnlab.cells import CIFGCell, LSTMCell, PeepholeLSTMCell
from rnnlab.encoders import RNNEncoder


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
