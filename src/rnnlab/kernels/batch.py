"""A padded batch sorted by decreasing length, time-major, as the sequence kernels read it, and the per-step views
their loops index."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def state_slots(steps: int, reverse: bool) -> tuple[slice, slice]:
    """Slots holding each step's previous and new state, as slices of a ``(T + 1, ...)`` buffer: left to right,
    step t reads slot t and writes slot t + 1; right to left, it reads slot t + 1 and writes slot t."""
    return (slice(1, steps + 1), slice(0, steps)) if reverse else (slice(0, steps), slice(1, steps + 1))


def real_tokens(steps: int, lengths: Tensor) -> Tensor:
    """``(T, B, 1)`` mask of real tokens in the time-major layout."""
    return (torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths).unsqueeze(-1)


def running_steps(batch_sizes: list[int], backward_in_time: bool) -> range:
    """The steps with a sentence running, in order or the other way round."""
    steps = sum(n > 0 for n in batch_sizes)  # trailing columns of padding alone are skipped
    return range(steps - 1, -1, -1) if backward_in_time else range(steps)


def per_step_views(batch_sizes: list[int], *buffers: Tensor, shift: int = 0) -> list[list[Tensor]]:
    """Each buffer's ``(n, ...)`` view of every step t: row t + ``shift`` of a ``(T [+1], B, ...)`` buffer, cut to
    the ``n = batch_sizes[t]`` sentences running then.

    Built before a loop, so that a step indexes lists instead of slicing tensors (at B = 8, most of a step's
    cost), and built a run of steps of equal ``n`` at a time: one ``unbind`` per run, not one slice per step.
    """
    views: list[list[Tensor]] = [[] for _ in buffers]
    start = 0
    for t in range(1, len(batch_sizes) + 1):
        if t == len(batch_sizes) or batch_sizes[t] != batch_sizes[start]:
            for buffer, steps in zip(buffers, views):
                steps += buffer[start + shift:t + shift, :batch_sizes[start]].unbind(0)
            start = t
    return views


def slot_views(slots: Tensor, batch_sizes: list[int], reverse: bool) -> tuple[list[Tensor], list[Tensor]]:
    """Each step's views of the ``(T+1, B, ...)`` slot it reads and of the one it writes."""
    prev, new = (1, 0) if reverse else (0, 1)
    return per_step_views(batch_sizes, slots, shift=prev)[0], per_step_views(batch_sizes, slots, shift=new)[0]


class _Permute(torch.autograd.Function):
    """Rows of ``x`` in the order ``order``; the gradient comes back through the inverse permutation, a gather,
    instead of ``index_select``'s scatter-add into zeros (2.5x slower on a (B, T, H) batch on CPU)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, order: Tensor, unorder: Tensor) -> Tensor:
        ctx.unorder, ctx.order = unorder, order
        return x.index_select(0, order)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return _Permute.apply(grad, ctx.unorder, ctx.order), None, None


class SortedBatch:
    """Sorts a masked batch once so every layer of an encoder can skip padding without repacking.

    After sorting, the sentences still running at step t are the first ``batch_sizes[t]`` rows.

    Args:
        mask: ``(B, T)`` bool, True at real tokens (a prefix of each row).
    """

    def __init__(self, mask: Tensor):
        lengths = mask.sum(dim=1).cpu()  # (B,)
        sorted_lengths, order = torch.sort(lengths, descending=True, stable=True)
        self.steps = mask.shape[1]
        self.batch_sizes: list[int] = (sorted_lengths.unsqueeze(0) > torch.arange(self.steps).unsqueeze(1)
                                       ).sum(dim=1).tolist()
        self.lengths = sorted_lengths.to(mask.device)
        # Already sorted (always so without padding): no gathers at all.
        self.order = None if bool((order == torch.arange(len(order))).all()) else order.to(mask.device)
        self.unorder = None if self.order is None else torch.argsort(self.order)

    def to_time_major(self, x: Tensor) -> Tensor:
        """``(B, T, D)`` in the caller's order -> ``(T, B, D)`` sorted, contiguous."""
        if self.order is not None:
            x = _Permute.apply(x, self.order, self.unorder)
        return x.transpose(0, 1).contiguous()

    def from_time_major(self, y: Tensor) -> Tensor:
        """``(T, B, D)`` sorted -> ``(B, T, D)`` in the caller's order."""
        y = y.transpose(0, 1)
        return y.contiguous() if self.unorder is None else _Permute.apply(y, self.unorder, self.order)

    def sort(self, state: Tensor) -> Tensor:
        """``(B, H)`` in the caller's order -> sorted."""
        return state if self.order is None else state.index_select(0, self.order)

    def unsort(self, state: Tensor) -> Tensor:
        """``(B, H)`` sorted -> the caller's order."""
        return state if self.unorder is None else state.index_select(0, self.unorder)
