"""Tuned comparison of the arms of one factor (every cell, or depths, directions, attention types): each arm gets
the same Optuna search with pruning, then its best configuration is run on fresh seeds, then the report.

    python -m rnnlab.cli.tuned --config-name tuned_cells task=classify data=sst2 [key=value ...]

The config (``sweeps/<name>.yaml``, composed over ``conf/``) is a training config with a ``tuning`` node; see
``sweeps/tuning.yaml`` (the protocol's settings), ``sweeps/tuned_cells.yaml`` and docs/cells.md. Trials run in
this process through ``rnnlab.run.pipeline.train``, so a callback can report every validation to the trial and
stop the ones the pruner prunes: a Hydra sweeper only sees a job's final value. The study folder (``tuning.out``) receives:

- ``study.yaml``: the factor, arms, seeds, metric and budget of the study, and its recipe overrides (the command
  line's, less ``tuning.*``; the report compares an untuned study's runs only where these agree);
- ``optuna.db``: one Optuna study per arm (``optuna.load_study(study_name=<arm>,
  storage="sqlite:///<out>/optuna.db")``), each trial's wall time, hidden size and parameter count in its user
  attributes, the final runs' wall times in the study's;
- ``search/<arm>/trial_<n>/``: the trials' run folders (validated, not tested);
- ``final/<arm>/seed_<s>/``: the final runs, with ``.hydra/overrides.yaml`` so ``rnnlab.analysis.report`` reads them;
- ``report/``: ``rnnlab.analysis.tuned``'s tables and figures.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from hydra import compose, initialize_config_dir
from lightning import LightningDataModule
from omegaconf import DictConfig, OmegaConf

from rnnlab.analysis.tuned import final_folder, write_report
from rnnlab.config import CONF
from rnnlab.errors import Stopped, UserError, main_guard
from rnnlab.run.pipeline import build, train
from rnnlab.run.renamed import refuse_renamed
from rnnlab.run.tuning import (HIDDEN_SIZE, OptunaPruning, make_pruner, recipe_values, search_space,
                               solve_hidden_size, suggest)
from rnnlab.tasks.base import count_parameters

log = logging.getLogger(__name__)


def arms_of(tuning: DictConfig) -> list[str]:
    """The arms, baseline first: ``tuning.arms``, or every file of the config group ``tuning.factor``."""
    if tuning.arms is not None:
        arms = [str(arm) for arm in tuning.arms]
    elif (CONF / tuning.factor).is_dir():
        arms = sorted(path.stem for path in (CONF / tuning.factor).glob("*.yaml"))
    else:
        raise UserError(f"tuning.factor={tuning.factor} is no config group of conf/; list its values in tuning.arms")
    baseline = str(tuning.baseline)
    if baseline not in arms:
        raise UserError(f"tuning.baseline={baseline} is not one of the arms {arms}")
    return [baseline, *(arm for arm in arms if arm != baseline)]


class Study:
    """One tuned comparison; ``run`` searches every arm, runs the final seeds and writes the report.

    Args:
        config_name: the study config's name in the config folder Hydra was initialised with.
        overrides: command-line overrides of it.
    """

    def __init__(self, config_name: str, overrides: list[str]):
        self.config_name = config_name
        self.overrides = [f"hydra.searchpath=[file://{CONF}]", *overrides]
        cfg = self.compose([])
        if "tuning" not in cfg:
            raise UserError(f"{config_name} has no tuning node; list sweeps/tuning.yaml in its defaults")
        self.tuning = cfg.tuning
        self.arms = arms_of(self.tuning)
        self.seeds = [int(seed) for seed in self.tuning.seeds]
        if int(self.tuning.search_seed) in self.seeds:
            raise UserError(f"tuning.seeds {self.seeds} must not hold tuning.search_seed={self.tuning.search_seed}: "
                            "the final runs are new draws, not the search's")
        if self.tuning.size not in ("hidden", "parameters"):
            raise UserError(f"tuning.size={self.tuning.size}; one of hidden, parameters")
        self.metric, self.mode = cfg.task.optimized_metric, cfg.task.mode
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        self.out = Path(self.tuning.out or f"multirun/{cfg.get('sweep', config_name)}/{cfg.task.name}/{stamp}")
        if (self.out / "optuna.db").exists():
            raise UserError(f"{self.out} holds a study already; give tuning.out a new folder")
        self.out.mkdir(parents=True, exist_ok=True)
        settings = {"sweep": cfg.get("sweep", config_name), "task": cfg.task.name, "optimized_metric": self.metric,
                    "mode": self.mode, "max_epochs": cfg.trainer.get("max_epochs"),
                    "max_time": cfg.trainer.get("max_time"), **OmegaConf.to_container(self.tuning, resolve=True),
                    "arms": self.arms, "overrides": [item for item in overrides if not item.startswith("tuning.")]}
        OmegaConf.save(settings, self.out / "study.yaml")
        self.target: int | None = None  # the baseline's parameter count, with size=parameters

    def compose(self, overrides: list[str]) -> DictConfig:
        return compose(self.config_name, overrides=[*self.overrides, *overrides])

    def arm_override(self, arm: str) -> str:
        return f"{self.tuning.factor}={arm}"

    def run_config(self, arm_cfg: DictConfig, params: dict[str, Any], seed: int, folder: Path, name: str,
                   datamodule: LightningDataModule | None) -> DictConfig:
        """The config of one run: the arm's ``arm_cfg`` with the searched values ``params``, ``seed`` and ``folder``;
        with size=parameters, its hidden size solved on ``datamodule``."""
        cfg = copy.deepcopy(arm_cfg)  # set, not composed again: the keys are values, not config groups
        for key, value in {**params, "seed": seed, "paths.output_dir": str(folder)}.items():
            OmegaConf.update(cfg, key, value, merge=False)  # a key the config lacks fails (struct mode)
        if datamodule is not None:
            hidden_size, _ = solve_hidden_size(cfg, datamodule, self.target)
            OmegaConf.update(cfg, HIDDEN_SIZE, hidden_size)
        if cfg.get("logger") and "wandb" in cfg.logger:
            cfg.logger.wandb.name = name  # the seeds of one arm share a name; the study is the W&B group
        return cfg

    def run(self) -> Path:
        """Searches every arm, runs each arm's best configuration on ``tuning.seeds``, writes the report; returns
        the study folder."""
        if self.tuning.size == "parameters":
            _, module = build(self.compose([self.arm_override(self.arms[0]), f"paths.output_dir={self.out}"]))
            self.target = count_parameters(module)
            log.info("size=parameters: every arm's hidden size matches %s's %d parameters", self.arms[0], self.target)
        ranges = OmegaConf.to_container(self.tuning, resolve=True)
        for arm in self.arms:
            datamodule = None
            arm_cfg = self.compose([self.arm_override(arm), f"paths.output_dir={self.out / 'search' / arm}"])
            if self.target is not None:
                datamodule, _ = build(arm_cfg)
            study = self.search(arm, arm_cfg, search_space(arm_cfg, ranges["space"], ranges.get("forget_bias")),
                                datamodule)
            self.final(arm, arm_cfg, study, datamodule)
        write_report(self.out)
        return self.out

    def search(self, arm: str, arm_cfg: DictConfig, space: dict[str, dict],
               datamodule: LightningDataModule | None) -> optuna.Study:
        """The arm's Optuna study: ``tuning.trials`` trials, TPE seeded with ``tuning.sampler_seed``."""
        pruner = self.tuning.pruner
        study = optuna.create_study(study_name=arm, storage=f"sqlite:///{self.out / 'optuna.db'}",
                                    direction=f"{self.mode}imize",
                                    sampler=optuna.samplers.TPESampler(seed=int(self.tuning.sampler_seed)),
                                    pruner=make_pruner(pruner.kind, pruner.min_resource, pruner.reduction_factor))
        log.info("%s: searching %s", arm, ", ".join(space))
        if self.tuning.recipe_first:
            study.enqueue_trial(recipe_values(arm_cfg, space))
        stopped: list[Stopped] = []

        def objective(trial: optuna.Trial) -> float:
            params = {key: suggest(trial, key, spec) for key, spec in space.items()}
            folder = self.out / "search" / arm / f"trial_{trial.number}"
            cfg = self.run_config(arm_cfg, params, int(self.tuning.search_seed), folder,
                                  f"{arm}/trial_{trial.number}", datamodule)
            cfg.test = False  # the search sees validation data only
            trial.set_user_attr("hidden_size", int(OmegaConf.select(cfg, HIDDEN_SIZE)))
            pruning = OptunaPruning(trial, self.metric, self.mode)
            started = time.perf_counter()
            try:
                metrics = train(cfg, extra_callbacks=[pruning])
            except Stopped as error:  # a SIGTERM stops the study, not only this trial
                stopped.append(error)
                study.stop()
                raise
            finally:  # a failed trial's time is compute spent too
                trial.set_user_attr("wall_seconds", time.perf_counter() - started)
            trial.set_user_attr("parameters", int(metrics["num_parameters"]))
            if pruning.pruned:
                raise optuna.TrialPruned()
            return math.nan if pruning.best is None else pruning.best  # NaN: optuna records a failed trial

        # A run that stops with an error (e.g. a non-finite loss at a large learning rate) is a failed trial; the
        # search goes on.
        study.optimize(objective, n_trials=int(self.tuning.trials), catch=(UserError,))
        if stopped:
            raise Stopped(f"{arm}: the study stopped by SIGTERM in its trial {len(study.trials) - 1}; a study does not "
                          f"resume, but its finished arms are reported by: python -m rnnlab.analysis.tuned {self.out}"
                          ) from stopped[0]
        if not any(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials):
            raise UserError(f"{arm}: none of its {len(study.trials)} trials completed; their errors are in the log")
        return study

    def final(self, arm: str, arm_cfg: DictConfig, study: optuna.Study,
              datamodule: LightningDataModule | None) -> None:
        """The best trial's configuration on every final seed, each run folder readable by
        ``rnnlab.analysis.report``; the wall times go to the study's user attribute ``final_wall_seconds``."""
        best = study.best_trial
        log.info("%s: best trial %d (%s = %.4g): %s", arm, best.number, self.metric, best.value, best.params)
        walls = {}
        for seed in self.seeds:
            folder = final_folder(self.out, arm, seed)
            cfg = self.run_config(arm_cfg, best.params, seed, folder, arm, datamodule)
            started = time.perf_counter()
            train(cfg)
            walls[str(seed)] = time.perf_counter() - started
            (folder / ".hydra").mkdir()
            OmegaConf.save(OmegaConf.create([self.arm_override(arm), f"seed={seed}"]),
                           folder / ".hydra" / "overrides.yaml")
            OmegaConf.save(cfg, folder / ".hydra" / "config.yaml", resolve=True)
        study.set_user_attr("final_wall_seconds", walls)


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-dir", default="sweeps", help="folder of the study configs (default: sweeps)")
    parser.add_argument("--config-name", default="tuned_cells", help="study config (default: tuned_cells)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, as train.py takes them")
    args = parser.parse_args(argv)
    refuse_renamed(args.overrides)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    with initialize_config_dir(config_dir=str(Path(args.config_dir).resolve()), version_base="1.3"):
        out = Study(args.config_name, args.overrides).run()
    log.info("study and report in %s", out)


if __name__ == "__main__":
    main()
