"""Logger factories that need a decision at run time, and the end of a W&B run between sweep jobs."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger


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
