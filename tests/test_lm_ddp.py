"""LM streams under data parallelism: each process its own columns, every token once, perplexity as one process."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from conftest import compose_train
from rnnlab.data.errors import DataError
from rnnlab.data.lm import LMDataModule
from rnnlab.data.special import BOS, IGNORE_INDEX
from rnnlab.run.pipeline import build
from test_lm import PTB_LIKE, SMALL, write_ptb

LONGER = "".join(f" {line} w{i} \n" for i in range(6) for line in PTB_LIKE.strip().splitlines())  # 18 sentences


def stream_targets(dm: LMDataModule, split: str) -> list[int]:
    """Every id the split predicts, in stream order: all but ``<bos>``, the first ``<bos>`` excluded."""
    stream = dm.streams[split][1:]
    return stream[stream != dm.vocab[BOS]].tolist()


def read_rows(windows) -> torch.Tensor:
    """``(B, L)``: each row the targets of one column of the stream, read window after window."""
    return torch.cat([window["targets"] for window in windows], dim=1)


def in_order(rows: torch.Tensor) -> list[int]:
    flat = rows.flatten()
    return flat[flat != IGNORE_INDEX].tolist()


def datamodule(tmp_path: Path) -> LMDataModule:
    dm = LMDataModule("ptb", "ptb_mikolov", {"train": "ptb.train.txt.gz", "validation": "ptb.valid.txt.gz",
                                              "test": "ptb.test.txt.gz"}, data_dir=str(write_ptb(tmp_path, LONGER)),
                      cache_dir=str(tmp_path / "cache"), batch_size=2, eval_batch_size=3, bptt=4)
    dm.setup()
    return dm


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_each_process_reads_its_own_columns_every_token_once(tmp_path: Path, processes: int) -> None:
    dm = datamodule(tmp_path)
    shards = {}
    for rank in range(processes):
        dm.trainer = SimpleNamespace(world_size=processes, global_rank=rank)
        shards[rank] = {split: read_rows(dm.windows(split, size)) for split, size in (("train", 2), ("test", 3))}
    # training: the P * 2 columns of the stream, process after process, each token once
    assert in_order(torch.cat([shards[rank]["train"] for rank in range(processes)])) == stream_targets(dm, "train")
    assert all(shards[rank]["train"].shape[0] == 2 for rank in range(processes))
    # evaluation: the single process's 3 columns, shared out
    dm.trainer = None
    single = read_rows(dm.windows("test", 3))
    assert torch.equal(torch.cat([shards[rank]["test"] for rank in range(processes)]), single)
    assert in_order(single) == stream_targets(dm, "test")


def test_more_processes_than_evaluation_columns_is_refused(tmp_path: Path) -> None:
    dm = datamodule(tmp_path)
    dm.trainer = SimpleNamespace(world_size=4, global_rank=0)
    with pytest.raises(DataError, match="data.eval_batch_size to 4"):
        dm.windows("validation", 3)


def test_a_pickled_datamodule_maps_the_cache_again(tmp_path: Path) -> None:
    dm = datamodule(tmp_path)
    dm.add_split("extra", [{"tokens": ["the", "cat"]}])
    copy = pickle.loads(pickle.dumps(dm))
    assert set(dm.__getstate__()["streams"]) == {"extra"}  # the cached streams are mapped, not pickled
    assert all(torch.equal(copy.streams[split], dm.streams[split]) for split in dm.streams)


class RecordTargets(L.Callback):
    """Saves the training targets each process saw, as rows of columns, to ``folder/rank<r>.pt``."""

    def __init__(self, folder: Path):
        self.folder, self.seen = folder, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(batch["targets"].clone())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        torch.save(torch.cat(self.seen, dim=1), self.folder / f"rank{trainer.global_rank}.pt")


@pytest.mark.slow
def test_two_gloo_processes_train_on_every_token_once_and_evaluate_as_one(tmp_path: Path) -> None:
    cfg = compose_train(["task=lm", "model=lstm", *SMALL, f"paths.data_dir={write_ptb(tmp_path / 'data', LONGER)}",
                         f"data.cache_dir={tmp_path / 'cache'}"], tmp_path)
    datamodule, module = build(cfg)
    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False,
             "use_distributed_sampler": False, "accelerator": "cpu"}
    L.Trainer(devices=2, strategy="ddp_spawn", max_epochs=1, enable_checkpointing=False,
              callbacks=[RecordTargets(tmp_path)], **quiet).fit(module, datamodule=datamodule)
    rows = torch.cat([torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)])  # (2 * 2, L)
    assert rows.shape[0] == 4 and in_order(rows) == stream_targets(datamodule, "train")

    single = L.Trainer(devices=1, **quiet).validate(module, datamodule=datamodule, verbose=False)[0]
    ddp = L.Trainer(devices=2, strategy="ddp_spawn", **quiet).validate(module, datamodule=datamodule,
                                                                       verbose=False)[0]
    assert ddp["val/ppl"] == pytest.approx(single["val/ppl"], rel=1e-6)  # float32 sums over other batch shapes
