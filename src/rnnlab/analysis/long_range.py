"""Figures and a table from a long-range sweep (``sweeps/long_range.yaml``, ``sweeps/gates.yaml``).

    python -m rnnlab.analysis.long_range multirun/long_range/<time> [--out docs/figures] [--prefix long_range]

Reads every run's ``metrics.json``, ``.hydra/config.yaml`` and, when present, ``gradient_flow.json``; draws
the test metric against the distance per variant (mean and standard deviation over seeds, chance level
dashed) and the gradient norm against the step (``--grad-distance 50 200``: one figure per distance);
writes a Markdown table with, per variant, the longest
distance solved and the shortest distance at chance.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

SOLVED_ACC = 0.95     # accuracy counted as solving the task
CHANCE_MARGIN = 0.05  # mean accuracy below chance + this is "at chance" (~3 sd of a 500-example test set)


@dataclass
class Run:
    """One finished job of a sweep."""

    path: Path
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
    """Every job folder below ``sweep_dir`` that holds a ``metrics.json``."""
    runs = []
    for metrics_path in sorted(Path(sweep_dir).glob("**/metrics.json")):
        folder = metrics_path.parent
        config = OmegaConf.load(folder / ".hydra" / "config.yaml")
        metrics = json.loads(metrics_path.read_text())
        name = "mse" if config.task.mode == "min" else "acc"
        flow_path = folder / "gradient_flow.json"
        runs.append(Run(folder, _variant(folder, config), str(config.model.cell.get("gate", "-")),
                        int(config.data.distance), int(config.seed), name, metrics[f"test/{name}"],
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


def summarise(runs: list[Run]) -> dict[str, dict[int, list[float]]]:
    """Variant -> distance -> test metric of each seed."""
    table: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        table[label(run, runs)][run.distance].append(run.value)
    return table


def at_chance(value: float, chance: float, metric: str) -> bool:
    if metric == "mse":
        return value > 0.9 * chance
    return value < chance + CHANCE_MARGIN


def solved(value: float, chance: float, metric: str) -> bool:
    return value < 0.1 * chance if metric == "mse" else value >= SOLVED_ACC


def markdown_table(runs: list[Run]) -> str:
    """Mean ± sd per variant and distance, then the longest distance solved and the first at chance."""
    table = summarise(runs)
    metric, chance = runs[0].metric, runs[0].chance
    distances = sorted({r.distance for r in runs})
    lines = ["| variant | " + " | ".join(f"T={d}" for d in distances) + " | solved up to | at chance from |",
             "|---" * (len(distances) + 3) + "|"]
    for name, by_distance in table.items():
        cells, means = [], {}
        for d in distances:
            values = by_distance.get(d, [])
            if values:
                means[d] = statistics.fmean(values)
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{means[d]:.3f} ± {sd:.3f}")
            else:
                cells.append("–")
        solved_up_to = max((d for d, m in means.items() if solved(m, chance, metric)), default=None)
        chance_from = min((d for d, m in means.items() if at_chance(m, chance, metric)), default=None)
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {solved_up_to if solved_up_to is not None else '–'} "
                     f"| {chance_from if chance_from is not None else 'never'} |")
    seconds = sum(r.seconds for r in runs)
    lines.append("")
    lines.append(f"test/{metric}, mean ± sd over seeds; chance {chance:.3f}; solved: "
                 f"{'MSE < 0.1 x chance' if metric == 'mse' else f'accuracy >= {SOLVED_ACC}'}; at chance: "
                 f"{'MSE > 0.9 x chance' if metric == 'mse' else f'accuracy < chance + {CHANCE_MARGIN}'}. "
                 f"{len(runs)} runs, {seconds / 60:.1f} min of training in total.")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric(runs: list[Run], path: Path) -> None:
    """The test metric against the distance, one line per variant, error bars over seeds."""
    plt = _pyplot()
    table = summarise(runs)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, by_distance in table.items():
        distances = sorted(by_distance)
        means = [statistics.fmean(by_distance[d]) for d in distances]
        sds = [statistics.stdev(by_distance[d]) if len(by_distance[d]) > 1 else 0.0 for d in distances]
        ax.errorbar(distances, means, yerr=sds, marker="o", capsize=3, label=name)
    ax.axhline(runs[0].chance, color="grey", linestyle="--", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(sorted({r.distance for r in runs}), labels=[str(d) for d in sorted({r.distance for r in runs})])
    ax.set_xlabel("distance T (steps)")
    ax.set_ylabel(f"test {runs[0].metric}")
    ax.grid(True, alpha=0.3)
    ax.legend()
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
    for distance in args.grad_distance:
        suffix = "" if distance is None else f"_T{distance}"
        plot_gradient_flow(runs, out / f"{args.prefix}_gradient_flow{suffix}.png", distance)
    table = markdown_table(runs)
    (out / f"{args.prefix}_table.md").write_text(table + "\n")
    return table


if __name__ == "__main__":
    print(main())
