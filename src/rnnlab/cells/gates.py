"""Gate functions: how a gated cell turns a pre-activation w into a selection in [0, 1].

The lecture frames a gate as the selection problem ``argmax_{0<=y<=1} y * w``. Its exact solution, the
step function ``1[w > 0]``, has zero gradient almost everywhere, so nothing is back-propagated through it.
Adding a strongly convex regulariser Omega(y) to the objective makes the solution smooth:

- ``sigmoid``: Omega is the negative Fermi-Dirac entropy ``y log y + (1-y) log(1-y)``; the KKT conditions
  give ``y = sigmoid(w)``.
- ``hard_sigmoid``: Omega is the quadratic ``2 (y - 1/2)^2``; the solution is the clipped line
  ``clip(1/2 + w/4, 0, 1)``, which matches the sigmoid's value and slope at 0.
- ``hard``: no regulariser, the step function itself: exact forward, zero gradient.
- ``straight_through``: the step function forward, the sigmoid's gradient backward (Bengio et al. 2013).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def hard(w: Tensor) -> Tensor:
    """Step function ``1[w > 0]``; its gradient is exactly zero."""
    return (w > 0).to(w.dtype)


def straight_through(w: Tensor) -> Tensor:
    """Step function forward, sigmoid gradient backward."""
    soft = torch.sigmoid(w)
    return soft + (hard(w) - soft).detach()


def hard_sigmoid(w: Tensor) -> Tensor:
    """``clip(1/2 + w/4, 0, 1)``: the selection regularised by ``2 (y - 1/2)^2``."""
    return torch.clamp(0.5 + 0.25 * w, 0.0, 1.0)


GATE_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "hard": hard,
    "straight_through": straight_through,
    "hard_sigmoid": hard_sigmoid,
}


def get_gate_function(name: str) -> Callable[[Tensor], Tensor]:
    """Looks up a gate function by name, with an error that lists the choices."""
    if name not in GATE_FUNCTIONS:
        raise ValueError(f"unknown gate function {name!r}; choose one of {sorted(GATE_FUNCTIONS)}")
    return GATE_FUNCTIONS[name]
