"""Exact resumption after SIGKILL and SIGTERM, reproducible runs, and the faults a user sees as one message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlab.errors import USER_ERROR_EXIT

from conftest import CONLL_TRAIN, ROOT, compose_train, write_conll
from rnnlab.data.resumable import ResumableLoader
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.run.pipeline import train

# 8 sentences in batches of 2: 4 steps an epoch; dropout on, so the random generators matter too.
TINY = ["task=ner", "model=bilstm", "data.batch_size=2", "model.embedding_dim=8", "model.encoder.hidden_size=8",
        "model.head_hidden=8", "trainer.deterministic=true", "seed=7", "callbacks.early_stopping.patience=100"]

HOOKS = '''
import os
import lightning as L
import torch


class SignalAt(L.Callback):
    """Sends ``signum`` to this process at the end of global step ``step``."""

    def __init__(self, step, signum):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class NanAt(L.Callback):
    """Fills the first parameter with nan before global step ``step``: a diverged model."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, *args):
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))
'''


def hook(name: str, **options) -> list[str]:
    """Overrides adding the test callback ``name`` of ``HOOKS``."""
    return [f"+callbacks.hook._target_=hooks.{name}", *(f"+callbacks.hook.{k}={v}" for k, v in options.items())]


def run_train(args: list[str], run_dir: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``train.py`` in a subprocess (in ``cwd``, by default the run's parent) that can import ``HOOKS``."""
    cwd = cwd or run_dir.parent
    (cwd / "hooks.py").write_text(HOOKS)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(cwd)])}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def metrics(run_dir: Path) -> dict[str, float]:
    values = json.loads((run_dir / "metrics.json").read_text())
    values.pop("train_seconds")
    return values


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_conll(tmp_path / "data", train=CONLL_TRAIN + "\n" + CONLL_TRAIN.replace("-DOCSTART- -X- -X- O", "")
                       + "\nParis NNP B-NP I-LOC\n\nOslo NNP B-NP I-LOC\n")


def test_loader_resumes_its_epoch_after_the_saved_position() -> None:
    def loader() -> ResumableLoader:
        lengths = [(i * 7) % 11 + 1 for i in range(20)]
        return ResumableLoader(range(20), batch_sampler=BucketBatchSampler(lengths, 4, seed=1), collate_fn=list)

    first = loader()
    first.batch_sampler.set_epoch(2)  # as Lightning does before every epoch
    batches = iter(first)
    head = [next(batches), next(batches)]
    state, rest = first.state_dict(), list(batches)
    assert state == {"epoch": 2, "position": 2} and len(head + rest) == 5
    resumed = loader()
    resumed.load_state_dict(state)
    resumed.batch_sampler.set_epoch(2)
    assert list(resumed) == rest
    resumed.batch_sampler.set_epoch(3)
    assert len(list(resumed)) == 5  # only the resumed epoch is cut
    at_epoch_end = loader()
    at_epoch_end.load_state_dict({"epoch": 2, "position": 5})
    at_epoch_end.batch_sampler.set_epoch(3)
    assert len(list(at_epoch_end)) == 5
    windows = ResumableLoader(torch.arange(6), batch_size=None)  # items that are batches (language models)
    windows.load_state_dict({"epoch": 0, "position": 4})
    assert [int(item) for item in windows] == [4, 5]


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tiny_data: Path, tmp_path: Path) -> None:
    args = [*TINY, f"paths.data_dir={tiny_data}", "trainer.max_epochs=3",
            "callbacks.last_checkpoint_in_epoch.every_n_train_steps=3"]
    whole = run_train(args, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]

    run = tmp_path / "resumed"
    killed = run_train([*args, *hook("SignalAt", step=7, signum=signal.SIGKILL)], run)  # epoch 1, after step 6's checkpoint
    assert killed.returncode == -signal.SIGKILL and not (run / "metrics.json").exists()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    resumed = run_train([*args, "ckpt_path=last"], run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert metrics(run) == metrics(tmp_path / "whole")
    expected, actual = weights(tmp_path / "whole" / "checkpoints" / "last.ckpt"), weights(run / "checkpoints" / "last.ckpt")
    assert expected.keys() == actual.keys() and all(torch.equal(expected[k], actual[k]) for k in expected)
    # The CSV logger went on in the same folder.
    assert (run / "csv" / "metrics.csv").read_text().count("val/f1") >= 1


def test_sigterm_saves_a_checkpoint_and_exits_with_the_resume_command(tiny_data: Path, tmp_path: Path) -> None:
    """The checkpoint is written where the periodic ones are (end of a training batch): the SIGKILL test resumes one."""
    run = tmp_path / "run"
    stopped = run_train([*TINY, f"paths.data_dir={tiny_data}", *hook("SignalAt", step=2, signum=signal.SIGTERM)], run)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert stopped.stderr.strip().splitlines()[-1] == (f"error: stopped by SIGTERM at global step 2 (epoch 0); to "
                                                        f"resume, run the same command with hydra.run.dir={run} "
                                                        f"ckpt_path=last")
    assert "Traceback" not in stopped.stderr
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


def test_last_checkpoint_follows_training_after_an_early_best(tiny_data: Path, tmp_path: Path) -> None:
    """last.ckpt (what ``ckpt_path=last`` resumes) is the latest state even when the best validation came first."""
    # Learning rate 0: the validation F1 never changes, so epoch 0 stays the best one.
    train(compose_train([*TINY, f"paths.data_dir={tiny_data}", "trainer.max_epochs=3", "task.optimizer.lr=0",
                         "~logger"], tmp_path))
    checkpoints = tmp_path / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    best, last = (torch.load(checkpoints / name, weights_only=True) for name in ("best.ckpt", "last.ckpt"))
    assert (best["epoch"], best["global_step"]) == (0, 4)  # 4 steps an epoch
    assert (last["epoch"], last["global_step"]) == (2, 12)


def test_same_seed_gives_identical_runs(tiny_data: Path, tmp_path: Path) -> None:
    overrides = [*TINY, f"paths.data_dir={tiny_data}", "trainer.max_epochs=2"]
    for run in ("a", "b"):
        train(compose_train(overrides, tmp_path / run))
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


def test_nonfinite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_train([*TINY, f"paths.data_dir={tiny_data}", "trainer.max_epochs=3",
                        "callbacks.last_checkpoint_in_epoch.every_n_train_steps=1", *hook("NanAt", step=2)], run)
    assert result.returncode == USER_ERROR_EXIT, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: the training loss is nan at global step 3 (epoch 0, batch 2)")
    assert "task.optimizer.lr" in message and "Traceback" not in result.stderr
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert f"last checkpoint, {run / 'checkpoints' / 'last.ckpt'}" in message
    parameters = {k: v for k, v in saved["state_dict"].items() if not k.startswith("best.")}  # best: -inf at first
    assert parameters and all(torch.isfinite(value).all() for value in parameters.values())


@pytest.mark.parametrize("option", ["hydra.run.dir", "paths.output_dir"])
def test_unwritable_output_directory_is_one_clear_error(option: str, tiny_data: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    target = tmp_path / "a_file" / "run"  # under a regular file: not creatable, not even by root
    args = [*TINY, f"paths.data_dir={tiny_data}", "trainer.max_epochs=1"]
    result = run_train([*args, f"paths.output_dir={target}"], tmp_path / "run") if option == "paths.output_dir" \
        else run_train(args, target, cwd=tmp_path)
    assert result.returncode == USER_ERROR_EXIT
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot create the output directory {target} (Not a directory); set {option}=... to a writable folder")
    assert "Traceback" not in result.stderr


def test_resuming_without_a_checkpoint_says_where_it_looked(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_train([*TINY, f"paths.data_dir={tiny_data}", "ckpt_path=last"], run)
    assert result.returncode == USER_ERROR_EXIT
    assert f"error: ckpt_path=last: no checkpoint at {run / 'checkpoints' / 'last.ckpt'}; " in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_training_file_exits_naming_it(tmp_path: Path) -> None:
    root = write_conll(tmp_path / "data", train="")
    result = run_train(["task=ner", f"paths.data_dir={root}"], tmp_path / "run")
    assert result.returncode == USER_ERROR_EXIT
    assert "error: conll2003: the train split (eng.train) holds no example; check data.files.train" in result.stderr
    assert "Traceback" not in result.stderr
