"""Results table, significance tests and figures from a sweep: a Hydra multirun folder or a W&B project.

    python -m rnnlab.analysis.report multirun/cells/<time> [--metric test/f1] [--baseline model/cell=lstm]
        [--out DIR] [--prefix NAME]
    python -m rnnlab.analysis.report --wandb ENTITY/PROJECT [--group cells] [--out DIR]

A configuration is a job's overrides minus the seed (and minus the overrides every job shares); its seeds are
averaged. Written to ``--out`` (default ``<multirun dir>/report``):

- ``<prefix>_results.md`` and ``.csv``: per configuration the mean over seeds, the sample standard deviation,
  the number of runs n, a 95% confidence interval of the mean, parameter count and training time; below the
  table in the Markdown file, the tests.
- ``<prefix>_tests.csv``: the tests, one row per compared pair.
- ``<prefix>_metric.png``: the metric per configuration, mean with the 95% interval as error bar, every seed
  as a dot; ``<prefix>_curves.png``: the validation metric per epoch, mean over seeds with its 95% interval as
  a band, from the CSV logs.

Interval: Student's t with n − 1 degrees of freedom, ``mean ± t(0.975, n − 1) · sd / √n``, clipped to the
metric's range where the range is known from the metric's name (``rnnlab.metrics.declared.METRICS``):
[0, 1] for accuracy, F1, precision and recall, [0, 100] for BLEU and chrF, [1, ∞) for perplexity, [0, ∞) for
loss and MSE; other metrics are not clipped. The true mean lies in that range, so the clipped interval covers it
whenever the t interval does. One run gives no interval.

Tests (two-sided, α = 0.05): a paired t-test over the seeds two configurations share, run paired with run by
seed (one seed fixes the initial draws and the data order where the pipeline seeds them, so pairing removes
what the seed does to both); Welch's t-test over all their runs when they share fewer than 2 seeds. Compared:
every pair of configurations that differ in one override only, or with ``--baseline`` each configuration
against its baseline (the same overrides with the baseline's values); never across metrics or tasks. The
p-values are not corrected for multiple comparisons. With 3 seeds the paired test has 2 degrees of freedom:
its power is low, only differences large against the seed-to-seed spread reach p < 0.05, and "not significant"
means "not shown", never "equal".

The metric defaults to each run's ``optimized_metric`` with ``val/`` replaced by ``test/`` (when the run was
tested), so a sweep over tasks compares each task on its own metric, one panel per metric.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or in tests
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from rnnlab.analysis.stats import (  # noqa: E402
    ALPHA, CONFIDENCE, UNBOUNDED, compare, describe_range, mean_interval, metric_range)

log = logging.getLogger(__name__)

SEED_KEYS = ("seed", "+seed")


@dataclass
class Run:
    """One finished job.

    Attributes:
        name: where it came from (job folder or W&B run path).
        overrides: its Hydra overrides (``key=value``), seed included.
        seed: its seed, None when unknown.
        metrics: final metrics (``metrics.json`` or the W&B summary).
        optimized_metric: the config's ``optimized_metric`` (e.g. ``val/f1``), None when unknown.
        curve: validation metric per epoch: columns ``epoch`` and ``value``.
        label: the configuration, set by ``label_runs``.
    """

    name: str
    overrides: list[str]
    seed: int | None
    metrics: dict[str, float]
    optimized_metric: str | None
    curve: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["epoch", "value"]))
    label: str = ""


def job_order(folder: Path, root: Path) -> tuple[int, str]:
    """Hydra job number (the ``<num>_`` prefix of the sweep subdir), then path: jobs in launch order."""
    relative = folder.relative_to(root).as_posix()
    match = re.match(r"(\d+)(_|$)", relative)
    return (int(match.group(1)) if match else math.inf, relative)


def _csv_curve(folder: Path, metric: str | None) -> pd.DataFrame:
    """``metric`` per epoch from the job's Lightning CSV log (the last value of each epoch)."""
    logs = sorted(folder.glob("csv/**/metrics.csv"))
    if not metric or not logs:
        return pd.DataFrame(columns=["epoch", "value"])
    frame = pd.read_csv(logs[0])
    if metric not in frame or "epoch" not in frame:
        return pd.DataFrame(columns=["epoch", "value"])
    frame = frame[["epoch", metric]].dropna().groupby("epoch", as_index=False).last()
    return frame.rename(columns={metric: "value"})


