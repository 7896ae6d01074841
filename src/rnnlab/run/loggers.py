"""Logger factories that need a decision at run time, the end of a W&B run between sweep jobs, and the record
of an Optuna study."""

from __future__ import annotations

import csv
import netrc
import os
from pathlib import Path

import lightning.pytorch.loggers
from hydra.experimental.callback import Callback
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from rnnlab.atomic import replacing


def wandb_has_key() -> bool:
    """Whether a W&B API key is configured: ``WANDB_API_KEY`` or an ``api.wandb.ai`` entry in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def hydra_run_name() -> str | None:
    """The Hydra job's ``override_dirname`` (its overrides minus seed and the like), or None outside Hydra.

    Runs of one sweep configuration share this name across seeds, so dashboards can group by it.
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().job.override_dirname or None


def wandb_logger(**kwargs) -> WandbLogger:
    """A ``WandbLogger`` that runs offline unless a key is configured or ``WANDB_MODE`` says otherwise.

    Args:
        **kwargs: ``WandbLogger`` arguments; a missing or empty ``name`` becomes the Hydra job's overrides.
    """
    if "WANDB_MODE" not in os.environ:
        kwargs.setdefault("offline", not wandb_has_key())
    kwargs["name"] = kwargs.get("name") or hydra_run_name()
    return WandbLogger(**kwargs)


def finish_wandb(loggers: list[Logger], summary: dict[str, float] | None = None, failed: bool = False) -> None:
    """Writes ``summary`` into the W&B run and finishes it.

    A run left open would be reused by the next job of a Hydra multirun (the sweep runs its jobs in one
    process), mixing the jobs' metrics; so every job ends its run, also when it fails.

    Args:
        loggers: the trainer's loggers; nothing happens without a ``WandbLogger``.
        summary: final values (test metrics, parameter count, training time) for the run's summary.
        failed: mark the run as failed (non-zero exit code).
    """
    if not any(isinstance(logger, WandbLogger) for logger in loggers):
        return
    import wandb

    if wandb.run is None:  # not rank zero, or the run never started
        return
    if summary:
        wandb.run.summary.update(summary)
    wandb.finish(exit_code=1 if failed else 0)


class OptunaTrialsCallback(Callback):
    """Hydra callback for Optuna sweeps: prepares the sweep folder and saves the study's trials as CSV.

    The sweeper opens its sqlite storage (``<sweep dir>/optuna.db``) before any job creates the sweep
    folder, so the folder is made first; at the end every trial (parameters, value, state, duration) goes to
    ``<sweep dir>/trials.csv``, next to Hydra's ``optimization_results.yaml`` (the best trial).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweeper = config.hydra.sweeper
        if not sweeper.get("storage") or not sweeper.get("study_name"):
            return
        import optuna

        study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
        study.trials_dataframe().to_csv(Path(config.hydra.sweep.dir) / "trials.csv", index=False)


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, which deletes an existing ``metrics.csv`` when it starts; this one appends to it
    under the columns it already has."""

    def _check_log_dir_exists(self) -> None:
        self.read_columns()

    def read_columns(self) -> None:
        """Takes the columns of an existing ``metrics.csv``."""
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                self.metrics_keys = next(csv.reader(handle), [])


class CSVLogger(lightning.pytorch.loggers.CSVLogger):
    """Lightning's ``CSVLogger`` that continues an existing ``metrics.csv`` and can cut it back to a checkpoint.

    ``rnnlab.run.callbacks.LogsWithCheckpoints`` writes the buffered rows before every checkpoint and records how
    many rows the file then holds; a run resumed from that checkpoint keeps those rows and drops the ones the
    interrupted run wrote after it, which the resumed run logs again.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        elif not self._experiment.metrics_keys:
            # A copy made before the file had rows: under ddp_spawn, fit and test each run in a fresh process
            # with the logger as the main process left it.
            self._experiment.read_columns()
        return self._experiment

    @rank_zero_only
    def rows_on_disk(self) -> int:
        """Writes the buffered rows; returns the number of rows (header excluded) in ``metrics.csv``."""
        self.save()
        path = self.experiment.metrics_file_path
        if not os.path.isfile(path):
            return 0
        with open(path, newline="") as handle:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)

    @rank_zero_only
    def keep_rows(self, count: int) -> None:
        """Cuts ``metrics.csv`` back to its header and first ``count`` rows (what a checkpoint reflects)."""
        path = self.experiment.metrics_file_path
        if not os.path.isfile(path):
            return
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))[:count + 1]
        with replacing(path) as temporary, open(temporary, "w", newline="") as handle:
            csv.writer(handle).writerows(rows)
