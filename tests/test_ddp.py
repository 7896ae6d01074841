"""Data-parallel training on CPU (2 processes, gloo): sharding, synced metrics, one run folder and W&B run."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest

from conftest import compose_train, write_conll
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.run.pipeline import build, train

# Four sentences: with one sentence per evaluation batch each of the 2 ranks gets 2 batches, none repeated.
SENTENCES = """UNESCO NNP B-NP I-ORG
praises VBZ B-VP O
Danish JJ B-NP I-MISC
call NN I-NP O

Anna NNP B-NP I-PER
Korhonen NNP I-NP I-PER
lives VBZ B-VP O
in IN B-PP O
London NNP B-NP I-LOC

The DT B-NP O
World NNP I-NP I-ORG
Bank NNP I-NP I-ORG
said VBD B-VP O

Germany NNP B-NP I-LOC
imported VBD B-VP O
sheep NNS B-NP O
from IN B-PP O
Britain NNP B-NP I-LOC
"""

DDP = ["trainer=ddp_cpu"]


@pytest.fixture
def four_sentences(tmp_path: Path) -> Path:
    return write_conll(tmp_path / "data", train=SENTENCES)


def overrides(data: Path) -> list[str]:
    return ["task=ner", "model=bilstm", f"paths.data_dir={data}", "data.eval_batch_size=1",
            "model.encoder.hidden_size=16", "model.embedding_dim=16", "model.head_hidden=0"]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("size", [7, 8])
def test_bucket_sampler_shards_every_batch_across_ranks(shuffle: bool, size: int) -> None:
    lengths = list(range(1, 2 * size + 1))
    whole = list(BucketBatchSampler(lengths, batch_size=2, shuffle=shuffle, seed=3))
    shards = [list(BucketBatchSampler(lengths, batch_size=2, shuffle=shuffle, seed=3, num_replicas=2, rank=rank))
              for rank in range(2)]
    assert {tuple(b) for b in whole} == {tuple(b) for shard in shards for b in shard}  # nothing lost
    if shuffle:  # training: every rank steps equally often, a batch repeated where the count is odd
        assert len(shards[0]) == len(shards[1]) == -(-len(whole) // 2)
    if not shuffle or len(whole) % 2 == 0:  # evaluation, or no repeat needed: the shards are disjoint
        assert not {tuple(b) for b in shards[0]} & {tuple(b) for b in shards[1]}


def test_ddp_validation_metric_equals_single_process(four_sentences: Path, tmp_path: Path) -> None:
    """The same weights validated by 1 and by 2 processes: span-F1 counts are summed across ranks."""
    cfg = compose_train(overrides(four_sentences), tmp_path)
    L.seed_everything(0)
    datamodule, module = build(cfg)
    # A briefly trained tagger, partly right, so precision and recall are not trivially 0 or 1.
    L.Trainer(accelerator="cpu", max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, use_distributed_sampler=False).fit(module, datamodule=datamodule)
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       use_distributed_sampler=False).validate(module, datamodule=datamodule, verbose=False)[0]
    ddp = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False, enable_progress_bar=False,
                    use_distributed_sampler=False).validate(module, datamodule=datamodule, verbose=False)[0]
    for name in ("val/f1", "val/precision", "val/recall"):
        assert ddp[name] == pytest.approx(single[name], abs=1e-6), name


def test_ddp_training_matches_single_process_with_one_folder_and_one_wandb_run(four_sentences: Path,
                                                                                tmp_path: Path) -> None:
    learn = [*overrides(four_sentences), "trainer.max_epochs=12", "task.optimizer.lr=0.05",
             "callbacks.early_stopping.patience=100", "model.dropout=0", "model.embedding_dropout=0",
             "model.word_dropout=0"]
    single = train(compose_train(learn, tmp_path / "single"))
    ddp_dir = tmp_path / "ddp"
    ddp = train(compose_train([*learn, *DDP, "logger=[csv,wandb]"], ddp_dir))

    assert ddp["val/f1"] == pytest.approx(single["val/f1"], abs=0.15)
    assert ddp["test/f1"] == pytest.approx(single["test/f1"], abs=0.15)
    assert json.loads((ddp_dir / "metrics.json").read_text())["val/f1"] == ddp["val/f1"]
    assert len(list(ddp_dir.glob("wandb/offline-run-*"))) == 1  # fit and test processes share the run
    header = (ddp_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/f1", "test/f1"} <= set(header)  # fit's and test's columns both kept
    assert sorted(p.parent for p in tmp_path.glob("**/metrics.json")) == sorted([tmp_path / "single", ddp_dir])
