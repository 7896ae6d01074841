"""Tuned comparisons: Holm's adjustment, the pruning callback, the parameter-matched hidden size, the search space,
and the whole study command on tiny data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from conftest import CONF, ROOT, compose_train, write_conll
from rnnlab.analysis.stats import holm
from rnnlab.analysis import tuned as tuned_report
from rnnlab.analysis.tuned import recipe_value, untuned_values, write_report
from rnnlab.cli import tuned
from rnnlab.errors import Stopped, UserError
from rnnlab.run.pipeline import build
from rnnlab.run.tuning import (OptunaPruning, make_pruner, module_parameters, recipe_values, search_space,
                               solve_hidden_size, suggest)
from rnnlab.tasks.base import count_parameters

SWEEPS = ROOT / "sweeps"


def test_holm_matches_hand_computed_values() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 × 0.005, 3 × 0.01, 2 × 0.03, max(0.06, 1 × 0.04)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])  # capped at 1
    adjusted = holm([0.02, math.nan, 0.04])  # an undefined test is not counted: m = 2
    assert math.isnan(adjusted[1]) and np.allclose(adjusted[[0, 2]], [0.04, 0.04])
    assert holm([]).size == 0


def _validate(callback: OptunaPruning, values: list[float]) -> SimpleNamespace:
    """Runs the callback after one validation per value, as the trainer would; returns the stub trainer."""
    trainer = SimpleNamespace(sanity_checking=True, should_stop=False, callback_metrics={"val/f1": torch.tensor(0.0)})
    callback.on_validation_end(trainer, None)  # the sanity check is not reported
    trainer.sanity_checking = False
    for value in values:
        trainer.callback_metrics = {"val/f1": torch.tensor(value)}
        callback.on_validation_end(trainer, None)
        if trainer.should_stop:
            break
    return trainer


def test_pruning_stops_a_trial_that_validates_worse_than_the_earlier_ones() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner("successive_halving", 1, 2))
    for _ in range(3):
        trial = study.ask()
        callback = OptunaPruning(trial, "val/f1", "max")
        assert not _validate(callback, [0.8, 0.9, 0.85]).should_stop and not callback.pruned
        assert callback.best == pytest.approx(0.9) and callback.validations == 3
        study.tell(trial, 0.9)
    trial = study.ask()
    callback = OptunaPruning(trial, "val/f1", "max")
    trainer = _validate(callback, [0.1, 0.2, 0.3])
    assert callback.pruned and trainer.should_stop and callback.validations == 1  # stopped at its first validation
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {1: pytest.approx(0.1)}


@pytest.fixture
def tiny_ner(tmp_path: Path) -> list[str]:
    """Overrides that train the NER task on three sentences in about a second."""
    return ["task=ner", "model=lstm", f"paths.data_dir={write_conll(tmp_path / 'data')}", "trainer.max_epochs=1",
            "model.encoder.hidden_size=16", "model.embedding_dim=8"]


@pytest.mark.parametrize("cell", ["gru", "elman", "mogrifier"])
def test_hidden_size_is_solved_to_the_baseline_parameter_count_within_2_percent(cell: str, tmp_path: Path) -> None:
    data = [f"paths.data_dir={write_conll(tmp_path / 'data')}", "task=ner", "model=lstm"]
    datamodule, baseline = build(compose_train(data, tmp_path))
    target = count_parameters(baseline)
    cfg = compose_train([*data, f"model/cell={cell}"], tmp_path)
    hidden_size, parameters = solve_hidden_size(cfg, datamodule, target)
    assert abs(parameters - target) <= 0.02 * target
    assert hidden_size != cfg.model.encoder.hidden_size and cfg.model.encoder.hidden_size == 256  # cfg left as it was
    assert module_parameters(compose_train([*data, f"model/cell={cell}", f"model.encoder.hidden_size={hidden_size}"],
                                           tmp_path), datamodule) == parameters


def test_search_space_adds_forget_bias_where_the_cell_reads_it_and_the_cells_own_options(tmp_path: Path) -> None:
    space = {"task.optimizer.lr": {"log": [1e-4, 1e-2]}}
    bias = {"float": [0.0, 2.0]}

    def keys(cell: str) -> set[str]:
        return set(search_space(compose_train([f"model/cell={cell}"], tmp_path), space, bias))

    assert keys("lstm") == {"task.optimizer.lr", "model.forget_bias"}
    assert keys("gru") == {"task.optimizer.lr"}
    assert keys("mogrifier") == {"task.optimizer.lr", "model.forget_bias", "model.cell.rounds"}
    dropped = {**space, "model.dropout": None}  # a study drops a key of the space it inherits
    assert set(search_space(compose_train(["model/cell=gru"], tmp_path), dropped, bias)) == {"task.optimizer.lr"}


@pytest.mark.parametrize(("name", "overrides", "factor", "task"), [
    ("tuned_cells", ["task=classify", "data=sst2"], "model/cell", "classify"), ("tuned_cells_ptb", [], "model/cell", "lm"),
    ("tuned_depth", [], "encoder", "ner"), ("tuned_lab", [], "model/cell", "recall")])
def test_tuned_studies_compose_and_group_their_wandb_runs_by_the_study(name: str, overrides: list[str], factor: str,
                                                                      task: str) -> None:
    with initialize_config_dir(config_dir=str(SWEEPS), version_base="1.3"):
        cfg = compose(name, overrides=[f"hydra.searchpath=[file://{CONF}]", "logger=wandb", *overrides])
    assert cfg.logger.wandb.group == cfg.sweep == name and cfg.task.name == task
    assert cfg.tuning.factor == factor and cfg.tuning.seeds == [1, 2, 3, 4, 5]
    assert cfg.tuning.search_seed not in cfg.tuning.seeds
    assert tuned.arms_of(cfg.tuning)[0] == cfg.tuning.baseline


def _lstm_in_study(name: str) -> tuple[DictConfig, dict[str, dict]]:
    """The LSTM arm's config in the study ``name`` and the space it is searched over."""
    with initialize_config_dir(config_dir=str(SWEEPS), version_base="1.3"):
        cfg = compose(name, overrides=[f"hydra.searchpath=[file://{CONF}]", "model/cell=lstm"])
    ranges = OmegaConf.to_container(cfg.tuning, resolve=True)
    return cfg, search_space(cfg, ranges["space"], ranges["forget_bias"])


