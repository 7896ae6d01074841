"""A metric declares its direction and range once (``rnnlab.metrics.declared``); the run's direction check, the
checkpoint and early-stopping monitors of every task, and the analysis's intervals agree with it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import CONF, compose_train
from rnnlab.analysis.stats import metric_range
from rnnlab.metrics.declared import METRICS

TASKS = sorted(path.stem for path in (CONF / "task").glob("*.yaml"))


@pytest.mark.parametrize("task", TASKS)
def test_every_task_watches_its_metric_the_declared_way(task: str, tmp_path: Path) -> None:
    cfg = compose_train([f"task={task}"], tmp_path)
    metric = cfg.task.optimized_metric.rsplit("/", 1)[-1]
    assert METRICS[metric].better == cfg.task.mode
    assert cfg.callbacks.model_checkpoint.mode == cfg.task.mode


def test_direction_and_range_come_from_the_declarations() -> None:
    assert {name for name in METRICS if METRICS[name].better == "min"} == {"loss", "ppl", "mse"}
    assert METRICS["chance"].better is None  # a reference value, optimised by nothing
    for name in METRICS:
        metric = METRICS[name]
        assert metric_range(f"test/{name}") == (metric.low, metric.high) and metric.low < metric.high
    assert metric_range("test/ppl") == (1.0, math.inf)
