"""Variable BPTT windows (AWD-LSTM): the lengths' rule, each token predicted once an epoch, the learning rate
scaled per window, and the fixed windows unchanged when it is off."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from rnnlab.data.lm import BPTTWindows, variable_window_lengths
from rnnlab.data.special import IGNORE_INDEX
from rnnlab.errors import UserError
from rnnlab.run.pipeline import train

from conftest import compose_train
from test_lm import SMALL, lm_module, write_ptb


def test_window_lengths_follow_the_rule_per_seed_and_epoch() -> None:
    lengths = variable_window_lengths(100_000, 70, seed=3, epoch=0)
    assert sum(lengths) == 100_000 and min(lengths) >= 5
    assert lengths == variable_window_lengths(100_000, 70, seed=3, epoch=0)
    assert lengths != variable_window_lengths(100_000, 70, seed=3, epoch=1)
    assert lengths != variable_window_lengths(100_000, 70, seed=4, epoch=0)
    drawn = np.array(lengths[:-1])  # the last one is cut to what is left
    short = drawn < 52  # about bptt / 2 = 35 (sd 5), against bptt = 70
    assert abs(short.mean() - 0.05) < 0.01
    assert abs(drawn[~short].mean() - 70) < 0.6 and abs(drawn[~short].std() - 5) < 0.5  # about 4 standard errors
    assert abs(drawn[short].mean() - 35) < 2.5
    assert variable_window_lengths(7, 70, seed=0, epoch=0) == [7]
    assert min(variable_window_lengths(10_000, 4, seed=0, epoch=0)) == 5  # never below 5 steps, the last included
    assert all(min(variable_window_lengths(length, 8, seed, 0)) >= 5 for length in range(5, 60) for seed in range(5))


def test_every_token_is_predicted_once_an_epoch_in_the_fixed_layout() -> None:
    """The variable windows of a column, end to end, are the fixed windows' sequence: same tokens, same order."""
    stream = torch.randint(4, 50, (1001,))
    stream[::9] = 2  # <bos>: never a target
    fixed = BPTTWindows(stream, num_columns=4, rows=range(4), bptt=7, pad_id=0, bos_id=2)
    lengths = variable_window_lengths(fixed.length, 7, seed=1, epoch=5)
    variable = BPTTWindows(stream, num_columns=4, rows=range(4), bptt=7, pad_id=0, bos_id=2, lengths=lengths)
    assert len(variable) == len(lengths) != len(fixed)
    for key in ("tokens", "targets", "mask"):
        joined = [torch.cat([batch[key] for batch in windows], 1) for windows in (fixed, variable)]
        assert torch.equal(*joined)
    targets = torch.cat([batch["targets"].flatten() for batch in variable])
    assert int((targets != IGNORE_INDEX).sum()) == int((stream[1:] != 2).sum())
    assert [batch["tokens"].shape[1] for batch in variable] == lengths
    assert [batch["lr_scale"] for batch in variable] == [length / 7 for length in lengths]
    assert all("lr_scale" not in batch for batch in fixed)
    with pytest.raises(ValueError, match="cover"):
        BPTTWindows(stream, num_columns=4, rows=range(4), bptt=7, pad_id=0, bos_id=2, lengths=lengths[:-1])


def test_fixed_windows_are_cut_as_before() -> None:
    """Off (the default): batch ``i`` is steps ``[i*bptt, (i+1)*bptt)`` of every column, and nothing else."""
    stream = torch.arange(4, 27)  # 22 inputs in 3 columns of 8 (the last padded)
    windows = BPTTWindows(stream, num_columns=3, rows=range(3), bptt=3, pad_id=0, bos_id=2)
    assert len(windows) == math.ceil(8 / 3)
    batch = windows[1]
    assert sorted(batch) == ["mask", "targets", "tokens"]
    assert batch["tokens"].tolist() == [[7, 8, 9], [15, 16, 17], [23, 24, 25]]
    assert windows[2]["tokens"].tolist() == [[10, 11], [18, 19], [0, 0]]


class Windows(L.LightningDataModule):
    def __init__(self, batches: list[dict]):
        super().__init__()
        self.batches = batches

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.batches, batch_size=None)


def one_step(batch: dict) -> tuple[dict[str, torch.Tensor], float]:
    """The weights after one SGD step (lr 2) on ``batch``, and the learning rate the optimiser holds after it."""
    torch.manual_seed(0)
    module = lm_module()
    module.optimizer_config = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 2.0}
    trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, limit_val_batches=0, gradient_clip_val=1e-3)
    trainer.fit(module, datamodule=Windows([batch]))
    return ({name: value.detach().clone() for name, value in module.named_parameters()},
            trainer.optimizers[0].param_groups[0]["lr"])


def test_the_learning_rate_is_scaled_by_the_window_length() -> None:
    """The update of a window with ``lr_scale`` 0.25 is a quarter of the unscaled one, also under clipping (the
    clipped gradient is the same; the scaled loss would have been clipped to the same norm)."""
    torch.manual_seed(1)
    tokens = torch.randint(4, 12, (2, 5))
    batch = {"tokens": tokens, "targets": tokens.roll(-1, 1), "mask": torch.ones_like(tokens, dtype=torch.bool)}
    torch.manual_seed(0)
    start = {name: value.detach().clone() for name, value in lm_module().named_parameters()}
    plain, plain_lr = one_step(dict(batch))
    scaled, scaled_lr = one_step({**batch, "lr_scale": 0.25})
    assert plain_lr == scaled_lr == 2.0  # set back after the step
    for name in start:
        assert torch.allclose(scaled[name] - start[name], (plain[name] - start[name]) / 4, atol=1e-6), name
    assert any(not torch.equal(plain[name], start[name]) for name in start)


def test_variable_bptt_needs_dataloaders_made_every_epoch(tmp_path: Path) -> None:
    data = write_ptb(tmp_path / "data")
    args = ["task=lm", "model=lstm", *SMALL, f"paths.data_dir={data}", "trainer.max_epochs=1", "~logger",
            "data.variable_bptt=true"]
    with pytest.raises(UserError, match="reload_dataloaders_every_n_epochs=1"):
        train(compose_train(args, tmp_path / "run"))
