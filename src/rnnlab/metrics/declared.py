"""What each metric the tasks log declares once: the way it improves and the values it can take.

Metrics are named as logged, without the stage prefix (``val/``, ``test/``) and suffix (``_best``, ``_PER``). The
run's direction check (``task.mode`` against ``task.optimized_metric``) and the analysis's intervals, clipped to
the metric's range, both read ``METRICS``; a new metric is one entry here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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


METRICS: dict[str, MetricDeclaration] = {
    "acc": MetricDeclaration("max", 0.0, 1.0),
    "f1": MetricDeclaration("max", 0.0, 1.0),
    "precision": MetricDeclaration("max", 0.0, 1.0),
    "recall": MetricDeclaration("max", 0.0, 1.0),
    "bleu": MetricDeclaration("max", 0.0, 100.0),  # sacrebleu's scale
    "chrf": MetricDeclaration("max", 0.0, 100.0),
    "loss": MetricDeclaration("min", 0.0),
    "ppl": MetricDeclaration("min", 1.0),  # exp of a non-negative mean NLL
    "mse": MetricDeclaration("min", 0.0),
    "chance": MetricDeclaration(None, 0.0, 1.0),  # a synthetic task's chance accuracy, logged beside its own
}

# The metric names of each direction: {"max": ("acc", ...), "min": ("loss", ...)}.
BETTER_WHEN = {better: tuple(name for name, metric in METRICS.items() if metric.better == better)
               for better in ("max", "min")}
