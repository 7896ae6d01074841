"""The run directory: checked to be writable before anything runs, and the checkpoint ``ckpt_path=last`` means."""

from __future__ import annotations

import os
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rnnlab.errors import UserError, report


def make_writable_dir(path: str | Path, option: str) -> Path:
    """Creates ``path`` if needed and checks that files can be written there.

    Raises:
        UserError: naming the path and ``option``, the setting that chose it.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the output directory {path} ({error.strerror}); set {option}=... to a "
                        f"writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"the output directory {path} is not writable; set {option}=... to a writable folder")
    return path


class CheckRunDir(Callback):
    """Hydra callback: a clear error, before Hydra creates it, when the run (or sweep) directory cannot be written."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")

    @staticmethod
    def _check(path: str, option: str) -> None:
        try:
            make_writable_dir(path, option)
        except UserError as error:  # raised, it would reach the user as Hydra's traceback
            report(error)


def resume_checkpoint(ckpt_path: str | None, output_dir: Path) -> str | None:
    """The checkpoint to resume from: ``last`` is ``<output_dir>/checkpoints/last.ckpt``; any path must exist.

    Raises:
        UserError: the checkpoint does not exist.
    """
    if not ckpt_path:
        return None
    path = output_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise UserError(f"ckpt_path={ckpt_path}: no checkpoint at {path}; to resume a run, give its folder with "
                        f"hydra.run.dir=<run folder> (or paths.output_dir) and ckpt_path=last, or a checkpoint file")
    return str(path)
