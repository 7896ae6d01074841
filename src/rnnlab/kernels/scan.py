"""Linear recurrences ``h(t) = a(t) × h(t-1) + b(t)`` over a whole sequence: a parallel scan in log space (GPUs),
or a loop of one fused multiply-add a step with a hand-written backward (CPUs).

minGRU and minLSTM (Feng et al. 2024) compute their gates and candidates from ``x(t)`` alone, so ``a(t)`` and
``b(t)`` are known for every step before the recurrence runs, and unrolling it gives

    h(t) = A(t) × h(0) + Σ_{s≤t} A(t) / A(s) × b(s),       A(t) = a(1) × ... × a(t)

two cumulative operations over time instead of a loop of T dependent steps. In linear space ``A(t)`` underflows
and ``b(s) / A(s)`` overflows within a few hundred steps of gates near 0; in log space (Heinsen 2023, "Efficient
Parallelization of a Ubiquitous Sequential Computation"), with ``a(t)`` in (0, 1] and ``b(t) > 0``,

    log A(t) = cumsum(log a)(t)
    Σ_{s≤t} A(t) / A(s) × b(s) = exp(log A(t) + logcumsumexp(log b − log A)(t))

stays finite at any length. Its precision falls with length, though: the sum ``log A(t) + logcumsumexp(...)``
cancels two numbers of size ``|log A(t)|``, which grows with t. Over 300 steps the scan equals the step loop to
~1e-11 on outputs in float64, even with saturating gates; in float32, at the cells' initialisation, to ~1e-5
relative on outputs and up to ~1e-3 on some weight gradients (the step loop: ~1e-7). The initial state may have either sign (a caller's state, a bridge's), so its term
``A(t) × h(0)`` is kept apart, exactly, instead of being taken to log space.

On CPUs the scan is slow: ``logcumsumexp`` and its backward take ~166 ms over 2,000 × 8 × 128 with one thread
(``nn.LSTM``'s whole training step at that shape: ~180 ms), where T dependent steps of ``addcmul`` take a few
microseconds each. There the recurrence runs as that loop, exact in linear space (``a`` in (0, 1] and ``b`` bounded
keep it finite), with its gradient the same recurrence run backwards; GPUs keep the scan, parallel over time
(docs/benchmarks.md). ``force_method`` picks one on every device, for tests and timings.

Layout as every ``SequenceKernel``: time-major ``(T, B, ...)``, the batch sorted by decreasing length. Right to
left, each sentence is first reversed within its own length (padding stays where it is), so in reading order a
sentence's padding always follows its last real token. A scan is causal: what it computes over padding changes
no earlier step, so it runs over padding as over real tokens, then zeroes the outputs there and reads the final
state at the last real token, as ``a = 1, b = 0`` at padding would leave it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnlab.kernels.batch import SortedBatch, real_tokens
from rnnlab.kernels.registry import KERNELS, SequenceKernel, State


def log_g(v: Tensor) -> Tensor:
    """``log g(v)`` for Feng et al.'s positive candidate activation ``g(v) = v + 0.5`` (v ≥ 0), ``σ(v)`` (v < 0)."""
    return torch.where(v >= 0, torch.log(v.clamp(min=0) + 0.5), -F.softplus(-v))  # log σ(v) = −softplus(−v)


METHODS = ("scan", "loop")
_forced_method: list[str] = []  # set by force_method


@contextmanager
def force_method(method: str) -> Iterator[None]:
    """While open, linear recurrences run as ``method`` (``"scan"`` or ``"loop"``) on every device."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _forced_method.append(method)
    try:
        yield
    finally:
        _forced_method.pop()


class _StepLoop(torch.autograd.Function):
    """``h(t) = a(t) × h(t-1) + b(t)`` one step at a time; the gradient is the same recurrence backwards,
    ``d(t) = g(t) + a(t+1) × d(t+1)``, then ``∂b(t) = d(t)``, ``∂a(t) = d(t) × h(t-1)``, ``∂h(0) = a(1) × d(1)``."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:  # (T, B, H), (T, B, H), (B, H)
        h = torch.empty_like(b)  # (T, B, H)
        previous = h0
        for t in range(b.shape[0]):
            previous = torch.addcmul(b[t], a[t], previous, out=h[t])
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, h0, h = ctx.saved_tensors
        d = grad_h.clone(memory_format=torch.contiguous_format)  # (T, B, H), d(T) = g(T)
        for t in range(d.shape[0] - 2, -1, -1):
            d[t].addcmul_(a[t + 1], d[t + 1])
        previous = torch.cat([h0.unsqueeze(0), h[:-1]])[: len(d)]  # (T, B, H) h(t-1)
        grad_h0 = a[0] * d[0] if len(d) else torch.zeros_like(h0)
        return d * previous, d, grad_h0