def _curve_metric(optimized_metric: str | None, metric: str | None) -> str | None:
    """The validation counterpart of the reported metric: ``test/f1`` -> ``val/f1``."""
    if metric:
        return re.sub(r"^test/", "val/", metric)
    return optimized_metric


def load_multirun(sweep_dir: str | Path, metric: str | None = None) -> list[Run]:
    """Every finished job below ``sweep_dir``: a folder with ``.hydra/overrides.yaml`` and ``metrics.json``.

    Unfinished or failed jobs (no ``metrics.json``) are skipped with a warning.
    """
    root = Path(sweep_dir)
    folders = sorted((p.parent.parent for p in root.glob("**/.hydra/overrides.yaml")),
                     key=lambda folder: job_order(folder, root))
    runs = []
    for folder in folders:
        if not (folder / "metrics.json").exists():
            log.warning("%s: no metrics.json (unfinished or failed), skipped", folder)
            continue
        overrides = [str(item) for item in OmegaConf.load(folder / ".hydra" / "overrides.yaml")]
        config_path = folder / ".hydra" / "config.yaml"
        config = OmegaConf.load(config_path) if config_path.exists() else OmegaConf.create()
        optimized = OmegaConf.select(config, "optimized_metric", default=None,
                                     throw_on_resolution_failure=False)
        seed = config.get("seed")
        runs.append(Run(name=folder.relative_to(root).as_posix(), overrides=overrides,
                        seed=int(seed) if seed is not None else None,
                        metrics=json.loads((folder / "metrics.json").read_text()),
                        optimized_metric=str(optimized) if optimized else None,
                        curve=_csv_curve(folder, _curve_metric(optimized and str(optimized), metric))))
    if not runs:
        raise FileNotFoundError(f"no finished job (.hydra/overrides.yaml + metrics.json) below {root}")
    return runs


def load_wandb(project: str, group: str | None = None, metric: str | None = None) -> list[Run]:
    """Finished runs of a W&B project (``ENTITY/PROJECT``), optionally of one group (a sweep).

    A run's configuration is its name (the Hydra overrides minus the seed, see ``rnnlab.run.loggers``).
    """
    import wandb

    filters = {"state": "finished", **({"group": group} if group else {})}
    runs = []
    for remote in wandb.Api().runs(project, filters=filters):
        optimized = remote.config.get("optimized_metric")
        curve_metric = _curve_metric(optimized, metric)
        history = remote.history(keys=["epoch", curve_metric], pandas=True) if curve_metric else pd.DataFrame()
        curve = (history[["epoch", curve_metric]].dropna().groupby("epoch", as_index=False).last()
                 .rename(columns={curve_metric: "value"}) if curve_metric in history else
                 pd.DataFrame(columns=["epoch", "value"]))
        summary = {key: float(value) for key, value in remote.summary.items() if isinstance(value, (int, float))}
        seed = remote.config.get("seed")
        runs.append(Run(name="/".join(remote.path), overrides=[remote.name or remote.id],
                        seed=int(seed) if seed is not None else None, metrics=summary,
                        optimized_metric=optimized, curve=curve))
    if not runs:
        raise FileNotFoundError(f"no finished W&B run in {project}" + (f" group {group}" if group else ""))
    return runs


def label_runs(runs: list[Run]) -> list[str]:
    """Sets each run's configuration label: its overrides minus the seed and minus those shared by all runs.

    Returns:
        The shared overrides (the sweep's fixed settings).
    """
    def key(item: str) -> str:
        return item.split("=", 1)[0]

    varying = [[item for item in run.overrides if key(item) not in SEED_KEYS] for run in runs]
    common = [item for item in varying[0] if all(item in items for items in varying)] if len(runs) > 1 else []
    for run, items in zip(runs, varying):
        run.label = ",".join(item for item in items if item not in common) or "(all)"
    return common


def reported_metric(run: Run, metric: str | None) -> str | None:
    """The metric reported for a run: ``metric``, else the test counterpart of its optimized metric."""
    if metric:
        return metric
    if run.optimized_metric:
        tested = re.sub(r"^val/", "test/", run.optimized_metric)
        return tested if tested in run.metrics else run.optimized_metric
    return None


