"""Peephole LSTM over a whole sequence, with a hand-written backward pass.

Autograd over a per-step loop records ~15 nodes per step and replays them one by one; here the forward
loop runs without autograd in ten operations a step, writing into preallocated buffers through per-step
views built before the loop, and the backward loop computes the per-step gradients by hand in five (seven
with full peepholes). Everything that does not depend on the recurrence (the input projections, the gate
derivatives and what the backward steps multiply by, the weight gradients) is done in single large
operations over all steps.

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

from rnnlab.kernels.batch import SortedBatch, per_step_views, real_tokens, running_steps, slot_views, state_slots
from rnnlab.kernels.registry import KERNELS, SequenceKernel, State


class PeepholeLSTMFunction(torch.autograd.Function):
    """Autograd function; use ``peephole_lstm_sequence``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
                w_ci: Tensor, w_co: Tensor, lengths: Tensor, batch_sizes: list[int],
                reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
        steps, batch, _ = x.shape
        h = w_hh.shape[1]
        rows = torch.arange(batch, device=x.device)
        hs = x.new_zeros(steps + 1, batch, h)  # (T+1, B, H) slot buffers; zeros keep unused slots finite
        cs = x.new_zeros(steps + 1, batch, h)
        init = lengths if reverse else torch.zeros_like(lengths)  # (B,) slot of each initial state
        hs[init, rows] = h0
        cs[init, rows] = c0
        # (T, B, 4H) every input projection in one matmul; each step then turns its rows into the activations
        # i, f, g, o in place.
        gates = torch.addmm(bias, x.reshape(-1, x.shape[2]), w_ih.t()).view(steps, batch, 4 * h)
        # (T, B, H) tanh(c(t)) for backward; padding is left unwritten, and backward never reads it there
        tanh_cs = x.new_empty(steps, batch, h)
        _forward_steps(gates, tanh_cs, hs, cs, w_hh, w_ci, w_co, batch_sizes, reverse)
        _, new_slots = state_slots(steps, reverse)
        final = torch.zeros_like(lengths) if reverse else lengths
        out = hs[new_slots]  # (T, B, H)
        if reverse:  # initial states sit in padding slots; a forward run leaves those zero
            out = out * real_tokens(steps, lengths)
        ctx.save_for_backward(x, gates, tanh_cs, hs, cs, w_ih, w_hh, w_ci, w_co, lengths)
        ctx.batch_sizes, ctx.reverse = batch_sizes, reverse
        ctx.padded = batch_sizes[0] != batch_sizes[-1] or batch_sizes[0] != batch  # some rows sit out some steps
        return out, hs[final, rows], cs[final, rows]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor | None, grad_h_n: Tensor | None,
                 grad_c_n: Tensor | None) -> tuple[Tensor | None, ...]:
        x, gates, tanh_cs, hs, cs, w_ih, w_hh, w_ci, w_co, lengths = ctx.saved_tensors
        batch_sizes, reverse = ctx.batch_sizes, ctx.reverse
        steps, batch, four_h = gates.shape
        h = four_h // 4
        rows = torch.arange(batch, device=gates.device)
        prev_slots, new_slots = state_slots(steps, reverse)
        init = lengths if reverse else torch.zeros_like(lengths)
        final = torch.zeros_like(lengths) if reverse else lengths

        # Gradients reaching each state slot; the loop adds to them what flows back through the recurrence.
        d_hs = gates.new_zeros(steps + 1, batch, h)  # (T+1, B, H)
        d_cs = gates.new_zeros(steps + 1, batch, h)
        if grad_out is not None:
            if reverse:
                grad_out = grad_out * real_tokens(steps, lengths)  # the masked outputs pass nothing back
            d_hs[new_slots] += grad_out
        if grad_h_n is not None:
            d_hs[final, rows] += grad_h_n
        if grad_c_n is not None:
            d_cs[final, rows] += grad_c_n
        c_prev, c_new = cs[prev_slots], cs[new_slots]
        # (T, B, 4, H) what the steps multiply dh and dc by to get dz, which each step overwrites with its dz
        d_z, to_cs, to_c_prevs = _coefficients(gates, tanh_cs, c_prev, w_ci, w_co)
        if ctx.padded:  # no step writes padding, which the weight gradients sum over
            d_z.masked_fill_(~real_tokens(steps, lengths).unsqueeze(-1), 0)
        _backward_steps(d_hs, d_cs, d_z, to_cs, to_c_prevs, w_hh, w_ci, w_co, batch_sizes, reverse)

        # Weight gradients over all steps at once, as (inputs^T dz)^T: BLAS runs that faster than dz^T inputs.
        flat_dz = d_z.view(-1, four_h)  # (T*B, 4H)
        d_x = (flat_dz @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = (x.reshape(-1, x.shape[2]).t() @ flat_dz).t()
        d_w_hh = (hs[prev_slots].reshape(-1, h).t() @ flat_dz).t()
        d_bias = flat_dz.sum(dim=0)
        d_z_if, d_z_o = d_z[:, :, :2], d_z[:, :, 3]  # (T, B, 2, H), (T, B, H)
        if w_ci.dim() == 2:
            d_w_ci = (c_prev.reshape(-1, h).t() @ d_z_if.reshape(-1, 2 * h)).t()
            d_w_co = (c_new.reshape(-1, h).t() @ d_z_o.reshape(-1, h)).t()
        else:  # d_z is spent: the products overwrite it instead of taking fresh memory
            d_w_ci = d_z_if.mul_(c_prev.unsqueeze(2)).sum(dim=(0, 1)).view(-1)
            d_w_co = d_z_o.mul_(c_new).sum(dim=(0, 1))
        return d_x, d_hs[init, rows], d_cs[init, rows], d_w_ih, d_w_hh, d_bias, d_w_ci, d_w_co, None, None, None


def _forward_steps(gates: Tensor, tanh_cs: Tensor, hs: Tensor, cs: Tensor, w_hh: Tensor, w_ci: Tensor,
                   w_co: Tensor, batch_sizes: list[int], reverse: bool) -> None:
    """The recurrence: turns each step's rows of ``gates`` into i, f, g, o and writes ``tanh(c(t))``, ``h(t)`` and
    ``c(t)`` into ``tanh_cs`` and the slot buffers, ten operations a step."""
    h = hs.shape[-1]
    full = w_ci.dim() == 2
    # (n, 2H) for the full peepholes' product, (n, 2, H) against the diagonal ones as (2, H)
    gates_if = gates[..., :2 * h] if full else gates.unflatten(-1, (4, h))[:, :, :2]
    z, z_if, i, f, g, o, tanh_c = per_step_views(  # (n, 4H), as above, then (n, H) each
        batch_sizes, gates, gates_if, gates[..., :h], gates[..., h:2 * h], gates[..., 2 * h:3 * h],
        gates[..., 3 * h:], tanh_cs)
    h_prev, h_new = slot_views(hs, batch_sizes, reverse)
    c_prev, c_new = slot_views(cs, batch_sizes, reverse)
    if not full:
        c_prev_1, = per_step_views(batch_sizes, cs.unsqueeze(2), shift=int(reverse))  # c(t-1) as (n, 1, H)
        w_ci_2 = w_ci.view(2, h)
    w_hh_t, w_ci_t, w_co_t = w_hh.t(), w_ci.t(), w_co.t()
    for t in running_steps(batch_sizes, reverse):
        z[t].addmm_(h_prev[t], w_hh_t)
        if full:
            z_if[t].addmm_(c_prev[t], w_ci_t)
        else:
            z_if[t].addcmul_(c_prev_1[t], w_ci_2)
        z_if[t].sigmoid_()
        g[t].tanh_()
        torch.mul(f[t], c_prev[t], out=c_new[t]).addcmul_(i[t], g[t])
        if full:
            o[t].addmm_(c_new[t], w_co_t)
        else:
            o[t].addcmul_(c_new[t], w_co)
        torch.mul(torch.tanh(c_new[t], out=tanh_c[t]), o[t].sigmoid_(), out=h_new[t])


def _backward_steps(d_hs: Tensor, d_cs: Tensor, d_z: Tensor, to_cs: Tensor, to_c_prevs: Tensor, w_hh: Tensor,
                    w_ci: Tensor, w_co: Tensor, batch_sizes: list[int], reverse: bool) -> None:
    """The recurrence backwards: each step reads dh and dc of the slot it wrote, complete since later steps have
    passed theirs, turns its rows of ``d_z`` (``_coefficients``) into its dz in place, writes dc(t-1) and adds
    dz W_hh to dh(t-1); five operations a step with diagonal peepholes, seven with full ones."""
    h = d_hs.shape[-1]
    full = w_ci.dim() == 2
    dh_prev, dh = slot_views(d_hs, batch_sizes, reverse)
    dc_prev, dc = slot_views(d_cs, batch_sizes, reverse)
    dc_1, = per_step_views(batch_sizes, d_cs.unsqueeze(2), shift=int(not reverse))  # dc as (n, 1, H)
    dz, dz_ifg, dz_o, to_c, to_c_prev = per_step_views(  # (n, 4H), (n, 3, H), then (n, H) each
        batch_sizes, d_z.view(*d_z.shape[:2], 4 * h), d_z[:, :, :3], d_z[:, :, 3], to_cs, to_c_prevs)
    if full:
        dz_if, = per_step_views(batch_sizes, d_z[:, :, :2].flatten(2))  # (n, 2H)
    for t in running_steps(batch_sizes, not reverse):
        dz_o[t].mul_(dh[t])
        dc[t].addcmul_(dh[t], to_c[t])
        if full:
            dc[t].addmm_(dz_o[t], w_co)
        dz_ifg[t].mul_(dc_1[t])
        torch.mul(dc[t], to_c_prev[t], out=dc_prev[t])  # c(t-1) feeds step t alone: nothing to add to
        if full:
            dc_prev[t].addmm_(dz_if[t], w_ci)
        dh_prev[t].addmm_(dz[t], w_hh)


def _coefficients(gates: Tensor, tanh_cs: Tensor, c_prev: Tensor, w_ci: Tensor,
                  w_co: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """What each backward step multiplies by, for all steps at once.

    Args:
        gates: ``(T, B, 4H)`` i, f, g, o at real tokens.
        tanh_cs: ``(T, B, H)`` ``tanh(c(t))``.
        c_prev: ``(T, B, H)`` ``c(t-1)``.

    Returns:
        ``(T, B, 4, H)`` dc to dz_i, dz_f, dz_g and dh to dz_o (before o's peephole); ``(T, B, H)`` dh to dc(t)
        and dc(t) to dc(t-1). Diagonal peepholes are folded into the last two (``+ dz_o/dh w_co`` and
        ``+ dz_i/dc w_ci_i + dz_f/dc w_ci_f``), full ones are left to the step.
    """
    steps, batch, four_h = gates.shape
    h = four_h // 4
    i, f, g, o = gates.chunk(4, dim=-1)  # each (T, B, H), strided: each pass over them counts, so few passes
    quad = gates.view(steps, batch, 4, h)
    to_z = torch.addcmul(quad, quad, quad, value=-1)  # (T, B, 4, H) σ' = σ - σ² for i, f, o
    to_z_i, to_z_f, to_z_g, to_z_o = to_z.unbind(2)
    to_z_i.mul_(g)  # dz_i = dc g σ'(z_i)
    to_z_f.mul_(c_prev)  # dz_f = dc c(t-1) σ'(z_f)
    one = gates.new_ones(())
    torch.addcmul(one, g, g, value=-1, out=to_z_g).mul_(i)  # dz_g = dc i (1 - g²)
    to_z_o.mul_(tanh_cs)  # dz_o = dh tanh(c) σ'(z_o)
    to_c = torch.addcmul(one, tanh_cs, tanh_cs, value=-1).mul_(o)  # through h = o tanh(c), with o held fixed
    if w_ci.dim() == 2:
        return to_z, to_c, f
    w_ci_i, w_ci_f = w_ci.chunk(2)
    return to_z, to_c.addcmul_(to_z_o, w_co), torch.addcmul(f, to_z_i, w_ci_i).addcmul_(to_z_f, w_ci_f)


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