def _reading_order(steps: int, lengths: Tensor) -> Tensor:
    """``(T, B)`` time index of each step right to left: sentence b reversed within its first ``lengths[b]``
    steps, padding in place; the permutation is its own inverse."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)  # (T, 1)
    return torch.where(t < lengths, lengths - 1 - t, t)


def linear_recurrence(log_a: Tensor, log_b: Tensor, h0: Tensor, lengths: Tensor,
                      reverse: bool = False) -> tuple[Tensor, Tensor]:
    """``h(t) = a(t) × h(t-1) + b(t)`` over a sorted, time-major batch, from the logs of ``a`` and ``b``.

    Args:
        log_a: ``(T, B, H)`` ``log a(t)``, at most 0 (``a`` in (0, 1]), in sentence order.
        log_b: ``(T, B, H)`` ``log b(t)`` (``b > 0``), in sentence order.
        h0: ``(B, H)`` initial state, any sign.
        lengths: ``(B,)`` long, decreasing, on the device of ``log_a``.
        reverse: read each sentence from its last real token to its first.

    Returns:
        ``(outputs, h_n)``: ``(T, B, H)`` states in sentence order, zero at padding, and ``(B, H)`` the state after
        each sentence's last token in reading order (``h0`` for an empty sentence).
    """
    steps, batch, _ = log_a.shape
    rows = torch.arange(batch, device=log_a.device)
    if reverse:
        order = _reading_order(steps, lengths)  # (T, B)
        log_a, log_b = log_a[order, rows], log_b[order, rows]
    method = _forced_method[-1] if _forced_method else ("scan" if log_a.is_cuda else "loop")
    if method == "loop":
        h = _StepLoop.apply(log_a.exp(), log_b.exp(), h0)  # (T, B, H)
    else:
        log_decay = torch.cumsum(log_a, dim=0)  # (T, B, H) log A(t) ≤ 0
        h = torch.exp(log_decay + torch.logcumsumexp(log_b - log_decay, dim=0)) + h0 * torch.exp(log_decay)
    last = h[(lengths - 1).clamp(min=0), rows]  # (B, H) the state at each sentence's last token
    h_n = torch.where((lengths > 0).unsqueeze(1), last, h0)
    out = torch.where(real_tokens(steps, lengths), h, 0)
    if reverse:
        out = out[order, rows]  # back to sentence order
    return out, h_n


def _min_gru(params: list[Tensor], x: Tensor, batch: SortedBatch, state: State,
             reverse: bool) -> tuple[Tensor, State]:
    """minGRU (``rnnlab.cells.min_gru``): params ``[weight_ih (2H, I), bias (2H,)]``, rows update, candidate.

    ``a = 1 − z`` and ``b = z × g(h~)`` with ``z = σ(k)``: ``log a = −softplus(k)``,
    ``log b = −softplus(−k) + log g(h~)``.
    """
    (h0,) = state
    weight, bias = params
    k, candidate = F.linear(x, weight, bias).chunk(2, dim=-1)  # each (T, B, H)
    out, h_n = linear_recurrence(-F.softplus(k), -F.softplus(-k) + log_g(candidate), h0, batch.lengths, reverse)
    return out, (h_n,)


def _min_lstm(params: list[Tensor], x: Tensor, batch: SortedBatch, state: State,
              reverse: bool) -> tuple[Tensor, State]:
    """minLSTM (``rnnlab.cells.min_lstm``): params ``[weight_ih (3H, I), bias (3H,)]``, rows forget, input,
    candidate.

    With ``d = log i − log f = softplus(−k_f) − softplus(−k_i)``:
    ``log f' = log f − log(f + i) = −softplus(d)`` and ``log i' = −softplus(−d)``; ``a = f'``, ``b = i' × g(h~)``.
    """
    (h0,) = state
    weight, bias = params
    k_f, k_i, candidate = F.linear(x, weight, bias).chunk(3, dim=-1)  # each (T, B, H)
    d = F.softplus(-k_f) - F.softplus(-k_i)  # (T, B, H) log i − log f
    out, h_n = linear_recurrence(-F.softplus(d), -F.softplus(-d) + log_g(candidate), h0, batch.lengths, reverse)
    return out, (h_n,)


KERNELS.register("min_gru")(SequenceKernel(_min_gru, num_states=1))
KERNELS.register("min_lstm")(SequenceKernel(_min_lstm, num_states=1))
