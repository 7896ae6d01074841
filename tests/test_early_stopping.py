"""Early stopping waits for learning to start, and the log says why a run stopped."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader

from conftest import compose_train
from rnnlab.run.callbacks import EarlyStoppingAfterStart, stop_reason
from rnnlab.run.pipeline import train

# Validation F1 per epoch of a tagger that predicts no entity for six epochs, then learns and levels off.
LATE_START = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


class ScriptedF1(L.LightningModule):
    """Logs ``val/f1`` from a fixed script, one value per epoch; trains a single weight on nothing in particular."""

    def __init__(self, script: list[float]):
        super().__init__()
        self.script = script
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return (self.weight - batch).pow(2).mean()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val/f1", self.script[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(callback: EarlyStopping, script: list[float], tmp_path, **trainer_options) -> L.Trainer:
    """Fits ``ScriptedF1`` for at most ``len(script)`` epochs with ``callback``; returns the trainer."""
    data = DataLoader(torch.ones(2, 1), batch_size=2)
    trainer = L.Trainer(max_epochs=len(script), callbacks=[callback], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        num_sanity_val_steps=0, **trainer_options)
    trainer.fit(ScriptedF1(script), train_dataloaders=data, val_dataloaders=data)
    return trainer


def test_plain_early_stopping_ends_before_learning_starts(tmp_path) -> None:
    """The failure this callback fixes: patience 3 is spent on the epochs at 0.0."""
    trainer = fit(EarlyStopping("val/f1", mode="max", patience=3), LATE_START, tmp_path)
    assert trainer.current_epoch == 4


def test_patience_starts_when_the_metric_first_moves(tmp_path) -> None:
    callback = EarlyStoppingAfterStart("val/f1", mode="max", patience=3)
    trainer = fit(callback, LATE_START, tmp_path)
    # Moves at epoch 6, best 0.5 at epoch 7, three epochs without improvement: stops after epoch 10.
    assert trainer.current_epoch == 11 and callback.stopped_epoch == 10
    assert "did not improve in the last 3 records" in stop_reason(trainer)


def test_a_metric_that_never_moves_runs_to_max_epochs(tmp_path) -> None:
    callback = EarlyStoppingAfterStart("val/f1", mode="max", patience=2)
    trainer = fit(callback, [0.0] * 6, tmp_path)
    assert trainer.current_epoch == 6 and not callback.started
    assert stop_reason(trainer) == "trainer.max_epochs=6 reached"


def test_a_metric_that_moves_at_once_stops_as_plain_early_stopping_does(tmp_path) -> None:
    script = [0.2, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    ours = fit(EarlyStoppingAfterStart("val/f1", mode="max", patience=2), script, tmp_path)
    plain = fit(EarlyStopping("val/f1", mode="max", patience=2), script, tmp_path)
    assert ours.current_epoch == plain.current_epoch == 4


def test_a_resumed_run_remembers_that_learning_started() -> None:
    callback = EarlyStoppingAfterStart("val/f1", mode="max", patience=2)
    for value in (0.0, 0.1, 0.1):
        callback._evaluate_stopping_criteria(torch.tensor(value))
    restored = EarlyStoppingAfterStart("val/f1", mode="max", patience=2)
    restored.load_state_dict(callback.state_dict())
    assert restored.started and restored.first_score == 0.0 and restored.wait_count == 1
    assert restored._evaluate_stopping_criteria(torch.tensor(0.1))[0]  # patience 2 spent: stop


def test_default_callbacks_wait_and_the_log_says_why_training_stopped(tmp_path, data_dir,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    cfg = compose_train(["task=ner", "model=bilstm", f"paths.data_dir={data_dir}", "trainer.max_epochs=2",
                         "model.embedding_dim=8", "model.encoder.hidden_size=8"], tmp_path)
    assert isinstance(instantiate(cfg.callbacks.early_stopping), EarlyStoppingAfterStart)
    with caplog.at_level(logging.INFO, logger="rnnlab.run.pipeline"):
        train(cfg)
    assert "training stopped: trainer.max_epochs=2 reached" in caplog.text
