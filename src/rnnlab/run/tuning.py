"""Parts of a tuned comparison (``rnnlab.cli.tuned``): the search space of an arm, the pruning of trials after
each validation, and the hidden size that matches an arm's parameter count to the baseline's.

A search space maps a config key to a range, one of

- ``{log: [low, high]}``: a float, log-uniform (learning rates);
- ``{float: [low, high]}``: a float, uniform;
- ``{int: [low, high]}``: an integer, both ends included;
- ``{choice: [a, b, ...]}``: one of the values.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import lightning as L
import optuna
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import UserError
from rnnlab.run.pipeline import build_module
from rnnlab.tasks.base import count_parameters

FORGET_BIAS = "${model.forget_bias}"  # what the YAML of a cell with a forget gate reads
HIDDEN_SIZE = "model.encoder.hidden_size"


def range_of(name: str, spec: Any) -> tuple[str, list]:
    """The kind (``log``, ``float``, ``int`` or ``choice``) and values of ``name``'s range ``spec`` (see the
    module docstring).

    Raises:
        UserError: ``spec`` is not one of the four forms.
    """
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(f"the range of {name} must be one of {{log|float|int: [low, high]}} or {{choice: [...]}}, "
                        f"got {spec}")
    (kind, values), = spec.items()
    if kind not in ("log", "float", "int", "choice"):
        raise UserError(f"the range of {name} is {kind!r}; one of log, float, int, choice")
    return kind, list(values)


def suggest(trial: optuna.Trial, name: str, spec: dict) -> Any:
    """One value of ``name`` drawn by ``trial`` from its range ``spec``."""
    kind, values = range_of(name, spec)
    if kind == "choice":
        return trial.suggest_categorical(name, values)
    if kind == "int":
        return trial.suggest_int(name, int(values[0]), int(values[1]))
    return trial.suggest_float(name, float(values[0]), float(values[1]), log=kind == "log")


def search_space(cfg: DictConfig, space: dict[str, dict], forget_bias: dict | None) -> dict[str, dict]:
    """The space an arm is searched over.

    Args:
        cfg: the arm's composed config.
        space: ranges every arm shares (``{"task.optimizer.lr": {"log": [1e-4, 1e-2]}}``); a key whose range is
            None is not searched, so a study can drop a key of the space it inherits.
        forget_bias: the range of ``model.forget_bias``, searched where the cell's YAML reads it; None: never.

    Returns:
        ``space``, plus ``model.forget_bias`` where the cell reads it, plus each option the cell's class declares
        ``tunable`` as ``model.cell.<option>``.
    """
    full = {key: spec for key, spec in space.items() if spec is not None}
    cell = cfg.model.get("cell")
    if cell is None:
        return full
    if forget_bias is not None and FORGET_BIAS in OmegaConf.to_container(cell, resolve=False).values():
        full["model.forget_bias"] = forget_bias
    for option, spec in get_class(cell._target_).tunable.items():
        full[f"model.cell.{option}"] = spec
    return full


def recipe_values(cfg: DictConfig, space: dict[str, dict]) -> dict[str, Any]:
    """The values ``cfg`` (an arm's composed recipe) gives the keys of ``space``: the untuned configuration, as
    a trial to enqueue.

    Raises:
        UserError: a value lies outside its key's range (the search could never draw the recipe).
    """
    values = {}
    for key, spec in space.items():
        value = OmegaConf.select(cfg, key)
        kind, bounds = range_of(key, spec)
        inside = value in bounds if kind == "choice" else float(bounds[0]) <= value <= float(bounds[1])
        if not inside:
            raise UserError(f"tuning.recipe_first: the recipe's {key}={value} lies outside its range {spec}; widen "
                            f"the range (tuning.space) or set tuning.recipe_first=false")
        values[key] = value
    return values


class OptunaPruning(L.Callback):
    """Reports the validation metric to an Optuna trial after every validation; stops training once the pruner
    prunes the trial.

    The trainer is stopped rather than ``optuna.TrialPruned`` raised here: an exception inside ``fit`` would end
    the run as failed (its W&B run marked failed, no ``metrics.json``). The caller raises ``TrialPruned`` after
    ``train`` returns, when ``pruned``.

    Args:
        trial: the trial the run belongs to.
        monitor: the validation metric (``task.optimized_metric``).
        mode: ``max`` or ``min``, the metric's better direction (``task.mode``).

    Attributes:
        best: the best value reported (NaN values skipped), the trial's value: the validation whose checkpoint the
            run keeps as best; None before any.
        pruned: whether the pruner stopped the run.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, mode: str):
        self.trial, self.monitor = trial, monitor
        self.better = max if mode == "max" else min
        self.validations = 0  # the pruner's resource: validations, one per epoch unless val_check_interval says
        self.best: float | None = None
        self.pruned = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        self.validations += 1
        value = float(trainer.callback_metrics[self.monitor])
        if not math.isnan(value):
            self.best = value if self.best is None else self.better(self.best, value)
        self.trial.report(value, step=self.validations)
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True


def make_pruner(kind: str, min_resource: int, reduction_factor: int) -> optuna.pruners.BasePruner:
    """``hyperband`` (Li et al. 2018), ``successive_halving`` (asynchronous, Li et al. 2020) or ``none``; the
    resource is the number of validations."""
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, reduction_factor=reduction_factor)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=reduction_factor)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"tuning.pruner.kind={kind}; one of hyperband, successive_halving, none")


def module_parameters(cfg: DictConfig, datamodule: L.LightningDataModule) -> int:
    """Trainable parameters of the task module ``cfg`` describes, built on ``datamodule``'s vocabularies as
    ``rnnlab.run.pipeline.build`` builds it."""
    return count_parameters(build_module(cfg, datamodule))


def solve_hidden_size(cfg: DictConfig, datamodule: L.LightningDataModule, target: int,
                      tolerance: float = 0.02) -> tuple[int, int]:
    """The hidden size (``model.encoder.hidden_size``) whose model has the trainable parameter count closest to
    ``target``, by bisection (the count grows with the hidden size).

    Args:
        cfg: the arm's config; left unchanged.
        datamodule: its data, set up (vocabulary sizes enter the count).
        target: the baseline arm's parameter count.
        tolerance: the largest relative distance from ``target`` accepted.

    Returns:
        The hidden size and its parameter count.

    Raises:
        UserError: no hidden size comes within ``tolerance`` (e.g. the embeddings alone outweigh ``target``).
    """
    candidate = copy.deepcopy(cfg)
    counts: dict[int, int] = {}

    def count(hidden_size: int) -> int:
        if hidden_size not in counts:
            OmegaConf.update(candidate, HIDDEN_SIZE, hidden_size)
            counts[hidden_size] = module_parameters(candidate, datamodule)
        return counts[hidden_size]

    low, high = 1, max(2, int(OmegaConf.select(cfg, HIDDEN_SIZE)))
    while count(high) < target:
        low, high = high, 2 * high
    while high - low > 1:  # count(low) < target <= count(high), or low = 1
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) < target else (low, middle)
    best = min((low, high), key=lambda size: abs(count(size) - target))
    if abs(count(best) - target) > tolerance * target:
        raise UserError(f"no hidden size gives {target:,} parameters within {tolerance:.0%}: hidden size {best} "
                        f"gives {count(best):,}")
    return best, count(best)