def test_tuned_lab_searches_the_learning_rate_and_forget_bias_on_the_neutral_budget() -> None:
    cfg, space = _lstm_in_study("tuned_lab")
    assert set(space) == {"task.optimizer.lr", "model.forget_bias"} and cfg.model.dropout == 0.0
    assert cfg.callbacks.early_stopping.patience >= cfg.trainer.max_epochs  # no stop for lack of progress


def test_the_reduced_ptb_study_starts_from_the_recipe_and_keeps_its_dropout() -> None:
    cfg, space = _lstm_in_study("tuned_cells_ptb_reduced")
    assert set(space) == {"task.optimizer.lr", "model.forget_bias"} and cfg.model.dropout == 0.0
    assert recipe_values(cfg, space) == {"task.optimizer.lr": 20.0, "model.forget_bias": 1.0}  # lm_ptb's own
    assert cfg.tuning.recipe_first and cfg.trainer.limit_train_batches == 0.25 and cfg.tuning.seeds == [1, 2, 3]


def test_final_seeds_must_differ_from_the_search_seed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        tuned.main(["--config-dir", str(SWEEPS), "tuning.seeds=[0,1]", f"tuning.out={tmp_path}"])
    assert "must not hold tuning.search_seed=0" in capsys.readouterr().err


def test_tuned_study_end_to_end(tiny_ner: list[str], tmp_path: Path) -> None:
    out = tmp_path / "study"
    tuned.main(["--config-dir", str(SWEEPS), "--config-name", "tuned_cells", *tiny_ner, "tuning.arms=[gru,lstm]",
                "tuning.trials=3", "tuning.seeds=[1,2]", "tuning.size=parameters", "model.encoder.hidden_size=64",
                f"tuning.out={out}"])
    assert OmegaConf.load(out / "study.yaml").overrides == [*tiny_ner, "model.encoder.hidden_size=64"]
    report = out / "report"
    results = pd.read_csv(report / "tuned_results.csv")
    assert list(results["arm"]) == ["lstm", "gru"]  # the baseline first
    lstm, gru = results.itertuples()
    assert lstm.hidden_size == 64 and gru.hidden_size != 64 and abs(gru.parameters / lstm.parameters - 1) <= 0.02
    for row in results.itertuples():
        study = optuna.load_study(study_name=row.arm, storage=f"sqlite:///{out / 'optuna.db'}")
        best = study.best_trial
        assert json.loads(row.tuned) == best.params and row.hidden_size == best.user_attrs["hidden_size"]
        assert row.trials == 3 == row.completed + row.pruned + row.failed == len(study.trials)
        assert all(trial.value == max(trial.intermediate_values.values()) for trial in study.trials
                   if trial.state == optuna.trial.TrialState.COMPLETE)  # the best validation of the run
        assert ("model.forget_bias" in best.params) == (row.arm == "lstm")
        finals = sorted((out / "final" / row.arm).glob("seed_*/.hydra/config.yaml"))
        assert len(finals) == row.runs == 2
        search_seeds = {OmegaConf.load(path).seed for path in (out / "search" / row.arm).glob("*/csv/hparams.yaml")}
        final_seeds = set()
        for path in finals:
            config = OmegaConf.load(path)
            final_seeds.add(config.seed)
            assert all(OmegaConf.select(config, key) == value for key, value in best.params.items())
            assert config.model.encoder.hidden_size == row.hidden_size
        assert search_seeds == {0} and final_seeds == {1, 2}
        compute = (sum(trial.user_attrs["wall_seconds"] for trial in study.trials)
                   + sum(study.user_attrs["final_wall_seconds"].values()))
        assert row.compute_seconds == pytest.approx(compute) and row.metric == "test/f1"
    tests = pd.read_csv(report / "tuned_tests.csv")
    assert list(zip(tests["a"], tests["b"])) == [("model/cell=gru", "model/cell=lstm")]
    np.testing.assert_allclose(tests["p_holm"], holm(tests["p"]))
    for name in ("tuned_results.md", "tuned_metric.png", "tuned_search.png"):
        assert (report / name).stat().st_size > 0
    assert "| lstm |" in (report / "tuned_results.md").read_text()

    # An untuned study beside it: here the final runs themselves, so the two columns agree.
    beside = write_report(out, untuned=str(out / "final"))
    assert beside["untuned_mean"].tolist() == pytest.approx(beside["mean"].tolist())
    assert beside["untuned_runs"].tolist() == [2, 2]


