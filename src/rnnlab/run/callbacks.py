"""Callbacks for exact resumption and faults (random generators in checkpoints, a checkpoint on SIGTERM, a stop
at the first non-finite loss) and early stopping that waits for learning to start."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, Timer
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from rnnlab.errors import UserError
from rnnlab.run.loggers import CSVLogger

log = logging.getLogger(__name__)


def rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) generators, as plain data.

    Plain lists and tensors only, so that ``torch.load(..., weights_only=True)`` reads checkpoints holding them.
    """
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": (name, keys.tolist(), position, has_gauss, gauss),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states: dict[str, Any]) -> None:
    """Restores the generators saved by ``rng_states``."""
    random.setstate(states["python"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RNGState(L.Callback):
    """Saves the random generators with every checkpoint and restores them when training resumes.

    Lightning saves no generator state, so without this dropout would draw other masks after a resume. The
    saved states are set back when training starts, after the sanity check (which Lightning runs on a copy of
    the generators) and before the first training batch is read; ``ResumableLoader`` draws what the saved run
    drew between its checkpoint and its next batch. Under DDP the checkpoint holds rank 0's states.
    """

    def __init__(self):
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, *args: Any) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None


class LogsWithCheckpoints(L.Callback):
    """Puts every logged row on disk before the checkpoint that reflects it, and resumes the CSV log with it.

    Loggers buffer rows (Lightning's CSV logger writes every 100 steps), so a killed run lost what its last
    checkpoint had seen. Here every logger writes at the end of each validation and before each checkpoint, whose
    ``csv_rows`` records how many rows ``metrics.csv`` then holds; a run resumed from it cuts the file back to
    those rows, so that what the interrupted run logged after its checkpoint appears once, logged again (testing a
    checkpoint cuts nothing).
    """

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in trainer.loggers:
            logger.save()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            logger.save()
        rows = [logger.rows_on_disk() for logger in trainer.loggers if isinstance(logger, CSVLogger)]
        if rows and rows[0] is not None:  # None on ranks other than 0
            checkpoint["csv_rows"] = rows[0]

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # Only a resumed fit logs again what followed its checkpoint; testing best.ckpt logs after every row.
        if "csv_rows" in checkpoint and trainer.state.fn == "fit":
            for logger in trainer.loggers:
                if isinstance(logger, CSVLogger):
                    logger.keep_rows(checkpoint["csv_rows"])


class CheckpointOnSigterm(L.Callback):
    """Writes ``path`` when the process receives SIGTERM, so that ``ckpt_path=last`` resumes the run.

    Lightning notes a SIGTERM and stops after the current training batch (raising ``SIGTERMException``). The
    checkpoint is written at the end of that batch, where the periodic checkpoints are written too, so the
    resumed run continues exactly. A SIGTERM outside a training batch (in validation) is saved on the way out;
    resuming from that one is not tested for exactness.

    Args:
        path: the checkpoint to write (the ``last.ckpt`` of the checkpoint folder).
    """

    def __init__(self, path: str):
        self.path = path
        self._saved = False

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path)
        self._saved = True
        log.warning("SIGTERM: saved %s at global step %d", self.path, trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.received_sigterm and not self._saved:
            self._save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and not self._saved and trainer.global_step > 0:
            self._save(trainer)


class StopOnNonFinite(L.Callback):
    """Stops training at the first non-finite training loss or parameter, before a checkpoint can save it.

    Checked at the end of each training batch, ahead of the checkpoint callbacks (Lightning runs those last),
    so every checkpoint on disk holds finite weights. Raises a ``UserError`` naming the global step and epoch.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss):
            what = f"training loss is {float(loss)}"
        # One sum per parameter and a single sync: a nan or an inf makes its sum non-finite.
        elif not torch.isfinite(torch.stack([p.detach().float().sum() for p in pl_module.parameters()])).all():
            what = "parameters are no longer finite"
        else:
            return
        paths = [getattr(c, name, "") for c in trainer.checkpoint_callbacks
                 for name in ("last_model_path", "best_model_path")]
        written = [Path(path) for path in paths if path and Path(path).exists()]
        last = max(written, key=lambda path: path.stat().st_mtime, default=None)
        kept = f"the last checkpoint, {last}, holds the weights before it" if last else "no checkpoint was written"
        raise UserError(f"the {what} at global step {trainer.global_step} (epoch {trainer.current_epoch}, batch "
                        f"{batch_idx}); training stopped and {kept}. Lower the learning rate (task.optimizer.lr), "
                        f"clip gradients (trainer.gradient_clip_val) or check the data.")


class EarlyStoppingAfterStart(EarlyStopping):
    """Lightning's early stopping, whose patience starts once the monitored metric has first moved.

    On a small or hard set a tagger may predict no entity for its first epochs, so validation F1 stays at exactly
    its first value (0.0) and plain early stopping ends the run after ``patience`` epochs, before anything was
    learned. Here epochs at the first value do not count; a non-finite metric still stops at once, and
    ``trainer.min_epochs`` still holds. Takes the arguments of ``EarlyStopping``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.first_score: Tensor | None = None
        self.started = False

    def _evaluate_stopping_criteria(self, current: Tensor) -> tuple[bool, str | None]:
        if self.first_score is None:
            self.first_score = current.detach().clone()
        self.started = self.started or bool(current != self.first_score)
        should_stop, reason = super()._evaluate_stopping_criteria(current)
        if self.started or self.stopping_reason != EarlyStoppingReason.PATIENCE_EXHAUSTED:
            return should_stop, reason
        self.wait_count, self.stopping_reason = 0, EarlyStoppingReason.NOT_STOPPED
        return False, (f"{self.monitor} is still at its first value, {float(current):.4f}: patience starts when it "
                       f"moves")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "first_score": self.first_score, "started": self.started}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.first_score = state_dict.get("first_score")
        self.started = state_dict.get("started", False)


def stop_reason(trainer: L.Trainer) -> str:
    """Why ``trainer.fit`` ended, in words for the log: early stopping, the time budget, or the epoch/step limit."""
    for callback in trainer.early_stopping_callbacks:
        if callback.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            return f"early stopping at epoch {callback.stopped_epoch}: {callback.stopping_reason_message}"
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and timer.time_remaining() is not None and timer.time_remaining() <= 0:
        return f"the time budget trainer.max_time ran out at epoch {trainer.current_epoch}"
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return f"trainer.max_steps={trainer.max_steps} reached"
    if trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs:
        return f"trainer.max_epochs={trainer.max_epochs} reached"
    return f"training ended at epoch {trainer.current_epoch}"
