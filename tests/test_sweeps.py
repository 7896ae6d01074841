"""Sweeps: configs compose, a multirun yields a table and figures, the report's statistics, Optuna, submitit."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy import stats

from conftest import CONF, ROOT
from rnnlab.analysis import report
from rnnlab.cells.discovery import cell_names

SWEEPS = ROOT / "sweeps"


def compose_sweep(name: str, overrides: list[str] | None = None):
    """A sweep file as ``train.py --config-dir sweeps --config-name <name>`` composes it (hydra node included)."""
    with initialize_config_dir(config_dir=str(SWEEPS), version_base="1.3"):
        return compose(name, overrides=[f"hydra.searchpath=[file://{CONF}]", *(overrides or [])],
                       return_hydra_config=True)


def run_multirun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(("name", "tasks"), [("cells", {"ner", "classify"}), ("cells_ptb", {"lm"}),
                                             ("birnn_depth", {"ner", "pos"})])
def test_sweeps_have_three_seeds_a_name_and_their_own_folders(name: str, tasks: set[str]) -> None:
    cfg = compose_sweep(name)
    params = cfg.hydra.sweeper.params
    assert params.seed.split(",") == ["1", "2", "3"]
    assert cfg.sweep == name and name in cfg.tags
    sweep = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)
    assert "${sweep}" in sweep["dir"] and "${hydra.job.num}" in sweep["subdir"]  # one folder per job
    assert (set(params.task.split(",")) if "task" in params else {cfg.task.name}) == tasks


def test_cells_sweep_holds_wall_time_equal() -> None:
    assert compose_sweep("cells", ["task=ner", "model/cell=gru"]).trainer.max_time == "00:00:15:00"


def test_cells_ptb_sweep_runs_lm_ptb_with_the_cell_swapped_on_one_epoch_for_every_cell() -> None:
    cfg = compose_sweep("cells_ptb", ["model/cell=gru"])
    assert cfg.task.name == "lm" and cfg.data.name == "ptb" and "GRU" in cfg.model.cell._target_
    assert cfg.model.encoder.num_layers == 2 and cfg.model.encoder.hidden_size == 200
    assert not cfg.model.encoder.bidirectional and "SGD" in cfg.task.optimizer._target_
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.limit_train_batches == 1.0
    assert cfg.hydra.sweeper.params["model/cell"] == "glob(*)"


def test_birnn_depth_sweeps_eight_distinct_encoders() -> None:
    variants = compose_sweep("birnn_depth").hydra.sweeper.params.encoder.split(",")
    encoders = set()
    for variant in variants:
        encoder = compose_sweep("birnn_depth", [f"encoder={variant}"]).model.encoder
        encoders.add((encoder.bidirectional, encoder.num_layers, encoder.style))
    assert len(encoders) == len(variants) == 8
    assert {(b, n) for b, n, _ in encoders} == {(b, n) for b in (False, True) for n in (1, 2, 3)}
    assert {s for b, n, s in encoders if b and n > 1} == {"stacked", "independent"}


@pytest.mark.parametrize("search", ["ner_optuna", "lm_optuna"])
def test_optuna_searches_compose_with_the_task_direction(search: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == {"max": "maximize", "min": "minimize"}[cfg.task.mode]
    assert sweeper.storage.startswith("sqlite:///") and sweeper.study_name == search
    assert cfg.optimized_metric == cfg.task.optimized_metric


def test_slurm_launcher_composes() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1


# ------------------------------------------------------------------ the report on a hand-written multirun folder
def write_job(root: Path, num: int, overrides: list[str], test_f1: float | None, curve: list[float]) -> None:
    """A job folder as Hydra and the pipeline leave it; ``test_f1=None``: an unfinished job."""
    name = ",".join(o for o in overrides if not o.startswith("seed="))
    folder = root / f"{num}_{name}"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    seed = next(int(o.split("=")[1]) for o in overrides if o.startswith("seed="))
    (folder / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\ntask:\n  optimized_metric: val/f1\noptimized_metric: ${{task.optimized_metric}}\n")
    (folder / "csv").mkdir()
    rows = ["epoch,step,train/loss,val/f1"] + [f"{e},{10 * e + 5},0.5," for e in range(len(curve))] + \
           [f"{e},{10 * e + 9},,{value}" for e, value in enumerate(curve)]
    (folder / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    if test_f1 is not None:
        (folder / "metrics.json").write_text(json.dumps(
            {"test/f1": test_f1, "val/f1": curve[-1], "num_parameters": 1000,
             "train_seconds": 2.0 * seed}))


def test_report_means_stds_and_files(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    values = {"elman": [0.5, 0.6, 0.7], "lstm": [0.8, 0.9]}
    num = 0
    for cell, seeds in values.items():
        for seed, value in enumerate(seeds, start=1):
            write_job(root, num, [f"model/cell={cell}", f"seed={seed}", "task=ner"], value, [value - 0.1, value])
            num += 1
    write_job(root, num, ["model/cell=lstm", "seed=3", "task=ner"], None, [0.1])  # still running

    report.main([str(root), "--out", str(tmp_path / "out"), "--prefix", "cells"])

    table = pd.read_csv(tmp_path / "out" / "cells_results.csv")
    assert list(table["configuration"]) == ["model/cell=elman", "model/cell=lstm"]  # task=ner is shared
    for row, seeds in zip(table.itertuples(), values.values()):
        assert row.metric == "test/f1" and row.runs == len(seeds)
        assert math.isclose(row.mean, statistics.mean(seeds)) and math.isclose(row.std, statistics.stdev(seeds))
    assert table["train_seconds"].tolist() == [4.0, 3.0]
    markdown = (tmp_path / "out" / "cells_results.md").read_text()
    assert "Shared overrides: `task=ner`" in markdown and "| model/cell=elman | test/f1 | 0.6000 ± 0.1000 | 3 |" in markdown
    for figure in ("cells_metric.png", "cells_curves.png"):
        assert (tmp_path / "out" / figure).read_bytes()[:4] == b"\x89PNG"


def test_report_intervals_stay_in_range_and_tests_pair_by_seed(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    values = {("ner", "elman"): [0.5, 0.6, 0.7], ("ner", "lstm"): [0.8, 0.9, 0.85],
              ("pos", "elman"): [0.9, 1.0, 1.0], ("pos", "lstm"): [1.0, 1.0, 0.9]}
    num = 0
    for (task, cell), seeds in values.items():
        for seed, value in enumerate(seeds, start=1):
            write_job(root, num, [f"task={task}", f"model/cell={cell}", f"seed={seed}"], value, [value])
            num += 1

    report.main([str(root), "--out", str(tmp_path / "out"), "--prefix", "cells"])

    table = pd.read_csv(tmp_path / "out" / "cells_results.csv")
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # ner elman: sd 0.1 over 3 seeds
    assert table.loc[0, "ci_low"] == pytest.approx(0.6 - half)
    assert table.loc[0, "ci_high"] == pytest.approx(0.6 + half)
    assert (table["ci_high"] <= 1.0).all() and table.loc[3, "ci_high"] == 1.0  # 0.967 + 0.143 clipped to F1's 1
    tests = pd.read_csv(tmp_path / "out" / "cells_tests.csv")
    # One pair per task: the cells differ in one override; the same cell on two tasks is never compared.
    assert list(zip(tests["a"], tests["b"])) == [("task=ner,model/cell=elman", "task=ner,model/cell=lstm"),
                                                 ("task=pos,model/cell=elman", "task=pos,model/cell=lstm")]
    expected = stats.ttest_rel(values[("ner", "elman")], values[("ner", "lstm")])
    assert tests["test"].tolist() == ["paired t"] * 2 and tests.loc[0, "p"] == pytest.approx(expected.pvalue)
    assert tests.loc[0, "difference"] == pytest.approx(-0.25) and bool(tests.loc[0, "significant"])
    markdown = (tmp_path / "out" / "cells_results.md").read_text()
    assert "clipped to the metric's range (test/f1 [0, 1])" in markdown and "Paired t-test" in markdown
    assert f"| task=ner,model/cell=elman vs task=ner,model/cell=lstm | test/f1 | -0.2500 | paired t | 3 pairs | " \
           f"{expected.pvalue:.3g} | yes |" in markdown

    report.main([str(root), "--out", str(tmp_path / "out"), "--prefix", "base", "--baseline", "model/cell=lstm"])
    tests = pd.read_csv(tmp_path / "out" / "base_tests.csv")
    assert list(zip(tests["a"], tests["b"])) == [("task=ner,model/cell=elman", "task=ner,model/cell=lstm"),
                                                 ("task=pos,model/cell=elman", "task=pos,model/cell=lstm")]
    with pytest.raises(SystemExit):  # a baseline that names no configuration
        report.main([str(root), "--out", str(tmp_path / "out"), "--baseline", "model/cell=gru"])


def test_report_curves_are_epoch_means_over_seeds(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    write_job(root, 0, ["model/cell=lstm", "seed=1"], 0.5, [0.2, 0.4])
    write_job(root, 1, ["model/cell=lstm", "seed=2"], 0.7, [0.4, 0.8])
    runs = report.load_multirun(root)
    assert [run.curve["value"].tolist() for run in runs] == [[0.2, 0.4], [0.4, 0.8]]
    assert report.label_runs(runs) == ["model/cell=lstm"] and {run.label for run in runs} == {"(all)"}


def test_report_without_finished_jobs_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no finished job"):
        report.load_multirun(tmp_path)


# ------------------------------------------------------------------ real multiruns on the fixtures
def offline_runs(folder: Path) -> list[Path]:
    return sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))


def test_cells_multirun_two_cells_two_seeds_gives_table_figures_and_wandb_runs(data_dir: Path,
                                                                              tmp_path: Path) -> None:
    sweep_dir = tmp_path / "multirun"
    result = run_multirun(["--config-dir", str(SWEEPS), "--config-name", "cells", "task=ner",
                           "model.pretrained_vectors=null", "model/cell=elman,lstm", "seed=1,2", "debug=smoke", "logger=[csv,wandb]",
                           f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep_dir.glob("**/metrics.json"))
    assert len(jobs) == 4 and len(set(jobs)) == 4
    for job in jobs:  # one finished W&B run per job, grouped by the sweep, named by its overrides
        runs = offline_runs(job)
        assert len(runs) == 1
        record = runs[0].read_bytes()
        cell = "elman" if "elman" in job.as_posix() else "lstm"
        assert b"cells" in record and f"model/cell={cell},task=ner".encode() in record
        assert b"num_parameters" in record

    report.main([str(sweep_dir)])
    table = pd.read_csv(sweep_dir / "report" / "cells_results.csv")
    assert list(table["configuration"]) == ["model/cell=elman", "model/cell=lstm"]
    assert table["runs"].tolist() == [2, 2] and (table["parameters"] > 0).all()
    assert (sweep_dir / "report" / "cells_metric.png").exists() and (sweep_dir / "report" / "cells_curves.png").exists()


def test_optuna_search_runs_two_trials_and_records_the_study(data_dir: Path, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "optuna"
    result = run_multirun(["hparams_search=ner_optuna", "hydra.sweeper.n_trials=2", "debug=smoke",
                           f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_csv(sweep_dir / "trials.csv")
    assert len(trials) == 2 and (trials["state"] == "COMPLETE").all()
    assert trials["value"].between(0, 1).all() and "params_task.optimizer.lr" in trials
    assert (sweep_dir / "optuna.db").exists()
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert best.best_value == trials["value"].max()
    assert (sweep_dir / "0" / "metrics.json").exists() and (sweep_dir / "1" / "metrics.json").exists()


def test_submitit_local_launcher_runs_a_job(data_dir: Path, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "submitit"
    result = run_multirun(["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "task=pos",
                           "model=lstm", "debug=fast", f"paths.data_dir={data_dir}",
                           f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(next(sweep_dir.glob("*/metrics.json")).read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert list(sweep_dir.glob(".submitit/*/*_log.out"))  # ran as a submitit job


def test_full_long_range_sweep_runs_three_tasks_eight_distances_five_seeds() -> None:
    cfg = compose_sweep("long_range_full")
    params = cfg.hydra.sweeper.params
    assert list(params) == ["data.distance", "task", "model/cell", "seed"]  # distance varies slowest
    assert params["data.distance"].split(",") == ["5", "10", "20", "50", "100", "200", "500", "1000"]
    assert params.task.split(",") == ["recall", "adding", "copy"] and params.seed.split(",") == list("12345")
    assert cfg.sweep == "long_range_full" and cfg.data.task == "recall"  # experiment=long_range underneath


@pytest.mark.parametrize("name", ["cells", "long_range", "long_range_full"])
def test_cell_sweeps_expand_to_every_configured_cell(name: str) -> None:
    """``model/cell: glob(*)`` expands, as Hydra's sweeper expands it, to every file of conf/model/cell/."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.override_parser.overrides_parser import OverridesParser

    value = compose_sweep(name).hydra.sweeper.params["model/cell"]
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF)))
    [override] = OverridesParser.create(config_loader=loader).parse_overrides([f"model/cell={value}"])
    assert sorted(override.sweep_string_iterator()) == cell_names()