def runs_frame(runs: list[Run], metric: str | None = None) -> pd.DataFrame:
    """One row per run: configuration, seed, metric name and value, parameter count, training seconds."""
    rows = []
    for run in runs:
        name = reported_metric(run, metric)
        rows.append({"configuration": run.label, "seed": run.seed, "metric": name,
                     "value": run.metrics.get(name, math.nan) if name else math.nan,
                     "parameters": run.metrics.get("num_parameters", math.nan),
                     "train_seconds": run.metrics.get("train_seconds", math.nan), "run": run.name})
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and metric: mean, sample standard deviation (NaN for one run), runs, the 95% t interval
    of the mean clipped to the metric's range (``ci_low``, ``ci_high``; NaN for one run), parameter count, mean
    training seconds; in the order configurations first appear."""
    grouped = frame.groupby(["configuration", "metric"], sort=False, dropna=False)
    summary = grouped.agg(mean=("value", "mean"), std=("value", "std"), runs=("value", "count"),
                          parameters=("parameters", "mean"), train_seconds=("train_seconds", "mean"))
    summary = summary.reset_index()
    intervals = [mean_interval(values, metric_range(metric))
                 for (_, metric), values in grouped["value"]]
    summary.insert(summary.columns.get_loc("runs") + 1, "ci_low", [interval.low for interval in intervals])
    summary.insert(summary.columns.get_loc("ci_low") + 1, "ci_high", [interval.high for interval in intervals])
    return summary


_ITEM_START = re.compile(r",(?=[+~]{0,2}[\w./@-]+=)")  # a comma that starts the next ``key=value``


def _items(configuration: str) -> dict[str, str]:
    """A configuration label as ``{key: value}``: ``"task=ner,model/cell=lstm"`` -> two items; ``"(all)"`` -> none."""
    if configuration == "(all)":
        return {}
    return dict(item.split("=", 1) for item in _ITEM_START.split(configuration) if "=" in item)


def _pairs(configurations: list[str], baseline: str | None) -> list[tuple[str, str]]:
    """The (A, B) pairs to test among one metric's configurations.

    Without a baseline: every pair that differs in exactly one override, other than the task. With one
    (``key=value[,key=value...]``): every configuration that does not hold the baseline's values, against the
    configuration with its overrides and the baseline's values, when that one exists and runs the same task.
    """
    items = {configuration: _items(configuration) for configuration in configurations}
    if baseline is None:
        pairs = []
        for index, a in enumerate(configurations):
            for b in configurations[index + 1:]:
                keys = items[a].keys() | items[b].keys()
                differing = {key for key in keys if items[a].get(key) != items[b].get(key)}
                if len(differing) == 1 and differing != {"task"}:
                    pairs.append((a, b))
        return pairs
    wanted = _items(baseline)
    by_items = {tuple(sorted(setting.items())): configuration for configuration, setting in items.items()}
    pairs = []
    for a in configurations:
        if wanted.items() <= items[a].items() or not wanted.keys() <= items[a].keys():
            continue
        b = by_items.get(tuple(sorted({**items[a], **wanted}.items())))
        if b is not None and items[a].get("task") == items[b].get("task"):
            pairs.append((a, b))
    return pairs


def significance(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Tests of the difference between configurations of the same metric (see the module docstring).

    Args:
        frame: one row per run (``runs_frame``): ``configuration``, ``seed``, ``metric``, ``value``.
        baseline: overrides naming the baseline (``model/cell=lstm``, or a whole configuration label); None:
            every pair that differs in one override.

    Returns:
        One row per pair: ``metric``, ``a``, ``b``, ``difference`` (mean of A − mean of B; paired: over the
        shared seeds), ``test``, ``n``, ``p``, ``significant`` (p < 0.05; False when p is undefined).

    Raises:
        ValueError: ``baseline`` matches no configuration.
    """
    if baseline is not None and not any(_items(baseline).items() <= _items(c).items()
                                        for c in frame["configuration"].unique()):
        raise ValueError(f"baseline {baseline!r} matches no configuration: "
                         f"{', '.join(frame['configuration'].unique())}")
    rows = []
    for metric, part in frame.groupby("metric", sort=False, dropna=False):
        values = {configuration: runs.set_index("seed")["value"]
                  for configuration, runs in part.groupby("configuration", sort=False)}
        for a, b in _pairs(list(values), baseline):
            result = compare(values[a], values[b])
            rows.append({"metric": metric, "a": a, "b": b, "difference": result.difference, "test": result.test,
                         "n": result.n, "p": result.p, "significant": result.significant})
    return pd.DataFrame(rows, columns=["metric", "a", "b", "difference", "test", "n", "p", "significant"])


