"""Peephole LSTM over a whole sequence, with a hand-written backward pass.

Autograd over a per-step loop records ~15 nodes per step and replays them one by one; here the forward
loop runs without autograd, writing into preallocated buffers, and the backward loop computes the
per-step gradients by hand. Everything that does not depend on the recurrence (the input projections, the
gate derivatives, the weight gradients) is done in single large operations over all steps.

Layout: time-major ``(T, B, ...)`` with the batch sorted by decreasing length, so the sentences still
running at step t are the first ``batch_sizes[t]`` rows (as in a ``PackedSequence``) and padding costs
nothing. Hidden and memory states live in ``(T + 1, B, H)`` slot buffers: reading left to right, step t
reads slot t and writes slot t + 1; right to left, it reads slot t + 1 and writes slot t, and each
sentence's initial state is placed in slot ``length`` beforehand so it starts from there.

The math is ``PeepholeLSTMCell.forward`` with the sigmoid gate (rows input, forget, candidate, output)::

    z = W_ih x(t) + b + W_hh h(t-1);   z_i, z_f += peek(c(t-1), W_ci)
    c(t) = σ(z_f) c(t-1) + σ(z_i) tanh(z_g);   o = σ(z_o + peek(c(t), W_co));   h(t) = o tanh(c(t))

where ``peek`` is a matrix product (full peepholes) or an elementwise product (diagonal peepholes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnlab.kernels.batch import SortedBatch, real_tokens, state_slots
from rnnlab.kernels.registry import KERNELS, SequenceKernel, State


class PeepholeLSTMFunction(torch.autograd.Function):
    """Autograd function; use ``peephole_lstm_sequence``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
                w_ci: Tensor, w_co: Tensor, lengths: Tensor, batch_sizes: list[int],
                reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
        steps, batch, _ = x.shape
        h = w_hh.shape[1]
        full = w_ci.dim() == 2
        rows = torch.arange(batch, device=x.device)
        hs = x.new_zeros(steps + 1, batch, h)  # (T+1, B, H) slot buffers; zeros keep unused slots finite
        cs = x.new_zeros(steps + 1, batch, h)
        init = lengths if reverse else torch.zeros_like(lengths)  # (B,) slot of each initial state
        hs[init, rows] = h0
        cs[init, rows] = c0
        # Some rows sit out some steps: buffers those steps leave unwritten must hold zeros, not garbage.
        padded = batch_sizes[0] != batch_sizes[-1] or batch_sizes[0] != batch
        # (T, B, 4H) every input projection in one matmul; each step then turns its rows into the activations
        # i, f, g, o in place.
        gates = torch.addmm(bias, x.reshape(-1, x.shape[2]), w_ih.t()).view(steps, batch, 4 * h)
        tanh_cs = (x.new_zeros if padded else x.new_empty)(steps, batch, h)  # (T, B, H) tanh(c(t)) for backward
        w_hh_t, w_ci_t, w_co_t = w_hh.t(), w_ci.t(), w_co.t()
        w_ci_2 = w_ci if full else w_ci.view(2, h)  # diagonal peepholes as (2, H) for broadcasting
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            n = batch_sizes[t]
            prev, new = (t + 1, t) if reverse else (t, t + 1)
            h_prev, c_prev = hs[prev, :n], cs[prev, :n]
            z = gates[t, :n].addmm_(h_prev, w_hh_t)  # (n, 4H)
            if full:
                z[:, :2 * h].addmm_(c_prev, w_ci_t)
            else:
                z.view(n, 4, h)[:, :2].addcmul_(c_prev.unsqueeze(1), w_ci_2)
            z[:, :2 * h].sigmoid_()
            z[:, 2 * h:3 * h].tanh_()
            c = torch.mul(z[:, h:2 * h], c_prev, out=cs[new, :n])  # (n, H)
            c.addcmul_(z[:, :h], z[:, 2 * h:3 * h])
            o = z[:, 3 * h:]
            if full:
                o.addmm_(c, w_co_t)
            else:
                o.addcmul_(c, w_co)
            o.sigmoid_()
            torch.mul(torch.tanh(c, out=tanh_cs[t, :n]), o, out=hs[new, :n])
        prev_slots, new_slots = state_slots(steps, reverse)
        final = torch.zeros_like(lengths) if reverse else lengths
        h_n, c_n = hs[final, rows], cs[final, rows]
        out = hs[new_slots]  # (T, B, H)
        if reverse:  # initial states sit in padding slots; a forward run leaves those zero
            out = out * real_tokens(steps, lengths)
        ctx.save_for_backward(x, gates, tanh_cs, hs, cs, w_ih, w_hh, w_ci, w_co, lengths)
        ctx.batch_sizes, ctx.reverse, ctx.padded = batch_sizes, reverse, padded
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor | None, grad_h_n: Tensor | None,
                 grad_c_n: Tensor | None) -> tuple[Tensor | None, ...]:
        x, gates, tanh_cs, hs, cs, w_ih, w_hh, w_ci, w_co, lengths = ctx.saved_tensors
        batch_sizes, reverse = ctx.batch_sizes, ctx.reverse
        steps, batch, four_h = gates.shape
        h = four_h // 4
        full = w_ci.dim() == 2
        rows = torch.arange(batch, device=gates.device)
        prev_slots, new_slots = state_slots(steps, reverse)
        init = lengths if reverse else torch.zeros_like(lengths)
        final = torch.zeros_like(lengths) if reverse else lengths

        # Gradients reaching each state slot; the loop adds what flows back through the recurrence.
        d_hs = gates.new_zeros(steps + 1, batch, h)  # (T+1, B, H)
        d_cs = gates.new_zeros(steps + 1, batch, h)
        if grad_out is not None:
            if reverse:
                grad_out = grad_out * real_tokens(steps, lengths)  # the masked outputs pass nothing back
            d_hs[new_slots] += grad_out
        if grad_h_n is not None:
            d_hs.index_put_((final, rows), grad_h_n, accumulate=True)
        if grad_c_n is not None:
            d_cs.index_put_((final, rows), grad_c_n, accumulate=True)

        # Everything the step loop multiplies by, computed for all steps at once, in as few passes as possible.
        i, f, g, o = gates.chunk(4, dim=-1)  # each (T, B, H)
        c_prev, c_new = cs[prev_slots], cs[new_slots]
        to_z = torch.addcmul(gates, gates, gates, value=-1)  # (T, B, 4H) σ' = σ - σ² for i, f, o
        to_z_i, to_z_f, to_z_g, to_z_o = to_z.chunk(4, dim=-1)
        to_z_i.mul_(g)  # dL/dz_i = dL/dc g σ'(z_i)
        to_z_f.mul_(c_prev)  # dL/dz_f = dL/dc c(t-1) σ'(z_f)
        torch.addcmul(i, i * g, g, value=-1, out=to_z_g)  # dL/dz_g = dL/dc i (1 - g²)
        to_z_o.mul_(tanh_cs)  # dL/dz_o = dL/dh tanh(c) σ'(z_o), before the peephole
        to_c = torch.addcmul(o, o, tanh_cs * tanh_cs, value=-1)  # dL/dc from h = o tanh(c), with o held fixed
        to_z_ifg = to_z.view(steps, batch, 4, h)[:, :, :3]  # (T, B, 3, H)

        d_z = torch.zeros_like(gates) if ctx.padded else torch.empty_like(gates)  # (T, B, 4H)
        w_ci_i, w_ci_f = (None, None) if full else w_ci.chunk(2)
        order = range(steps) if reverse else range(steps - 1, -1, -1)
        for t in order:
            n = batch_sizes[t]
            prev, new = (t + 1, t) if reverse else (t, t + 1)
            dh, dc = d_hs[new, :n], d_cs[new, :n]
            dz = d_z[t, :n]  # (n, 4H)
            dz_o = torch.mul(dh, to_z_o[t, :n], out=dz[:, 3 * h:])
            dc.addcmul_(dh, to_c[t, :n])
            if full:
                dc.addmm_(dz_o, w_co)
            else:
                dc.addcmul_(dz_o, w_co)
            torch.mul(dc.unsqueeze(1), to_z_ifg[t, :n], out=dz[:, :3 * h].view(n, 3, h))
            dc_prev = d_cs[prev, :n]
            dc_prev.addcmul_(dc, f[t, :n])
            if full:
                dc_prev.addmm_(dz[:, :2 * h], w_ci)
            else:
                dc_prev.addcmul_(dz[:, :h], w_ci_i).addcmul_(dz[:, h:2 * h], w_ci_f)
            d_hs[prev, :n].addmm_(dz, w_hh)

        # Weight gradients over all steps at once, as (inputs^T dz)^T: BLAS runs that faster than dz^T inputs.
        flat_dz = d_z.view(-1, four_h)  # (T*B, 4H)
        d_x = (flat_dz @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = (x.reshape(-1, x.shape[2]).t() @ flat_dz).t()
        d_w_hh = (hs[prev_slots].reshape(-1, h).t() @ flat_dz).t()
        d_z_if = d_z[..., :2 * h]  # (T, B, 2H)
        d_z_o = d_z[..., 3 * h:]
        if full:
            d_w_ci = (c_prev.reshape(-1, h).t() @ d_z_if.reshape(-1, 2 * h)).t()
            d_w_co = (c_new.reshape(-1, h).t() @ d_z_o.reshape(-1, h)).t()
        else:
            d_w_ci = (d_z_if.view(steps, batch, 2, h) * c_prev.unsqueeze(2)).view(-1, 2 * h).sum(dim=0)
            d_w_co = (d_z_o * c_new).view(-1, h).sum(dim=0)
        return (d_x, d_hs[init, rows], d_cs[init, rows], d_w_ih, d_w_hh, flat_dz.sum(dim=0), d_w_ci, d_w_co,
                None, None, None)


def peephole_lstm_sequence(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
                           w_ci: Tensor, w_co: Tensor, lengths: Tensor, batch_sizes: list[int],
                           reverse: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Runs a sigmoid-gated peephole LSTM over a sorted, time-major batch.

    Args:
        x: ``(T, B, I)`` inputs, batch sorted by decreasing length.
        h0: ``(B, H)`` initial hidden state, same order.
        c0: ``(B, H)`` initial memory.
        w_ih: ``(4H, I)`` input weights, rows input, forget, candidate, output gate.
        w_hh: ``(4H, H)`` recurrent weights.
        bias: ``(4H,)``.
        w_ci: peephole weights of the input and forget gates on ``c(t-1)``: ``(2H, H)`` full or ``(2H,)``
            diagonal.
        w_co: peephole weights of the output gate on ``c(t)``: ``(H, H)`` or ``(H,)``.
        lengths: ``(B,)`` long, decreasing, on the device of ``x``.
        batch_sizes: for each step, how many sentences are longer than it.
        reverse: read each sentence from its last token to its first.

    Returns:
        ``(outputs, h_n, c_n)``: ``(T, B, H)`` hidden states, zero at padding, and the state after each
        sentence's last step in reading order, ``(B, H)`` each. Not for autocast: the recurrence engine turns it off
        around every kernel.
    """
    return PeepholeLSTMFunction.apply(x.contiguous(), h0, c0, w_ih, w_hh, bias, w_ci, w_co, lengths, batch_sizes,
                                      reverse)


def _run_sorted(params: list[Tensor], x: Tensor, batch: SortedBatch, state: State,
                reverse: bool) -> tuple[Tensor, State]:
    """``peephole_lstm_sequence`` as a ``SequenceKernel``: params ``[w_ih, w_hh, bias, w_ci, w_co]``."""
    out, h, c = peephole_lstm_sequence(x, *state, *params, batch.lengths, batch.batch_sizes, reverse)
    return out, (h, c)


KERNELS.register("peephole_lstm")(SequenceKernel(_run_sorted, num_states=2))