def test_untuned_runs_are_the_studys_distance_only(tmp_path: Path) -> None:
    """An untuned lab sweeps the distance; the runs beside a T = 50 study are its T = 50 runs."""
    for distance, acc in [(50, 1.0), (100, 0.1)]:
        job = tmp_path / f"job_{distance}"
        (job / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(["model/cell=lstm", f"data.distance={distance}", "seed=1"]),
                       job / ".hydra" / "overrides.yaml")
        (job / "metrics.json").write_text(json.dumps({"test/acc": acc}))
    fixed = ["experiment=long_range", "task=recall", "data.distance=50"]
    assert untuned_values(tmp_path, "model/cell", "lstm", "recall", "test/acc", fixed) == [1.0]
    assert sorted(untuned_values(tmp_path, "model/cell", "lstm", "recall", "test/acc")) == [0.1, 1.0]


def test_a_trial_that_stops_with_an_error_fails_and_the_search_goes_on(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_train(cfg, extra_callbacks=None):  # trial 1 diverges; the others validate at their learning rate
        folder = Path(cfg.paths.output_dir)
        if folder.name == "trial_1":
            raise UserError("the loss is nan")
        if extra_callbacks:
            _validate(extra_callbacks[0], [cfg.task.optimizer.lr])
        folder.mkdir(parents=True)
        metrics = {"test/f1": 0.5 + cfg.seed / 10, "num_parameters": 10.0}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    monkeypatch.setattr(tuned, "train", fake_train)
    out = tmp_path / "study"
    tuned.main(["--config-dir", str(SWEEPS), "tuning.arms=[lstm]", "tuning.trials=3", "tuning.seeds=[1,2]",
                "tuning.pruner.kind=none", f"tuning.out={out}"])
    study = optuna.load_study(study_name="lstm", storage=f"sqlite:///{out / 'optuna.db'}")
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert all("wall_seconds" in trial.user_attrs for trial in study.trials)
    assert study.best_trial.value == pytest.approx(max(trial.params["task.optimizer.lr"] for trial in study.trials
                                                       if trial.state.name == "COMPLETE"))
    row = pd.read_csv(out / "report" / "tuned_results.csv").iloc[0]
    assert (row.completed, row.pruned, row.failed) == (2, 0, 1) and row["mean"] == pytest.approx(0.65)


def _fake_train(cfg, extra_callbacks=None):
    """A run in no time: validates at its learning rate, tests at 0.5 + seed / 10 (+ 0.05 for the GRU)."""
    if extra_callbacks:
        _validate(extra_callbacks[0], [cfg.task.optimizer.lr])
    folder = Path(cfg.paths.output_dir)
    folder.mkdir(parents=True)
    metrics = {"test/f1": 0.5 + cfg.seed / 10 + 0.05 * cfg.model.cell._target_.endswith(".GRUCell"), "num_parameters": 10.0}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def test_studies_run_side_by_side_are_reported_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(tuned, "train", _fake_train)
    shared = ["--config-dir", str(SWEEPS), "tuning.trials=2", "tuning.seeds=[1,2]", "tuning.pruner.kind=none"]
    tuned.main([*shared, "tuning.arms=[lstm,elman]", f"tuning.out={tmp_path / 'a'}"])
    tuned.main([*shared, "tuning.arms=[gru]", "tuning.baseline=gru", f"tuning.out={tmp_path / 'b'}"])
    arms = write_report([tmp_path / "a", tmp_path / "b"], report=tmp_path / "both", baseline="lstm")
    assert list(arms["arm"]) == ["lstm", "elman", "gru"]
    single = pd.read_csv(tmp_path / "b" / "report" / "tuned_results.csv").iloc[0]
    assert arms.iloc[2]["tuned"] == single["tuned"] and arms.iloc[2]["compute_seconds"] == single["compute_seconds"]
    tests = pd.read_csv(tmp_path / "both" / "tuned_tests.csv")
    assert set(zip(tests["a"], tests["b"])) == {("model/cell=elman", "model/cell=lstm"),
                                                ("model/cell=gru", "model/cell=lstm")}
    assert tests.set_index("a").loc["model/cell=gru", "difference"] == pytest.approx(0.05)

    tuned.main([*shared, "tuning.trials=3", "tuning.arms=[cifg]", "tuning.baseline=cifg",
                f"tuning.out={tmp_path / 'c'}"])
    with pytest.raises(SystemExit):  # a study with another budget is not the same comparison
        tuned_report.main([str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "ac")])
    assert "trials = 3, but 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tuned_report.main([str(tmp_path / "a"), str(tmp_path / "b")])
    assert "give --out" in capsys.readouterr().err

    # A study stopped before the GRU's last final run ended: the GRU is left out, and the report says so; the
    # Elman RNN left unfinished in that study but finished in another is reported, not listed as left out.
    (tmp_path / "b" / "final" / "gru" / "seed_2" / ".hydra" / "config.yaml").unlink()
    stopped = OmegaConf.load(tmp_path / "b" / "study.yaml")
    stopped.arms = ["gru", "elman"]
    OmegaConf.save(stopped, tmp_path / "b" / "study.yaml")
    arms = write_report([tmp_path / "a", tmp_path / "b"], report=tmp_path / "stopped")
    assert list(arms["arm"]) == ["lstm", "elman"]
    left_out = (tmp_path / "stopped" / "tuned_results.md").read_text().split("Left out, not finished")[1]
    assert left_out.startswith(" (the study was stopped): gru in") and "elman" not in left_out.split("\n")[0]
    with pytest.raises(UserError, match="none of the finished arms"):
        write_report([tmp_path / "a", tmp_path / "b"], report=tmp_path / "stopped", baseline="gru")


