"""Exact resumption after SIGKILL and SIGTERM, reproducible runs, and the faults a user sees as one message."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from rnnlab.errors import USER_ERROR_EXIT

from conftest import CONLL_TRAIN, ROOT, compose_train, write_conll
from test_classify import write_sst
from test_lm import write_ptb
from test_sst_trees import write_trees
from test_translation import write_multi30k
from rnnlab.data.resumable import ResumableLoader
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.run.pipeline import train

# 8 sentences in batches of 2: 4 steps an epoch; dropout on, so the random generators matter too. The plain tagger:
# train.py runs in a subprocess here, where the NER default would read GloVe.
TINY = ["experiment=ner_plain", "data.batch_size=2", "model.embedding_dim=8", "model.encoder.hidden_size=8",
        "model.head_hidden=8", "trainer.deterministic=true", "seed=7", "callbacks.early_stopping.patience=100"]

HOOKS = '''
import os
import resource
import signal

import lightning as L
import torch


class SignalAt(L.Callback):
    """Sends ``signum`` to this process at the end of global step ``step``."""

    def __init__(self, step, signum):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class FileSizeLimitAt(L.Callback):
    """From the end of global step ``step`` on, no file may grow past half the size of ``path``: the next write
    of a checkpoint fails as on a full disk (EFBIG where a full disk gives ENOSPC)."""

    def __init__(self, step, path):
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a killed process
            resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(self.path) // 2, resource.RLIM_INFINITY))


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


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of the run's CSV log, without empty cells (a column may be added later)."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return [{key: value for key, value in row.items() if value} for row in csv.DictReader(handle)]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def conll_fixture(root: Path) -> Path:
    return write_conll(root, train=CONLL_TRAIN + "\n" + CONLL_TRAIN.replace("-DOCSTART- -X- -X- O", "")
                       + "\nParis NNP B-NP I-LOC\n\nOslo NNP B-NP I-LOC\n")


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return conll_fixture(tmp_path / "data")


def test_loader_resumes_its_epoch_after_the_saved_position() -> None:
    def loader() -> ResumableLoader:
        lengths = [(i * 7) % 11 + 1 for i in range(20)]
        return ResumableLoader(range(20), batch_sampler=BucketBatchSampler(lengths, 4, seed=1), collate_fn=list)

    first = loader()
    _set_sampler_epoch(first, 2)  # as Lightning does before every epoch
    batches = iter(first)
    head = [next(batches), next(batches)]
    state, rest = first.state_dict(), list(batches)
    assert state == {"epoch": 2, "position": 2} and len(head + rest) == 5
    resumed = loader()
    resumed.load_state_dict(state)
    _set_sampler_epoch(resumed, 2)
    assert list(resumed) == rest
    _set_sampler_epoch(resumed, 3)
    assert len(list(resumed)) == 5  # only the resumed epoch is cut
    at_epoch_end = loader()
    at_epoch_end.load_state_dict({"epoch": 2, "position": 5})
    _set_sampler_epoch(at_epoch_end, 3)
    assert len(list(at_epoch_end)) == 5
    windows = ResumableLoader(torch.arange(6), batch_size=None)  # items that are batches (language models)
    windows.load_state_dict({"epoch": 0, "position": 4})
    assert [int(item) for item in windows] == [4, 5]


def test_loader_with_a_generator_draws_as_a_shuffling_dataloader_and_resumes_it() -> None:
    """The lab's loader: the batches of ``DataLoader(shuffle=True, generator=...)``, continued after a checkpoint
    inside an epoch or at its end, and no draw from torch's global generator."""
    def loader(kind: type[DataLoader]) -> DataLoader:
        generator = torch.Generator().manual_seed(3)
        if kind is DataLoader:
            return DataLoader(range(10), batch_size=3, shuffle=True, generator=generator, collate_fn=list)
        batches = BatchSampler(RandomSampler(range(10), generator=generator), 3, drop_last=False)
        return ResumableLoader(range(10), batch_sampler=batches, generator=generator, collate_fn=list)

    torch.manual_seed(0)
    global_state = torch.get_rng_state()
    reference, epochs = loader(DataLoader), [[], [], []]
    for epoch in epochs:
        epoch.extend(reference)
    first = loader(ResumableLoader)
    assert [list(first) for _ in epochs] == epochs
    assert torch.equal(torch.get_rng_state(), global_state)

    first = loader(ResumableLoader)
    list(first)
    _set_sampler_epoch(first, 1)
    batches = iter(first)
    next(batches)
    inside, at_end = first.state_dict(), None
    list(batches)
    at_end = first.state_dict()
    for state, epoch, rest in ((inside, 1, epochs[1][1:]), (at_end, 2, epochs[2])):
        resumed = loader(ResumableLoader)
        resumed.load_state_dict(state)
        _set_sampler_epoch(resumed, epoch)
        assert list(resumed) == rest