def _number(value: float, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _ranges(metrics) -> str:
    """``test/f1 [0, 1], test/ppl [1, ∞)``: the range each metric's interval is clipped to."""
    ranges = {metric: metric_range(metric) for metric in dict.fromkeys(metrics)}
    return ", ".join(f"{metric} {describe_range(bounds)}" if bounds != UNBOUNDED else f"{metric} not clipped "
                     "(range unknown)" for metric, bounds in ranges.items())


def markdown_table(summary: pd.DataFrame, common: list[str]) -> str:
    """The summary as a Markdown table, with the overrides shared by every run stated above it and how the
    numbers were computed below it."""
    lines = []
    if common:
        lines += [f"Shared overrides: `{' '.join(common)}`", ""]
    lines += ["| configuration | metric | mean ± std | runs | 95% interval | parameters | train time (s) |",
              "|---|---|---|---|---|---|---|"]
    for row in summary.itertuples():
        parameters = "–" if math.isnan(row.parameters) else f"{int(row.parameters):,}"
        interval = "–" if math.isnan(row.ci_low) else f"[{_number(row.ci_low)}, {_number(row.ci_high)}]"
        lines.append(f"| {row.configuration} | {row.metric} | {_number(row.mean)} ± {_number(row.std)} | "
                     f"{row.runs} | {interval} | {parameters} | {_number(row.train_seconds, 0)} |")
    lines += ["", f"Mean ± sample standard deviation over the runs (seeds); {CONFIDENCE:.0%} interval: Student t "
              f"with runs − 1 degrees of freedom around the mean, clipped to the metric's range "
              f"({_ranges(summary['metric'])}); – for one run."]
    return "\n".join(lines) + "\n"


def tests_table(tests: pd.DataFrame, baseline: str | None) -> str:
    """The tests as a Markdown table, with what was compared and how stated above it."""
    compared = (f"each configuration against its baseline `{baseline}`" if baseline else
                "every pair of configurations that differ in one override")
    lines = [f"Tests: {compared}, on the same metric and task. Paired t-test over the seeds both share (run paired "
             f"with run by seed), Welch's t-test when they share fewer than 2 seeds; two-sided, significant at "
             f"p < {ALPHA}, not corrected for multiple comparisons. With few seeds the tests have little power: "
             f"\"no\" means no difference shown, not no difference. p = –: undefined (no spread, or too few runs).",
             ""]
    if tests.empty:
        return "\n".join(lines + ["No pair to compare."]) + "\n"
    lines += [f"| A vs B | metric | mean difference (A − B) | test | n | p | significant at {ALPHA} |",
              "|---|---|---|---|---|---|---|"]
    for row in tests.itertuples():
        significant = "–" if math.isnan(row.p) else ("yes" if row.significant else "no")
        p = "–" if math.isnan(row.p) else f"{row.p:.3g}"
        lines.append(f"| {row.a} vs {row.b} | {row.metric} | {_number(row.difference)} | {row.test} | {row.n} | "
                     f"{p} | {significant} |")
    return "\n".join(lines) + "\n"


def _error(means: pd.Series, lows: pd.Series, highs: pd.Series) -> list[list[float]]:
    """Asymmetric error bar lengths ``[below, above]`` from interval ends; 0 where there is no interval."""
    return [(means - lows).fillna(0).tolist(), (highs - means).fillna(0).tolist()]


def plot_metric(frame: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    """The metric per configuration: mean with its 95% interval (clipped to the metric's range) as error bar,
    each seed as a dot."""
    metrics = list(dict.fromkeys(summary["metric"]))
    height = max(2.5, 0.45 * summary.groupby("metric").size().max() + 1.2)
    figure, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), height), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        part = summary[summary["metric"] == metric].reset_index(drop=True)
        positions = range(len(part))
        axis.errorbar(part["mean"], positions, xerr=_error(part["mean"], part["ci_low"], part["ci_high"]),
                      fmt="o", capsize=4, color="C0", label=f"mean, {CONFIDENCE:.0%} t interval")
        for position, configuration in zip(positions, part["configuration"]):
            values = frame[(frame["configuration"] == configuration) & (frame["metric"] == metric)]["value"]
            axis.scatter(values, [position] * len(values), s=12, color="C1", alpha=0.7, zorder=3,
                         label="seed" if position == 0 else None)
        axis.set_yticks(list(positions), part["configuration"], fontsize=8)
        axis.invert_yaxis()
        axis.set_xlabel(str(metric))
        axis.grid(axis="x", alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    save_figure(figure, path)


def plot_curves(runs: list[Run], metric: str | None, path: Path) -> bool:
    """Validation metric per epoch per configuration: mean over seeds, its 95% interval (clipped to the metric's
    range) as a band; False when no run has a curve."""
    panels: dict[str, dict[str, list[pd.DataFrame]]] = {}
    for run in runs:
        name = _curve_metric(run.optimized_metric, metric)
        if name and not run.curve.empty:
            panels.setdefault(name, {}).setdefault(run.label, []).append(run.curve)
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for axis, (name, configurations) in zip(axes[0], panels.items()):
        for index, (configuration, curves) in enumerate(configurations.items()):
            by_epoch = pd.concat(curves).groupby("epoch")["value"]
            steps = [epoch + 1 for epoch, _ in by_epoch]  # 1-based epoch numbers
            intervals = [mean_interval(values, metric_range(name)) for _, values in by_epoch]
            color = f"C{index % 10}"
            axis.plot(steps, [i.mean for i in intervals], marker="o", ms=3, color=color, label=configuration)
            axis.fill_between(steps, [i.mean if math.isnan(i.low) else i.low for i in intervals],
                              [i.mean if math.isnan(i.high) else i.high for i in intervals], color=color, alpha=0.15)
        label_steps(axis, "epoch", f"{name} (band: {CONFIDENCE:.0%} interval)")
    save_figure(figure, path)
    return True


def label_steps(axis: plt.Axes, xlabel: str, ylabel: str) -> None:
    """Labels a plot of curves over integer steps (epochs, trials), with a grid and a legend."""
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)


