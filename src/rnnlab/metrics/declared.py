"""What each metric the tasks log declares once: the way it improves and the values it can take.

Metrics are named as logged, without the stage prefix (``val/``, ``test/``) and suffix (``_best``, ``_PER``). The
run's direction check (``task.mode`` against ``task.optimized_metric``) and the analysis's intervals, clipped to
the metric's range, both read ``METRICS``. A new metric declares itself with ``declare`` in its own module of
``rnnlab/metrics/``, which ``METRICS`` imports at its first look-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnlab.registry import Registry


@dataclass(frozen=True)
class MetricDeclaration:
    """How a metric behaves.

    Args:
        better: ``"max"`` or ``"min"``, the ``mode`` of a monitor watching it; None for a reference value that
            nothing optimises (the chance level).
        low: the smallest value it can take.
        high: the largest.
    """

    better: str | None
    low: float = -math.inf
    high: float = math.inf

    @property
    def range(self) -> tuple[float, float]:
        return self.low, self.high


METRICS: Registry[MetricDeclaration] = Registry("metric", "task.optimized_metric", package="rnnlab.metrics")


def declare(name: str, better: str | None, low: float = -math.inf, high: float = math.inf) -> None:
    """Registers the metric logged as ``name`` (see ``MetricDeclaration``)."""
    METRICS.register(name)(MetricDeclaration(better, low, high))


for _name in ("acc", "f1", "precision", "recall"):
    declare(_name, "max", 0.0, 1.0)
declare("bleu", "max", 0.0, 100.0)  # sacrebleu's scale
declare("chrf", "max", 0.0, 100.0)
declare("loss", "min", 0.0)
declare("ppl", "min", 1.0)  # exp of a non-negative mean NLL
declare("mse", "min", 0.0)
declare("chance", None, 0.0, 1.0)  # a synthetic task's chance accuracy, logged beside its own