# Every task family on a tiny fixture it writes, with dropout on so that the random generators matter:
# its overrides and the writer of its data folder (None: generated data).
SMALL_RNN = ["model.embedding_dim=8", "model.encoder.hidden_size=8", "trainer.deterministic=true", "seed=7",
             "callbacks.early_stopping.patience=100", "logger=csv"]
FAMILIES = {
    "tagging": ([*TINY, "logger=csv"], conll_fixture),
    "classification": (["task=classify", "data=sst2", "model=bilstm", "data.batch_size=2", "model.head_hidden=8", *SMALL_RNN],
                       write_sst),
    "phrases": (["task=classify", "data=sst2", "data=sst_trees", "data.granularity=binary", "model=bilstm", "data.batch_size=4",
                 "model.head_hidden=8", *SMALL_RNN], write_trees),
    "lm": (["task=lm", "model=lstm", "model.head_hidden=0", "data.batch_size=2", "data.eval_batch_size=3",
            "data.bptt=4", "model.dropout=0.3", *SMALL_RNN], write_ptb),
    "translation": (["task=translation", "model=lstm", "model/attention=additive", "data.min_freq=1",
                     "data.batch_size=2", *SMALL_RNN], write_multi30k),
    "lab": (["experiment=long_range", "data.distance=5", "data.num_train=64", "data.num_val=32",
             "data.num_test=32", "data.batch_size=16", "model.dropout=0.3", *SMALL_RNN], None),
}