def test_recipe_first_makes_each_arms_trial_0_the_untuned_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(tuned, "train", _fake_train)
    shared = ["--config-dir", str(SWEEPS), "tuning.trials=2", "tuning.seeds=[1]", "tuning.pruner.kind=none"]
    tuned.main([*shared, "tuning.arms=[lstm,elman]", "tuning.recipe_first=true", f"tuning.out={tmp_path / 'a'}"])
    recipe = {"task.optimizer.lr": 0.002, "model.dropout": 0.5}  # conf/task/ner.yaml, conf/model/_defaults.yaml
    for arm, own in (("lstm", {"model.forget_bias": 1.0}), ("elman", {})):
        trials = optuna.load_study(study_name=arm, storage=f"sqlite:///{tmp_path / 'a' / 'optuna.db'}").trials
        assert trials[0].params == {**recipe, **own} and trials[1].params != trials[0].params  # then TPE draws
    report = (tmp_path / "a" / "report" / "tuned_results.md").read_text()
    assert "trial 0 of each arm the recipe itself" in report and "recipe's validation (trial 0)" in report
    results = pd.read_csv(tmp_path / "a" / "report" / "tuned_results.csv")
    assert results["recipe_value"].tolist() == pytest.approx([0.002, 0.002])  # _fake_train validates at the lr

    tuned.main([*shared, "tuning.arms=[gru]", "tuning.baseline=gru", f"tuning.out={tmp_path / 'b'}"])
    with pytest.raises(UserError, match="recipe_first = False, but True"):  # not the same search
        write_report([tmp_path / "a", tmp_path / "b"], report=tmp_path / "both")
    with pytest.raises(SystemExit):
        tuned.main([*shared, "tuning.arms=[lstm]", "tuning.recipe_first=true", "tuning.forget_bias={float:[2.0,4.0]}",
                    f"tuning.out={tmp_path / 'c'}"])
    assert "recipe's model.forget_bias=1.0 lies outside its range" in capsys.readouterr().err


