"""Non-monotonically triggered averaged SGD (NT-ASGD, Merity et al. 2018) as a weight-averaging callback."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging


def should_trigger(history: list[float], value: float, patience: int, mode: str) -> bool:
    """AWD-LSTM's trigger: ``value`` is no better than the best check before the last ``patience`` ones.

    Args:
        history: the metric at the earlier checks, oldest first (``value`` not among them).
        value: the metric at this check.
        patience: how many of the latest checks the comparison leaves out (AWD's ``nonmono``).
        mode: ``min`` or ``max``, the direction in which the metric improves.
    """
    if len(history) <= patience:
        return False
    earlier = history[:-patience] if patience else history
    return value > min(earlier) if mode == "min" else value < max(earlier)


class NTASGD(WeightAveraging):
    """SGD until validation stalls, then the uniform average of the iterates after every optimiser step.

    After each validation (the sanity check aside) the monitored value is compared with the earlier checks
    (``should_trigger``); once it fires, every later optimiser step adds the new weights to a uniform average
    (``AveragedModel``'s default). This equals AWD-LSTM's switch to ``torch.optim.ASGD`` with ``t0=0, lambd=0``,
    which steps as SGD does and averages the iterates from its first step on. The optimiser is left alone, so a
    learning-rate schedule goes on as configured.

    Until the first averaged step the callback does nothing else: validation, checkpoints and the end of
    training see the current weights. From then on it behaves as Lightning's ``WeightAveraging``: validation
    runs on the average, a checkpoint's ``state_dict`` holds the average (what ``eval.py`` and the test stage
    read from ``best.ckpt``) with the current weights under ``current_model_state``, and training ends with the
    average in the model. The trigger and the history of checks are saved with the callback's state, so a
    resumed run goes on as the uninterrupted one.

    Args:
        monitor: the logged validation metric (``task.optimized_metric``).
        mode: ``min`` or ``max`` (``task.mode``).
        patience: the checks left out of the comparison (AWD's ``nonmono``, 5 there).
    """

    def __init__(self, monitor: str = "val/ppl", mode: str = "min", patience: int = 5):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        super().__init__()
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.history: list[float] = []
        self.triggered_at: int | None = None  # the global step after which averaging started

    @property
    def averaging(self) -> bool:
        """Whether the average holds at least one iterate (before that it is the initial copy of the model)."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and self.triggered_at is not None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Before the checkpoint callbacks (Lightning runs those last), so this check's checkpoint holds the trigger.
        if trainer.sanity_checking or self.triggered_at is not None or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if should_trigger(self.history, value, self.patience, self.mode):
            self.triggered_at = trainer.global_step
        self.history.append(value)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.averaging:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.averaging:
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.averaging:
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if not self.averaging:
            return
        current = checkpoint["state_dict"]
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        # Only parameters and buffers are averaged; the rest (the best validation value so far) is the model's.
        averaged = {name for name, _ in (*pl_module.named_parameters(), *pl_module.named_buffers())}
        checkpoint["state_dict"] = {name: checkpoint["state_dict"][name] if name in averaged else value
                                    for name, value in current.items()}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # A checkpoint from before the first averaged step holds the current weights only, loaded already; the
        # test stage evaluates the checkpoint's state_dict, the average, and must not reload the current weights.
        if trainer.state.fn == "fit" and "current_model_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": list(self.history), "triggered_at": self.triggered_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.history = list(state_dict["history"])
        self.triggered_at = state_dict["triggered_at"]