# Run by default (the others with -m slow): both checkpoints of the tagger, SST-2 at an epoch's end (where a
# resume once drew other dropout masks), the language model inside an epoch (its carried state).
DEFAULT_RESUMES = {("tagging", "epoch_end"), ("tagging", "in_epoch"), ("classification", "epoch_end"),
                   ("lm", "in_epoch")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted 3-epoch run per family, shared by the tests that resume it: (arguments, run folder)."""
    runs = {}

    def run(family: str) -> tuple[list[str], Path]:
        if family not in runs:
            overrides, write = FAMILIES[family]
            root = tmp_path_factory.mktemp(family)
            args = [*overrides, "trainer.max_epochs=3", *([f"paths.data_dir={write(root / 'data')}"] if write else [])]
            result = run_train(args, root / "whole")
            assert result.returncode == 0, result.stderr[-3000:]
            runs[family] = args, root / "whole"
        return runs[family]
    return run


@pytest.mark.parametrize("family,checkpoint", [
    case if case in DEFAULT_RESUMES else pytest.param(*case, marks=pytest.mark.slow)
    for case in itertools.product(FAMILIES, ["epoch_end", "in_epoch"])])
def test_sigkill_then_resume_equals_an_uninterrupted_run(family: str, checkpoint: str, uninterrupted,
                                                         tmp_path: Path) -> None:
    """Killed one step after last.ckpt was written, at the end of epoch 0 or inside epoch 1; resumed, the run ends
    with the uninterrupted run's metrics and weights."""
    args, whole = uninterrupted(family)
    steps_per_epoch = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] // 3
    assert steps_per_epoch >= 2, "the fixture needs two steps an epoch for a checkpoint inside one"
    if checkpoint == "in_epoch":
        saved_at = steps_per_epoch + steps_per_epoch // 2
        args = [*args, f"callbacks.last_checkpoint_in_epoch.every_n_train_steps={saved_at}"]
    else:
        saved_at = steps_per_epoch
    run = tmp_path / "resumed"
    killed = run_train([*args, *hook("SignalAt", step=saved_at + 1, signum=signal.SIGKILL)], run)
    assert killed.returncode == -signal.SIGKILL and not (run / "metrics.json").exists(), killed.stderr[-3000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == saved_at
    # What the checkpoint reflects is in the log, its validations included.
    logged = csv_rows(run)
    assert logged == csv_rows(whole)[:len(logged)]
    assert any(value for row in logged for key, value in row.items() if key.startswith("val/"))
    resumed = run_train([*args, "ckpt_path=last"], run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert metrics(run) == metrics(whole)
    expected, actual = weights(whole / "checkpoints" / "last.ckpt"), weights(run / "checkpoints" / "last.ckpt")
    assert expected.keys() == actual.keys() and all(torch.equal(expected[k], actual[k]) for k in expected)
    # The log holds every row once, in order: what the killed run wrote up to its checkpoint, then the resumed run.
    assert csv_rows(run) == csv_rows(whole)


def test_sigterm_then_resume_equals_an_uninterrupted_run(uninterrupted, tmp_path: Path) -> None:
    args, whole = uninterrupted("tagging")
    run = tmp_path / "resumed"
    stopped = run_train([*args, *hook("SignalAt", step=6, signum=signal.SIGTERM)], run)  # inside epoch 1
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    resumed = run_train([*args, "ckpt_path=last"], run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics(run) == metrics(whole) and csv_rows(run) == csv_rows(whole)
    expected, actual = weights(whole / "checkpoints" / "last.ckpt"), weights(run / "checkpoints" / "last.ckpt")
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


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


def test_testing_an_early_best_checkpoint_keeps_every_logged_row(tiny_data: Path, tmp_path: Path) -> None:
    """The test stage loads best.ckpt; its record of the CSV rows serves resuming, and testing cuts nothing."""
    train(compose_train([*TINY, f"paths.data_dir={tiny_data}", "trainer.max_epochs=3", "task.optimizer.lr=0",
                         "logger=csv"], tmp_path))  # epoch 0 stays the best (see above)
    logged = csv_rows(tmp_path)
    assert [row["epoch"] for row in logged if "val/f1" in row] == ["0", "1", "2"]
    assert "test/f1" in logged[-1]


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoints(tiny_data: Path, tmp_path: Path) -> None:
    """Writes fail from step 5 on (files limited to half a checkpoint): the checkpoints of epoch 0 stay whole."""
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    result = run_train([*TINY, f"paths.data_dir={tiny_data}", "trainer.max_epochs=3",
                        *hook("FileSizeLimitAt", step=5, path=last)], run)
    assert result.returncode == USER_ERROR_EXIT, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: could not write the checkpoint {run / 'checkpoints'}/") and "Traceback" not in result.stderr
    written = sorted((run / "checkpoints").iterdir())
    assert [path.name for path in written] == ["best.ckpt", "last.ckpt"]  # no partial file left behind
    assert all(torch.load(path, weights_only=True)["global_step"] == 4 for path in written)


def test_resume_with_other_data_or_a_damaged_checkpoint_is_one_clear_error(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [*TINY, f"paths.data_dir={tiny_data}", "trainer.max_epochs=1"]
    train(compose_train([*args, "~logger"], run))
    last = run / "checkpoints" / "last.ckpt"

    other_option = run_train([*args, "data.min_freq=2", "ckpt_path=last"], run)
    assert other_option.returncode == USER_ERROR_EXIT and "Traceback" not in other_option.stderr
    assert other_option.stderr.strip().splitlines()[-1] == (
        f"error: cannot resume from {last}: it was written with data.min_freq=1, this run has data.min_freq=2; "
        f"resume with the options of the run that wrote it (its .hydra/config.yaml lists them), or start a new run "
        f"in another folder (hydra.run.dir=...)")

    train_file = tiny_data / "conll2003" / "eng.train"
    train_file.write_text(train_file.read_text() + "\nHelsinki NNP B-NP I-LOC\n")
    other_file = run_train([*args, "ckpt_path=last"], run)
    assert other_file.returncode == USER_ERROR_EXIT and "Traceback" not in other_file.stderr
    assert other_file.stderr.strip().splitlines()[-1].startswith(
        f"error: cannot resume from {last}: the vocab built from the data (")
    assert "differs from the checkpoint's" in other_file.stderr and "the data files changed" in other_file.stderr

    last.write_bytes(last.read_bytes()[:len(last.read_bytes()) // 2])  # as a kill while writing would leave it
    damaged = run_train([*args, "ckpt_path=last"], run)
    assert damaged.returncode == USER_ERROR_EXIT and "Traceback" not in damaged.stderr
    assert damaged.stderr.strip().splitlines()[-1].startswith(f"error: cannot resume from {last}: it is damaged (")


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
