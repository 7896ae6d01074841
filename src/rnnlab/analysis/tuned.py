"""Report of a tuned comparison (``rnnlab.cli.tuned``), read from its study folder.

    python -m rnnlab.analysis.tuned <study folder> [--untuned <multirun folder>]
    python -m rnnlab.analysis.tuned <study A> <study B> --out <folder> [--baseline lstm]

The study command writes it at its end; this entry point writes it again (e.g. beside another untuned study), or
reports as one the studies run side by side, one per core with the arms split by ``tuning.arms``: their settings
must agree but for the arms and the baseline. An arm whose final runs did not all end (a stopped study) is left
out, and the report says so. Written to ``<study folder>/report`` (or ``--out``):

- ``tuned_results.md`` and ``.csv``: per arm the tuned configuration (the best trial's values), hidden size and
  parameter count, the test metric's mean ± sample standard deviation over the final seeds, its 95% t interval
  clipped to the metric's range (``rnnlab.analysis.stats``), the trials (completed / pruned / failed), the
  total compute (wall seconds of every trial and final run); with an untuned study, its mean ± std and runs for
  the same arm beside them (its runs whose overrides agree with the study's: the same distance in the lab). Below the table in the Markdown file, the tests.
- ``tuned_tests.csv``: each arm against the baseline arm, paired t-test over the shared final seeds
  (``rnnlab.analysis.report.significance``), with Holm-adjusted p-values over the family of these tests.
- ``tuned_metric.png``: the metric per arm, mean with its interval, every seed a dot; ``tuned_search.png``: the
  best validation value so far against the trial number, one line per arm.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, as rnnlab.analysis.report
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from rnnlab.analysis.report import (  # noqa: E402
    _number, label_steps, load_multirun, plot_metric, runs_frame, save_figure, significance, summarise)
from rnnlab.analysis.stats import ALPHA, CONFIDENCE, holm, mean_interval, metric_range  # noqa: E402
from rnnlab.errors import UserError, main_guard  # noqa: E402

log = logging.getLogger(__name__)

PREFIX = "tuned"

# study.yaml settings that studies reported as one must share: everything that makes their arms comparable.
SHARED_SETTINGS = ("sweep", "task", "optimized_metric", "mode", "max_epochs", "max_time", "factor", "size", "trials",
                   "sampler_seed", "search_seed", "seeds", "recipe_first", "pruner", "space", "forget_bias",
                   "overrides")
LATER_SETTINGS = {"recipe_first": False}  # settings added after studies were run: their value in a study without them


def final_folder(folder: Path, arm: str, seed: int) -> Path:
    """The run folder of ``arm``'s final run with ``seed`` in the study folder ``folder``; the study writes its
    ``.hydra/config.yaml`` last."""
    return folder / "final" / arm / f"seed_{seed}"


def load_arm(folder: Path, arm: str) -> optuna.Study:
    """The Optuna study of one arm in the study folder ``folder``."""
    return optuna.load_study(study_name=arm, storage=f"sqlite:///{folder / 'optuna.db'}")


def load_studies(folders: Sequence[Path], baseline: str | None = None) -> tuple[dict, dict[str, Path]]:
    """The settings of one or more study folders as one study, and the folder that holds each arm.

    Args:
        folders: study folders whose settings agree but for ``arms`` and ``baseline``.
        baseline: the arm every other is tested against; None: the first study's.

    Returns:
        The first study's settings with ``arms`` (the finished ones, baseline first), ``baseline`` and
        ``unfinished`` (one line per arm of a stopped study that lacks final runs) for all of them;
        ``{arm: folder}`` of the finished arms.
    """
    settings = [{**LATER_SETTINGS, **OmegaConf.to_container(OmegaConf.load(folder / "study.yaml"))}
                for folder in folders]
    study, homes, unfinished = dict(settings[0]), {}, []
    for folder, other in zip(folders, settings):
        for key in SHARED_SETTINGS:
            if other.get(key) != study.get(key):
                raise UserError(f"{folder / 'study.yaml'}: {key} = {other.get(key)}, but {study.get(key)} in "
                                f"{folders[0] / 'study.yaml'}; only studies that differ in their arms alone are "
                                "reported as one")
        for arm in other["arms"]:
            finals = sum((final_folder(folder, arm, seed) / ".hydra" / "config.yaml").exists()
                         for seed in other["seeds"])
            if finals < len(other["seeds"]):  # a study stopped before this arm's final runs ended
                unfinished.append((arm, f"{arm} in {folder}: {finals} of {len(other['seeds'])} final runs"))
                continue
            if arm in homes:
                raise UserError(f"arm {arm} is in {homes[arm]} and in {folder}; give each arm to one study")
            homes[arm] = folder
    study["unfinished"] = [line for arm, line in unfinished if arm not in homes]  # not finished in another study
    if study["size"] == "parameters" and len({other["baseline"] for other in settings}) > 1:
        raise UserError("with size=parameters each study matched its own baseline's parameter count; studies run "
                        "side by side must then share tuning.baseline")
    study["baseline"] = baseline or study["baseline"]
    if study["baseline"] not in homes:
        raise UserError(f"the baseline {study['baseline']} is none of the finished arms {list(homes)}; name one "
                        "with --baseline")
    study["arms"] = [study["baseline"], *(arm for arm in homes if arm != study["baseline"])]
    return study, homes


def untuned_values(folder: str | Path, factor: str, arm: str, task: str, metric: str,
                   fixed: Iterable[str] = ()) -> list[float]:
    """``metric`` of every run of ``arm`` on ``task`` in an untuned multirun folder (e.g. of sweeps/cells.yaml).

    A run that sets a key of ``fixed`` (the study's own overrides, e.g. ``data.distance=50``) to another value is
    left out: an untuned lab sweeps the distance, and only the study's distance compares with it.
    """
    wanted = dict(item.split("=", 1) for item in fixed if "=" in item)
    values = []
    for run in load_multirun(folder, metric):
        items = dict(item.split("=", 1) for item in run.overrides if "=" in item)
        same = all(items.get(key, value) == value for key, value in wanted.items())
        if same and items.get(factor) == arm and items.get("task", task) == task and metric in run.metrics:
            values.append(run.metrics[metric])
    return values


def arms_table(homes: dict[str, Path], study: dict, summary: pd.DataFrame, untuned: str | None) -> pd.DataFrame:
    """One row per arm (of ``study["arms"]``, each read from its folder ``homes[arm]``): tuned configuration, size,
    final-seed statistics, trials and compute."""
    rows = []
    for arm in study["arms"]:
        search = load_arm(homes[arm], arm)
        states = pd.Series([trial.state.name for trial in search.trials])
        best = search.best_trial
        final = summary[summary["configuration"] == f"{study['factor']}={arm}"].iloc[0]
        compute = (sum(trial.user_attrs.get("wall_seconds", 0.0) for trial in search.trials)
                   + sum(search.user_attrs.get("final_wall_seconds", {}).values()))
        row = {"arm": arm, "tuned": json.dumps(best.params), "best_trial": best.number, "search_value": best.value,
               "hidden_size": best.user_attrs["hidden_size"], "parameters": final["parameters"],
               "metric": final["metric"], "mean": final["mean"], "std": final["std"], "runs": final["runs"],
               "ci_low": final["ci_low"], "ci_high": final["ci_high"], "trials": len(search.trials),
               "completed": int((states == "COMPLETE").sum()), "pruned": int((states == "PRUNED").sum()),
               "failed": int((states == "FAIL").sum()), "compute_seconds": compute}
        if study["recipe_first"]:
            row.update(recipe_value(search.trials[0], study["mode"]))
        if untuned:
            values = untuned_values(untuned, study["factor"], arm, study["task"], final["metric"],
                                    study.get("overrides", []))
            before = mean_interval(values, metric_range(final["metric"]))
            row.update(untuned_mean=before.mean, untuned_std=before.std, untuned_runs=before.n)
        rows.append(row)
    return pd.DataFrame(rows)


def recipe_value(trial: optuna.trial.FrozenTrial, mode: str) -> dict[str, Any]:
    """``recipe_value``, the validation value the recipe's own configuration reached (the trial 0 of a
    ``recipe_first`` search: its value, or the best it reported before it was pruned; NaN if it failed), and
    ``recipe_state``, how that trial ended."""
    value = trial.value
    if trial.state.name == "PRUNED":
        value = (max if mode == "max" else min)(trial.intermediate_values.values())
    return {"recipe_value": math.nan if value is None else value, "recipe_state": trial.state.name.lower()}


def tests_with_holm(frame: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each arm against the baseline (``significance``), ``p_holm`` Holm-adjusted over these tests, and
    ``significant`` judged on ``p_holm``."""
    tests = significance(frame, baseline)
    tests.insert(tests.columns.get_loc("p") + 1, "p_holm", holm(tests["p"]))
    tests["significant"] = tests["p_holm"] < ALPHA
    return tests