@pytest.mark.parametrize("spec", [{"uniform": [0, 1]}, [0, 1], {"log": [1, 2], "int": [1, 2]}])
def test_a_range_in_no_known_form_is_refused_by_search_and_recipe_alike(spec) -> None:
    trial = optuna.create_study().ask()
    with pytest.raises(UserError, match="the range of task.optimizer.lr"):
        suggest(trial, "task.optimizer.lr", spec)
    with pytest.raises(UserError, match="the range of task.optimizer.lr"):
        recipe_values(OmegaConf.create({"task": {"optimizer": {"lr": 0.5}}}), {"task.optimizer.lr": spec})


def test_a_pruned_recipe_trial_reports_the_best_value_it_reached() -> None:
    pruned = optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, intermediate_values={0: 450.0, 1: 420.0})
    assert recipe_value(pruned, "min") == {"recipe_value": 420.0, "recipe_state": "pruned"}
    assert recipe_value(pruned, "max")["recipe_value"] == 450.0
    failed = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)
    assert math.isnan(recipe_value(failed, "min")["recipe_value"])


def test_a_sigterm_stops_the_study_not_only_its_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    def stopped_at_trial_1(cfg, extra_callbacks=None):
        if Path(cfg.paths.output_dir).name == "trial_1":
            raise Stopped("stopped by SIGTERM at global step 3 (epoch 0)")
        return _fake_train(cfg, extra_callbacks)

    monkeypatch.setattr(tuned, "train", stopped_at_trial_1)
    out = tmp_path / "study"
    with pytest.raises(SystemExit) as stop:
        tuned.main(["--config-dir", str(SWEEPS), "tuning.arms=[lstm,gru]", "tuning.trials=3", "tuning.seeds=[1]",
                    "tuning.pruner.kind=none", f"tuning.out={out}"])
    assert stop.value.code == 143 and f"python -m rnnlab.analysis.tuned {out}" in capsys.readouterr().err
    study = optuna.load_study(study_name="lstm", storage=f"sqlite:///{out / 'optuna.db'}")
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "FAIL"]  # no third trial, no other arm
    names = [summary.study_name for summary in optuna.get_all_study_summaries(f"sqlite:///{out / 'optuna.db'}")]
    assert names == ["lstm"]
    assert not (out / "final").exists()


class PruneFirst(optuna.pruners.BasePruner):
    """Prunes trial 0 at its first report, nothing else."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number == 0


@pytest.mark.slow  # about 10 s: W&B starts a run per training run
def test_a_pruned_trial_ends_as_a_finished_run_in_the_studys_wandb_group(tiny_ner: list[str], tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuned, "make_pruner", lambda *args: PruneFirst())
    out = tmp_path / "study"
    tuned.main(["--config-dir", str(SWEEPS), *tiny_ner, "trainer.max_epochs=2", "logger=[csv,wandb]",
                "tuning.arms=[lstm]", "tuning.trials=2", "tuning.seeds=[1]", f"tuning.out={out}"])
    study = optuna.load_study(study_name="lstm", storage=f"sqlite:///{out / 'optuna.db'}")
    assert [trial.state.name for trial in study.trials] == ["PRUNED", "COMPLETE"]
    assert list(study.trials[0].intermediate_values) == [1]  # stopped after its first epoch of two
    for folder, name in [("search/lstm/trial_0", "lstm/trial_0"), ("search/lstm/trial_1", "lstm/trial_1"),
                         ("final/lstm/seed_1", "lstm")]:
        assert (out / folder / "metrics.json").exists()  # written only by a run that ends without an error
        runs = sorted((out / folder).glob("wandb/offline-run-*/run-*.wandb"))
        assert len(runs) == 1
        record = runs[0].read_bytes()
        assert b"tuned_cells" in record and name.encode() in record
