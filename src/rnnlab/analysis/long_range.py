"""Figures and tables from a long-range sweep (``sweeps/long_range*.yaml``, ``sweeps/gates.yaml``).

    python -m rnnlab.analysis.long_range multirun/long_range/<time> [--out docs/figures] [--prefix long_range]

Reads every run's ``metrics.json``, ``.hydra/config.yaml`` and, when present, ``gradient_flow.json``. Runs are
grouped by task (recall, adding, copy: one sweep folder may hold several), then by variant (the cell, and the
gate function where the sweep varies it) and distance T; the metric is the test accuracy (recall, copy) or the
test MSE (adding). Written into ``--out``:

- ``<prefix>_table.md``: per task, the metric per variant and distance as ``mean [low, high] n=<seeds>``, with the
  largest distance solved and the shortest at chance; then the largest distance each variant solves, one column
  per task.
- ``<prefix>_accuracy.png``: the metric against T, one panel per task, mean with the interval as error bar,
  chance dashed.
- ``<prefix>_gradient_flow[_<task>][_T<d>].png``: ``||d loss / d h(t)||`` against the step (the task in the name
  only when the sweep holds several; ``--grad-distance 50 200``: one figure per distance).

Interval: the 95% Student-t interval of the mean over seeds (n − 1 degrees of freedom), clipped to the metric's
range, accuracy [0, 1] and MSE [0, ∞) (``rnnlab.analysis.stats.mean_interval``); one seed gives none. Solved:
mean accuracy ≥ 0.95, or mean MSE < 0.1 × chance (adding: chance 1/6, so MSE < 0.0167). At chance: mean accuracy
< chance + 0.05, or mean MSE > 0.9 × chance. Both judge the mean over seeds, not each seed.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rnnlab.analysis.report import job_order
from rnnlab.analysis.stats import CONFIDENCE, Interval, describe_range, mean_interval, metric_range

SOLVED_ACC = 0.95     # accuracy counted as solving the task
SOLVED_MSE = 0.1      # MSE below this fraction of chance counts as solving the adding problem
CHANCE_MARGIN = 0.05  # mean accuracy below chance + this is "at chance" (~3 sd of a 500-example test set)
CHANCE_MSE = 0.9      # MSE above this fraction of chance is "at chance"


@dataclass
class Run:
    """One finished job of a sweep.

    Attributes:
        path: the job folder.
        task: ``recall``, ``adding`` or ``copy``.
        model: the cell (its ``model/cell`` choice, else the model's name).
        gate: the gate function, ``"-"`` for a cell without gates.
        distance: T, in steps.
        seed: the run's seed.
        metric: ``"acc"`` or ``"mse"`` (tasks minimising their metric).
        value: the test metric.
        chance: the metric of a predictor that ignores the input.
        seconds: training wall time.
        gradient_flow: the records of ``gradient_flow.json``, None without one.
    """

    path: Path
    task: str
    model: str
    gate: str
    distance: int
    seed: int
    metric: str
    value: float
    chance: float
    seconds: float
    gradient_flow: list[dict] | None


def _variant(folder: Path, config: DictConfig) -> str:
    """The run's cell: its ``model/cell`` choice as Hydra recorded it, else its model's name."""
    hydra_file = folder / ".hydra" / "hydra.yaml"
    choice = OmegaConf.load(hydra_file).hydra.runtime.choices.get("model/cell") if hydra_file.exists() else None
    return str(choice or config.model.name)


def load_runs(sweep_dir: str | Path) -> list[Run]:
    """Every job folder below ``sweep_dir`` that holds a ``metrics.json``, in launch order."""
    root = Path(sweep_dir)
    runs = []
    for metrics_path in sorted(root.glob("**/metrics.json"), key=lambda path: job_order(path.parent, root)):
        folder = metrics_path.parent
        config = OmegaConf.load(folder / ".hydra" / "config.yaml")
        metrics = json.loads(metrics_path.read_text())
        name = str(config.task.optimized_metric).rsplit("/", 1)[-1]  # the metric the run optimised: acc or mse
        flow_path = folder / "gradient_flow.json"
        runs.append(Run(folder, str(config.task.name), _variant(folder, config),
                        str(config.model.cell.get("gate", "-")), int(config.data.distance), int(config.seed), name,
                        metrics[f"test/{name}"],
                        metrics["test/chance"], metrics.get("train_seconds", 0.0),
                        json.loads(flow_path.read_text()) if flow_path.exists() else None))
    if not runs:
        raise FileNotFoundError(f"no metrics.json below {sweep_dir}")
    return runs


def label(run: Run, runs: list[Run]) -> str:
    """The variant a run belongs to: its model, and its gate function when the sweep varies gates."""
    gates = {r.gate for r in runs if r.gate != "-"}  # "-": a cell without gates
    if len(gates) <= 1:
        return run.model
    return run.gate if len({r.model for r in runs}) == 1 else f"{run.model} ({run.gate})"


def by_task(runs: list[Run]) -> dict[str, list[Run]]:
    """Task -> its runs, tasks in the order they first appear."""
    tasks: dict[str, list[Run]] = {}
    for run in runs:
        tasks.setdefault(run.task, []).append(run)
    return tasks


def summarise(runs: list[Run]) -> dict[str, dict[int, list[float]]]:
    """Variant -> distance -> test metric of each seed, for the runs of one task."""
    table: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        table[label(run, runs)][run.distance].append(run.value)
    return table


def point(values: list[float], metric: str) -> Interval:
    """Mean over seeds and its 95% t interval, clipped to the range of ``metric`` (``"acc"``, ``"mse"``)."""
    return mean_interval(values, metric_range(metric))


def at_chance(value: float, chance: float, metric: str) -> bool:
    """A mean ``value`` of ``metric`` no better than chance, up to ``CHANCE_MARGIN`` / ``CHANCE_MSE``."""
    if metric == "mse":
        return value > CHANCE_MSE * chance
    return value < chance + CHANCE_MARGIN


def solved(value: float, chance: float, metric: str) -> bool:
    """A mean ``value`` of ``metric`` solving the task: accuracy ≥ ``SOLVED_ACC``, MSE < ``SOLVED_MSE`` × chance."""
    return value < SOLVED_MSE * chance if metric == "mse" else value >= SOLVED_ACC


def _criteria(metric: str, chance: float) -> str:
    if metric == "mse":
        return (f"solved: mean MSE < {SOLVED_MSE:g} × chance = {SOLVED_MSE * chance:.4f}; at chance: mean MSE > "
                f"{CHANCE_MSE:g} × chance")
    return f"solved: mean accuracy ≥ {SOLVED_ACC}; at chance: mean accuracy < chance + {CHANCE_MARGIN}"


def _cell(interval: Interval) -> str:
    """``0.980 [0.851, 1.000] n=2``; ``0.130 n=1`` without an interval."""
    if math.isnan(interval.low):
        return f"{interval.mean:.3f} n={interval.n}"
    return f"{interval.mean:.3f} [{interval.low:.3f}, {interval.high:.3f}] n={interval.n}"


def task_table(runs: list[Run]) -> str:
    """For the runs of one task: mean [interval] n per variant and distance, the largest distance solved and the
    shortest at chance, and a caption saying how."""
    table = summarise(runs)
    metric, chance = runs[0].metric, runs[0].chance
    distances = sorted({r.distance for r in runs})
    lines = ["| variant | " + " | ".join(f"T={d}" for d in distances) + " | solved up to | at chance from |",
             "|---" * (len(distances) + 3) + "|"]
    for name, by_distance in table.items():
        means = {d: point(values, metric).mean for d, values in by_distance.items()}
        cells = [_cell(point(by_distance[d], metric)) if d in by_distance else "–" for d in distances]
        solved_up_to = max((d for d, m in means.items() if solved(m, chance, metric)), default=None)
        chance_from = min((d for d, m in means.items() if at_chance(m, chance, metric)), default=None)
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {solved_up_to if solved_up_to is not None else '–'} "
                     f"| {chance_from if chance_from is not None else 'never'} |")
    seconds = sum(r.seconds for r in runs)
    lines.append("")
    lines.append(f"test/{metric}: mean over seeds [{CONFIDENCE:.0%} interval: Student t with n − 1 degrees of "
                 f"freedom, clipped to {describe_range(metric_range(metric))}] and n seeds; one seed: no interval. "
                 f"Chance {chance:.3f}; {_criteria(metric, chance)}. {len(runs)} runs, {seconds / 60:.1f} min of "
                 f"training in total.")
    return "\n".join(lines)


def solved_table(runs: list[Run]) -> str:
    """The largest distance each variant solves, one column per task, and a caption saying how."""
    tasks = by_task(runs)
    largest: dict[str, dict[str, int | None]] = defaultdict(dict)
    for task, task_runs in tasks.items():
        metric, chance = task_runs[0].metric, task_runs[0].chance
        for name, by_distance in summarise(task_runs).items():
            largest[name][task] = max((d for d, values in by_distance.items()
                                       if solved(point(values, metric).mean, chance, metric)), default=None)
    lines = ["| variant | " + " | ".join(f"{task} ({task_runs[0].metric})" for task, task_runs in tasks.items())
             + " |", "|---" * (len(tasks) + 1) + "|"]
    for name, per_task in largest.items():
        cells = [("–" if per_task[task] is None else str(per_task[task])) if task in per_task else "not run"
                 for task in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Largest distance T at which the mean over seeds solves the task (accuracy ≥ "
                 f"{SOLVED_ACC}; adding: MSE < {SOLVED_MSE:g} × chance); –: no distance solved. Distances run: "
                 + "; ".join(f"{task} {', '.join(str(d) for d in sorted({r.distance for r in task_runs}))}"
                             for task, task_runs in tasks.items())
                 + ". A shorter distance may still have failed: see the tables per task.")
    return "\n".join(lines)


def markdown_table(runs: list[Run]) -> str:
    """One table per task (``task_table``), then the largest distance solved per variant and task."""
    parts = [f"**{task}**\n\n{task_table(task_runs)}" for task, task_runs in by_task(runs).items()]
    return "\n\n".join([*parts, f"**largest distance solved**\n\n{solved_table(runs)}"])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric(runs: list[Run], path: Path) -> None:
    """The test metric against the distance, one panel per task, one line per variant: mean over seeds with its
    95% t interval (clipped to the metric's range) as error bar; chance dashed."""
    plt = _pyplot()
    tasks = by_task(runs)
    tables = {task: summarise(task_runs) for task, task_runs in tasks.items()}
    colors = {name: f"C{index % 10}" for index, name in enumerate(dict.fromkeys(n for t in tables.values() for n in t))}
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.2), squeeze=False)
    for ax, (task, task_runs) in zip(axes[0], tasks.items()):
        metric = task_runs[0].metric
        for name, by_distance in tables[task].items():
            distances = sorted(by_distance)
            points = [point(by_distance[d], metric) for d in distances]
            means = [p.mean for p in points]
            below = [0.0 if math.isnan(p.low) else p.mean - p.low for p in points]  # one seed: no bar
            above = [0.0 if math.isnan(p.high) else p.high - p.mean for p in points]
            ax.errorbar(distances, means, yerr=[below, above], marker="o", capsize=3, color=colors[name], label=name)
        ax.axhline(task_runs[0].chance, color="grey", linestyle="--", label="chance")
        ax.set_xscale("log")
        ticks = sorted({r.distance for r in task_runs})
        ax.set_xticks(ticks, labels=[str(d) for d in ticks])
        ax.tick_params(axis="x", which="minor", labelbottom=False)  # the distances run are the labels
        ax.set_xlabel("distance T (steps)")
        ax.set_ylabel(f"test {metric} (mean, {CONFIDENCE:.0%} t interval)")
        ax.set_title(task)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gradient_flow(runs: list[Run], path: Path, distance: int | None = None) -> int | None:
    """``||d loss / d h(t)||`` against the step at one distance, per variant (first seed), before and after
    training, first layer.

    Args:
        distance: the distance to show; default the longest with gradient-flow records.

    Returns:
        The distance shown, or None when no run recorded gradient flow.
    """
    recorded = [r for r in runs if r.gradient_flow]
    if not recorded:
        return None
    distance = distance or max(r.distance for r in recorded)
    chosen: dict[str, Run] = {}
    for run in sorted(recorded, key=lambda r: r.seed):
        if run.distance == distance:
            chosen.setdefault(label(run, runs), run)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (index, when) in zip(axes, ((0, "at initialisation"), (-1, "after training"))):
        for name, run in chosen.items():
            record = run.gradient_flow[index]
            ax.semilogy(record["curves"]["layer0"], label=name)
        ax.set_title(f"T={distance}, {when}")
        ax.set_xlabel("step t (the key is read at t=0)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("||d loss / d h(t)||")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return distance


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", help="a multirun folder (its jobs may sit at any depth below it)")
    parser.add_argument("--out", default=None, help="folder for the figures and table (default: sweep_dir)")
    parser.add_argument("--prefix", default="long_range", help="file name prefix")
    parser.add_argument("--grad-distance", type=int, nargs="*", default=[None],
                        help="distances of the gradient-flow figures (default: the longest recorded)")
    args = parser.parse_args(argv)
    runs = load_runs(args.sweep_dir)
    out = Path(args.out or args.sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_metric(runs, out / f"{args.prefix}_accuracy.png")
    tasks = by_task(runs)
    for task, task_runs in tasks.items():
        for distance in args.grad_distance:
            suffix = (f"_{task}" if len(tasks) > 1 else "") + ("" if distance is None else f"_T{distance}")
            plot_gradient_flow(task_runs, out / f"{args.prefix}_gradient_flow{suffix}.png", distance)
    table = markdown_table(runs)
    (out / f"{args.prefix}_table.md").write_text(table + "\n")
    return table


if __name__ == "__main__":
    print(main())