def _configuration(tuned: str) -> str:
    """``{"task.optimizer.lr": 0.0020554}`` (JSON) -> ``task.optimizer.lr=0.00206``: 3 significant digits to read."""
    return ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in json.loads(tuned).items())


def markdown(study: dict, arms: pd.DataFrame, tests: pd.DataFrame) -> str:
    """The report as Markdown: the study's settings, the arms table, the tests, how the numbers were computed."""
    pruner = study["pruner"]
    lines = [f"# Tuned comparison: {study['sweep']}, task {study['task']}", "",
             f"Factor `{study['factor']}`, baseline `{study['baseline']}`; size: {study['size']}; every run at most "
             f"{study['max_epochs']} epochs and {study['max_time'] or 'no limit of'} training time (d:h:m:s). Per arm "
             f"{study['trials']} Optuna trials (TPE, sampler seed {study['sampler_seed']}, training seed "
             f"{study['search_seed']}), pruned by {pruner['kind']} (min resource {pruner['min_resource']} "
             f"validation, reduction factor {pruner['reduction_factor']}), selected on {study['optimized_metric']} "
             f"({study['mode']}){'; trial 0 of each arm the recipe itself' if study['recipe_first'] else ''}; "
             f"the best configuration then run on seeds {', '.join(map(str, study['seeds']))}.", ""]
    columns = ["arm", "tuned configuration", "hidden", "parameters", "metric", "mean ± std", "runs", "95% interval",
               "trials (completed / pruned / failed)", "compute (s)"]
    recipe, untuned = "recipe_value" in arms, "untuned_mean" in arms
    columns += ["recipe's validation (trial 0)"] if recipe else []
    columns += ["untuned mean ± std (runs)"] if untuned else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in arms.itertuples():
        interval = "–" if math.isnan(row.ci_low) else f"[{_number(row.ci_low)}, {_number(row.ci_high)}]"
        cells = [row.arm, _configuration(row.tuned), row.hidden_size, f"{int(row.parameters):,}", row.metric,
                 f"{_number(row.mean)} ± {_number(row.std)}", row.runs, interval,
                 f"{row.trials} ({row.completed} / {row.pruned} / {row.failed})", f"{row.compute_seconds:.0f}"]
        if recipe:
            ending = "" if row.recipe_state == "complete" else f" ({row.recipe_state})"
            cells += [f"{_number(row.recipe_value)}{ending}"]
        cells += [f"{_number(row.untuned_mean)} ± {_number(row.untuned_std)} ({row.untuned_runs})"] if untuned else []
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", f"Mean ± sample standard deviation over the final seeds; {CONFIDENCE:.0%} interval: Student t "
              "with runs − 1 degrees of freedom, clipped to the metric's range. Compute: wall seconds of every trial "
              "(pruned and failed ones included) and every final run.", "",
              f"Tests: each arm against `{study['factor']}={study['baseline']}`, paired t-test over the final seeds "
              f"(two-sided); p_holm: Holm's adjustment over the {len(tests)} tests; significant: p_holm < {ALPHA}. "
              "\"no\" means no difference shown, not no difference.", ""]
    if study.get("unfinished"):
        lines += ["Left out, not finished (the study was stopped): " + "; ".join(study["unfinished"]) + ".", ""]
    if tests.empty:
        return "\n".join(lines + ["No pair to compare."]) + "\n"
    lines += ["| A vs B | metric | mean difference (A − B) | test | n | p | p_holm | significant |",
              "|---|---|---|---|---|---|---|---|"]
    for row in tests.itertuples():
        significant = "–" if math.isnan(row.p_holm) else ("yes" if row.significant else "no")
        lines.append(f"| {row.a} vs {row.b} | {row.metric} | {_number(row.difference)} | {row.test} | {row.n} | "
                     f"{_number(row.p, 3)} | {_number(row.p_holm, 3)} | {significant} |")
    return "\n".join(lines) + "\n"


