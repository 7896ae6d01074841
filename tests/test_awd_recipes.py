"""The AWD-LSTM recipes compose and train a few batches with every regulariser and NT-ASGD on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rnnlab.run.pipeline import train

from conftest import compose_train
from test_lm import PTB_LIKE, write_ptb


@pytest.mark.slow  # 3 x 1150 units: about a minute on 2 cores
@pytest.mark.parametrize("experiment", ["lm_ptb_awd", "lm_ptb_awd_cpu"])
def test_awd_recipe_trains_a_few_batches(experiment: str, tmp_path: Path) -> None:
    data = write_ptb(tmp_path / "data", PTB_LIKE * 100)  # 80 columns of about 25 steps
    cfg = compose_train([f"experiment={experiment}", "debug=smoke", f"paths.data_dir={data}", "~logger",
                         "trainer.max_time=null", "callbacks.nt_asgd.patience=0"], tmp_path / "run")
    assert cfg.model.dropout_kind == "locked" and cfg.model.weight_drop > 0 and cfg.task.module.ar == 2.0
    assert cfg.data.variable_bptt and cfg.trainer.reload_dataloaders_every_n_epochs == 1
    metrics = train(cfg)
    assert math.isfinite(metrics["test/ppl"])
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert "NTASGD" in last["callbacks"] and len(last["callbacks"]["NTASGD"]["history"]) >= 1
