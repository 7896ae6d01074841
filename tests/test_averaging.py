"""NT-ASGD (``rnnlab.run.averaging``): AWD-LSTM's trigger, the weights validated and saved before and after it,
and a resumed run that goes on as the uninterrupted one."""

from __future__ import annotations

import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from rnnlab.run.averaging import NTASGD, should_trigger

from test_lm import PTB_LIKE, write_ptb
from test_resume import hook, metrics, run_train


@pytest.mark.parametrize("mode", ["min", "max"])
def test_trigger_fires_per_awd_rule(mode: str) -> None:
    """``len(history) > n and value > min(history[:-n])``, mirrored for ``max``."""
    sign = 1 if mode == "min" else -1
    history = [sign * v for v in (5.0, 4.0, 3.0, 3.5)]
    assert not should_trigger(history[:2], sign * 9.0, 2, mode)  # too few checks for any comparison
    assert not should_trigger(history[:3], sign * 4.5, 2, mode)  # history[:-2] = [5]: not worse than 5
    assert should_trigger(history[:3], sign * 5.5, 2, mode)
    assert not should_trigger(history, sign * 4.0, 2, mode)  # [5, 4]: equal to the best is no worse
    assert should_trigger(history, sign * 4.1, 2, mode)  # worse than 4, though better than the last 3.5 and 3
    assert should_trigger(history, sign * 3.2, 0, mode)  # patience 0: any value worse than the best so far
    with pytest.raises(ValueError, match="mode"):
        NTASGD(mode="up")


class Scripted(L.LightningModule):
    """A 2-weight regression whose validation metric is scripted, one value per check; records the weights
    after every optimiser step and the weights each validation sees."""

    def __init__(self, scores: list[float]):
        super().__init__()
        self.layer = nn.Linear(2, 1, bias=False)
        self.scores, self.iterates, self.validated = scores, [], []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.layer(x) - y) ** 2).mean()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.iterates.append(self.layer.weight.detach().clone())

    def validation_step(self, batch, batch_idx):
        self.validated.append(self.layer.weight.detach().clone())

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.log("val/loss", self.scores[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]])
    return DataLoader(list(zip(x, x @ torch.tensor([1.5, -2.0]))), batch_size=1)  # 4 steps an epoch


def fit(scores: list[float], root: Path, epochs: int) -> tuple[Scripted, NTASGD, dict]:
    torch.manual_seed(0)
    model, averaging = Scripted(scores), NTASGD(monitor="val/loss", patience=1)
    last = ModelCheckpoint(dirpath=root, filename="last", monitor=None)  # written after every validation
    trainer = L.Trainer(max_epochs=epochs, callbacks=[averaging, last], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=root, num_sanity_val_steps=0)
    trainer.fit(model, loader(), loader())
    return model, averaging, torch.load(root / "last.ckpt", weights_only=True)


def test_before_the_trigger_everything_sees_the_current_weights(tmp_path: Path) -> None:
    model, averaging, checkpoint = fit([5.0, 4.0, 4.5], tmp_path, 2)
    assert averaging.triggered_at is None and averaging.history == [5.0, 4.0]
    # 4 validation batches a check, each after the 4 steps of its epoch
    assert all(torch.equal(model.validated[4 * check + 3], model.iterates[4 * check + 3]) for check in (0, 1))
    assert "current_model_state" not in checkpoint
    assert torch.equal(checkpoint["state_dict"]["layer.weight"], model.iterates[-1])
    assert torch.equal(model.layer.weight, model.iterates[-1])  # training ended with the current weights


def test_after_the_trigger_validation_and_checkpoints_hold_the_uniform_average(tmp_path: Path) -> None:
    """Check 3 (5.5 after 5, 4; patience 1) triggers: the steps of the two epochs after it are averaged."""
    model, averaging, checkpoint = fit([5.0, 4.0, 5.5, 4.4, 4.3], tmp_path, 5)
    assert averaging.triggered_at == 12 and averaging.history == [5.0, 4.0, 5.5]
    average = torch.stack(model.iterates[12:]).mean(0)
    fourth = torch.stack(model.iterates[12:16]).mean(0)
    assert torch.equal(model.validated[2 * 4 + 3], model.iterates[11])  # the check that triggered: current weights
    assert torch.allclose(model.validated[3 * 4 + 3], fourth, atol=1e-7)
    assert torch.allclose(model.validated[-1], average, atol=1e-7)
    assert torch.allclose(checkpoint["state_dict"]["layer.weight"], average, atol=1e-7)
    assert checkpoint["state_dict"].keys() == model.state_dict().keys()  # eval.py loads it strictly
    assert torch.equal(checkpoint["current_model_state"]["layer.weight"], model.iterates[-1])
    assert torch.allclose(model.layer.weight, average, atol=1e-7)  # training ends with the average in the model
    assert checkpoint["callbacks"]["NTASGD"]["triggered_at"] == 12


# The language model of test_resume (dropout on) on a longer text, with variable BPTT windows; the trigger with
# patience 0: the first check that is no better than the best so far (SGD at lr 8 overshoots soon enough).
LM = ["task=lm", "model=lstm", "model.head_hidden=0", "data.batch_size=2", "data.eval_batch_size=3", "data.bptt=8",
      "model.dropout=0.3", "model.embedding_dim=8", "model.encoder.hidden_size=8", "trainer.deterministic=true",
      "seed=7", "callbacks.early_stopping.patience=100", "logger=csv", "trainer.max_epochs=6",
      "task.optimizer._target_=torch.optim.SGD", "task.optimizer.lr=8", "data.variable_bptt=true",
      "++trainer.reload_dataloaders_every_n_epochs=1", "+callbacks.nt_asgd._target_=rnnlab.run.averaging.NTASGD",
      "+callbacks.nt_asgd.monitor=val/ppl", "+callbacks.nt_asgd.patience=0"]


@pytest.mark.slow
def test_kill_after_the_trigger_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Killed inside the last epoch, after a checkpoint that holds an average: resumed, the run ends with the
    uninterrupted run's metrics, average and current weights."""
    args = [*LM, f"paths.data_dir={write_ptb(tmp_path / 'data', PTB_LIKE * 8)}"]
    whole = tmp_path / "whole"
    finished = run_train(args, whole)
    assert finished.returncode == 0, finished.stderr[-3000:]
    last = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)
    run = tmp_path / "resumed"
    killed = run_train([*args, *hook("SignalAt", step=last["global_step"] - 2, signum=signal.SIGKILL)], run)
    assert killed.returncode == -signal.SIGKILL
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert "current_model_state" in saved, "the fixture must trigger two epochs before the end"
    resumed = run_train([*args, "ckpt_path=last"], run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics(run) == metrics(whole)
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for key in ("state_dict", "current_model_state"):
        assert all(torch.equal(last[key][name], final[key][name]) for name in last[key])
