"""GRU over a whole sequence, with a hand-written backward pass: the CPU's GRU kernel.

On CPUs ``torch.gru`` has no oneDNN primitive: PyTorch runs it step by step with autograd over a dozen small
operations a step, and took 2.2–2.3× ``torch.lstm``'s time at T = 2,000 (``docs/benchmarks.md``). Here the forward
loop runs without autograd in six operations a step, writing into preallocated buffers, and the backward loop in
three; everything that does not depend on the recurrence (the input projections, the gate derivatives, the weight
gradients) is done in single large operations over all steps.

Layout and slots as ``rnnlab.kernels.peephole``: time-major ``(T, B, ...)``, the batch sorted by decreasing length,
hidden states in a ``(T + 1, B, H)`` slot buffer. The math is ``GRUCell`` (PyTorch's formulation, rows reset,
update, candidate)::

    r = σ(W_ir x + b_ir + W_hr h + b_hr);   z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r (W_hn h + b_hn));   h' = n + z (h - n)

and its backward, with ``dh`` the gradient reaching ``h'``::

    d_n = dh (1 - z)(1 - n²);   d_z = dh (h - n) z (1 - z);   d_r = d_n (W_hn h + b_hn) r (1 - r)
    dh_prev = dh z + [d_r, d_z, d_n r] W_hh

(``d_`` of a gate's pre-activation), so each step multiplies ``dh`` by a ``(3, H)`` block of coefficients known
before the loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnlab.kernels.batch import SortedBatch, per_step_views, real_tokens, running_steps, slot_views, state_slots
from rnnlab.kernels.registry import KERNELS, SequenceKernel, State


class GRUFunction(torch.autograd.Function):
    """Autograd function; use ``gru_sequence``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                lengths: Tensor, batch_sizes: list[int], reverse: bool) -> tuple[Tensor, Tensor]:
        steps, batch, _ = x.shape
        h = w_hh.shape[1]
        rows = torch.arange(batch, device=x.device)
        padded = batch_sizes[0] != batch_sizes[-1] or batch_sizes[0] != batch
        hs = x.new_zeros(steps + 1, batch, h)  # (T+1, B, H) slots; zeros keep unused slots finite
        init = lengths if reverse else torch.zeros_like(lengths)  # (B,) slot of each initial state
        hs[init, rows] = h0
        # (T, B, 3H) every input projection in one product; each step turns its rows into r, z, n in place.
        gates = torch.addmm(b_ih, x.reshape(-1, x.shape[2]), w_ih.t()).view(steps, batch, 3 * h)
        # (T, B, 3H) W_hh h(t-1) + b_hh for backward; zeros where padding leaves it unwritten (backward reads it all)
        hidden = (x.new_zeros if padded else x.new_empty)(steps, batch, 3 * h)
        g_rz, g_n, g_r, g_z, hh, hh_rz, hh_n = per_step_views(
            batch_sizes, gates[..., :2 * h], gates[..., 2 * h:], gates[..., :h], gates[..., h:2 * h], hidden,
            hidden[..., :2 * h], hidden[..., 2 * h:])
        h_prev, h_new = slot_views(hs, batch_sizes, reverse)
        w_hh_t = w_hh.t()
        for t in running_steps(batch_sizes, reverse):
            torch.addmm(b_hh, h_prev[t], w_hh_t, out=hh[t])  # (n, 3H)
            g_rz[t].add_(hh_rz[t]).sigmoid_()  # (n, 2H) r, z
            g_n[t].addcmul_(g_r[t], hh_n[t]).tanh_()  # (n, H) the candidate
            torch.lerp(g_n[t], h_prev[t], g_z[t], out=h_new[t])  # n + z (h - n)
        _, new_slots = state_slots(steps, reverse)
        h_n = hs[torch.zeros_like(lengths) if reverse else lengths, rows]
        out = hs[new_slots]  # (T, B, H)
        if reverse:  # initial states sit in padding slots; a forward run leaves those zero
            out = out * real_tokens(steps, lengths)
        ctx.save_for_backward(x, gates, hidden, hs, w_ih, w_hh, lengths)
        ctx.batch_sizes, ctx.reverse, ctx.padded = batch_sizes, reverse, padded
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor | None, grad_h_n: Tensor | None) -> tuple[Tensor | None, ...]:
        x, gates, hidden, hs, w_ih, w_hh, lengths = ctx.saved_tensors
        batch_sizes, reverse = ctx.batch_sizes, ctx.reverse
        steps, batch, three_h = gates.shape
        h = three_h // 3
        rows = torch.arange(batch, device=gates.device)
        prev_slots, new_slots = state_slots(steps, reverse)
        real = real_tokens(steps, lengths) if ctx.padded else None  # (T, B, 1)

        # Gradients reaching each state slot; the loop adds what flows back through the recurrence.
        d_hs = gates.new_zeros(steps + 1, batch, h)  # (T+1, B, H)
        if grad_out is not None:
            d_hs[new_slots] += grad_out if real is None else grad_out * real  # padding passes nothing back
        if grad_h_n is not None:
            d_hs[torch.zeros_like(lengths) if reverse else lengths, rows] += grad_h_n

        # (T, B, 4H) gradients of n, r, z of W_hh h(t-1) + b_hh, then of the candidate's pre-activation: the first
        # 3H columns are the recurrent product's (its rows taken n, r, z), the last 3H the input projection's.
        d = (gates.new_zeros if ctx.padded else gates.new_empty)(steps, batch, 4 * h)
        coefficients, to_candidate = _coefficients(gates, hidden, hs[new_slots], real)
        w_nrz = torch.cat([w_hh[2 * h:], w_hh[:2 * h]])  # (3H, H) W_hh's rows n, r, z
        d_nrz, d_flat, z, coefficient = per_step_views(  # (n, 3, H), (n, 3H), (n, H), (n, 3, H)
            batch_sizes, d[..., :three_h].view(steps, batch, 3, h), d[..., :three_h], gates[..., h:2 * h],
            coefficients)
        dh_prev, dh = slot_views(d_hs, batch_sizes, reverse)
        _, dh_3 = slot_views(d_hs.unsqueeze(2), batch_sizes, reverse)  # dh as (n, 1, H)
        for t in running_steps(batch_sizes, not reverse):
            torch.mul(dh_3[t], coefficient[t], out=d_nrz[t])  # dh is complete: later steps have passed theirs
            dh_prev[t].addcmul_(dh[t], z[t]).addmm_(d_flat[t], w_nrz)
        torch.mul(d_hs[new_slots], to_candidate, out=d[..., 3 * h:])
        d_gates, d_hidden = d[..., h:].reshape(-1, three_h), d[..., :three_h].reshape(-1, three_h)  # (T*B, 3H)
        d_x = (d_gates @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        # Weight gradients over all steps at once, as (inputs^T d)^T: BLAS runs that faster than d^T inputs.
        d_w_ih = (x.reshape(-1, x.shape[2]).t() @ d_gates).t()
        d_w_hh = (hs[prev_slots].reshape(-1, h).t() @ d_hidden).t().roll(-h, 0)  # rows n, r, z -> r, z, n
        d_b_hh = d_hidden.sum(dim=0).roll(-h, 0)
        d_h0 = d_hs[lengths if reverse else torch.zeros_like(lengths), rows]
        return d_x, d_h0, d_w_ih, d_w_hh, d_gates.sum(dim=0), d_b_hh, None, None, None


def _coefficients(gates: Tensor, hidden: Tensor, h_new: Tensor, real: Tensor | None) -> tuple[Tensor, Tensor]:
    """What each step multiplies its ``dh`` by, for all steps at once.

    Args:
        gates: ``(T, B, 3H)`` r, z, n at real tokens.
        hidden: ``(T, B, 3H)`` ``W_hh h(t-1) + b_hh``.
        h_new: ``(T, B, H)`` ``h(t)``.
        real: ``(T, B, 1)`` True at real tokens; None without padding.

    Returns:
        ``(T, B, 3, H)`` ``dh`` to the gradients of ``W_hh h(t-1) + b_hh``, rows n, r, z, and ``(T, B, H)`` ``dh``
        to the candidate's pre-activation.
    """
    r, z, n = gates.chunk(3, dim=-1)  # each (T, B, H), strided: each pass over them counts, so few passes
    keep = 1 - z
    to_candidate = torch.addcmul(n.new_ones(()), n, n, value=-1).mul_(keep)  # (1 - z)(1 - n²)
    if real is not None:  # padding holds raw projections, and its gradient must stay zero
        to_candidate.mul_(real)
    coefficients = torch.empty_like(gates).view(*r.shape[:2], 3, -1)  # (T, B, 3, H)
    torch.mul(to_candidate, r, out=coefficients[:, :, 0])
    torch.mul(coefficients[:, :, 0], hidden[..., 2 * r.shape[-1]:], out=coefficients[:, :, 1]).mul_(1 - r)
    torch.mul(torch.sub(h_new, n), keep, out=coefficients[:, :, 2])  # z (1 - z)(h - n), as h' - n = z (h - n)
    return coefficients, to_candidate


def gru_sequence(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, lengths: Tensor,
                 batch_sizes: list[int], reverse: bool = False) -> tuple[Tensor, Tensor]:
    """Runs a GRU (``GRUCell``'s math) over a sorted, time-major batch.

    Args:
        x: ``(T, B, I)`` inputs, batch sorted by decreasing length.
        h0: ``(B, H)`` initial hidden state, same order.
        w_ih: ``(3H, I)`` input weights, rows reset, update, candidate.
        w_hh: ``(3H, H)`` recurrent weights.
        b_ih: ``(3H,)`` input bias.
        b_hh: ``(3H,)`` recurrent bias (its candidate part inside the reset product).
        lengths: ``(B,)`` long, decreasing, on the device of ``x``.
        batch_sizes: for each step, how many sentences are longer than it.
        reverse: read each sentence from its last token to its first.

    Returns:
        ``(outputs, h_n)``: ``(T, B, H)`` hidden states, zero at padding, and ``(B, H)`` the state after each
        sentence's last step in reading order.
    """
    return GRUFunction.apply(x.contiguous(), h0, w_ih, w_hh, b_ih, b_hh, lengths, batch_sizes, reverse)


def _run_sorted(params: list[Tensor], x: Tensor, batch: SortedBatch, state: State,
                reverse: bool) -> tuple[Tensor, State]:
    """``gru_sequence`` as a ``SequenceKernel``: params ``[w_ih, w_hh, b_ih, b_hh]``."""
    out, h_n = gru_sequence(x, *state, *params, batch.lengths, batch.batch_sizes, reverse)
    return out, (h_n,)


KERNELS.register("gru_sequence")(SequenceKernel(_run_sorted, num_states=1))