def save_figure(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(runs: list[Run], out: str | Path, prefix: str, metric: str | None = None,
           baseline: str | None = None) -> pd.DataFrame:
    """Writes the table and the tests (Markdown, CSV) and the figures of ``runs`` into ``out``.

    Args:
        baseline: test every configuration against this one (see ``significance``); None: every pair that
            differs in one override.

    Returns:
        The summary (``summarise``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    common = label_runs(runs)
    frame = runs_frame(runs, metric)
    summary = summarise(frame)
    tests = significance(frame, baseline)
    summary.to_csv(out / f"{prefix}_results.csv", index=False)
    tests.to_csv(out / f"{prefix}_tests.csv", index=False)
    (out / f"{prefix}_results.md").write_text(markdown_table(summary, common) + "\n" + tests_table(tests, baseline))
    plot_metric(frame, summary, out / f"{prefix}_metric.png")
    plot_curves(runs, metric, out / f"{prefix}_curves.png")
    return summary


def _sweep_name(sweep_dir: Path) -> str:
    """The sweep's ``sweep`` key (from ``multirun.yaml``), else the folder name."""
    config = sweep_dir / "multirun.yaml"
    if config.exists():
        name = OmegaConf.load(config).get("sweep")
        if name:
            return str(name)
    return sweep_dir.name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", nargs="?", help="a Hydra multirun folder (multirun/<sweep>/<time>)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs from W&B instead")
    parser.add_argument("--group", help="with --wandb: only this group (sweep name)")
    parser.add_argument("--metric", help="metric to compare (default: test counterpart of optimized_metric)")
    parser.add_argument("--baseline", metavar="NAME",
                        help="test each configuration against this one, e.g. model/cell=lstm (default: every pair "
                             "of configurations that differ in one override)")
    parser.add_argument("--out", help="output folder (default: <sweep_dir>/report, or ./report)")
    parser.add_argument("--prefix", help="file name prefix (default: the sweep name)")
    args = parser.parse_args(argv)
    if bool(args.sweep_dir) == bool(args.wandb):
        parser.error("give a multirun folder or --wandb ENTITY/PROJECT (one of them)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.wandb:
        runs = load_wandb(args.wandb, args.group, args.metric)
        out, prefix = Path(args.out or "report"), args.prefix or args.group or args.wandb.split("/")[-1]
    else:
        sweep_dir = Path(args.sweep_dir)
        runs = load_multirun(sweep_dir, args.metric)
        out, prefix = Path(args.out or sweep_dir / "report"), args.prefix or _sweep_name(sweep_dir)
    try:
        summary = report(runs, out, prefix, args.metric, args.baseline)
    except ValueError as error:  # a --baseline that matches nothing
        parser.error(str(error))
    print((out / f"{prefix}_results.md").read_text())
    print(f"{len(runs)} runs, {len(summary)} configurations -> {out}/{prefix}_*")


if __name__ == "__main__":
    main()