def plot_search(homes: dict[str, Path], study: dict, path: Path) -> None:
    """The best validation value so far against the trial number, one line per arm; pruned trials count as
    trials but never as the best."""
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    better = max if study["mode"] == "max" else min
    for index, arm in enumerate(study["arms"]):
        best, numbers, values = None, [], []
        for trial in load_arm(homes[arm], arm).trials:
            if trial.state.name == "COMPLETE":
                best = trial.value if best is None else better(best, trial.value)
            numbers.append(trial.number + 1)
            values.append(math.nan if best is None else best)
        axis.step(numbers, values, where="post", marker="o", ms=3, color=f"C{index % 10}", label=arm)
    label_steps(axis, "trial", f"best {study['optimized_metric']} so far")
    save_figure(figure, path)


def write_report(studies: str | Path | Sequence[str | Path], untuned: str | None = None,
                 report: str | Path | None = None, baseline: str | None = None) -> pd.DataFrame:
    """Writes the report of one study, or of studies run side by side, into ``report``.

    Args:
        studies: the study folder, or several (``load_studies``).
        untuned: a multirun folder of the untuned study; None: the (first) study's ``untuned`` setting.
        report: the report's folder; None: ``<study folder>/report``, for one study only.
        baseline: the arm every other is tested against; None: the (first) study's.

    Returns:
        The arms table.
    """
    folders = [Path(studies)] if isinstance(studies, (str, Path)) else [Path(folder) for folder in studies]
    if report is None and len(folders) > 1:
        raise UserError("studies reported as one need a report folder of their own: give --out")
    study, homes = load_studies(folders, baseline)
    untuned = untuned or study.get("untuned")
    runs = [run for arm, folder in homes.items() for run in load_multirun(folder / "final" / arm)]
    for run in runs:  # the arm, also when the study has one arm only (label_runs would call it "(all)")
        run.label = next(item for item in run.overrides if item.startswith(f"{study['factor']}="))
    for line in study["unfinished"]:
        log.warning("left out, not finished: %s", line)
    frame = runs_frame(runs)
    summary = summarise(frame)
    arms = arms_table(homes, study, summary, untuned)
    tests = tests_with_holm(frame, f"{study['factor']}={study['baseline']}")
    report = Path(report or folders[0] / "report")
    report.mkdir(parents=True, exist_ok=True)
    arms.to_csv(report / f"{PREFIX}_results.csv", index=False)
    tests.to_csv(report / f"{PREFIX}_tests.csv", index=False)
    (report / f"{PREFIX}_results.md").write_text(markdown(study, arms, tests))
    plot_metric(frame, summary, report / f"{PREFIX}_metric.png")
    plot_search(homes, study, report / f"{PREFIX}_search.png")
    log.info("report in %s", report)
    return arms


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", help="the study folder (tuning.out), or several run side by side")
    parser.add_argument("--untuned", help="a multirun folder of the untuned study, reported beside")
    parser.add_argument("--out", help="the report's folder (default: <study folder>/report; needed for several)")
    parser.add_argument("--baseline", help="the arm the others are tested against (default: the first study's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    write_report(args.studies, args.untuned, args.out, args.baseline)


if __name__ == "__main__":
    main()
