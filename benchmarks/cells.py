"""Training speed of every cell variant against ``torch.nn.LSTM`` of the same size.

Times one forward + backward pass in training mode through ``RNNEncoder`` for each cell of
``conf/model/cell/`` (as a run builds it), and through ``torch.nn.LSTM`` / ``torch.nn.RNN`` (packed when lengths
vary), at three shapes; prints a Markdown table of median milliseconds and the ratio to ``nn.LSTM``.

With ``--ragged``, times instead every cell with a fast path at T = 40, 200 and 2,000, on a ragged batch (lengths
uniform in [T/2, T]) and on a full one, against the better of packed and unpacked ``nn.LSTM`` on the same batch,
interleaved, best of ``--rounds``. With ``--recipes`` (alone or with ``--ragged``), one training epoch of each
recipe before (library kernels forced onto the packed layout, as the engine ran them before choosing by device)
and after.

With ``--regularisers``, times instead a 3-layer LSTM on language-model batches (every window full) with
standard dropout between layers, with locked dropout (``model.dropout_kind=locked``) and with weight drop
(``model.weight_drop``), interleaved, best of ``--rounds``.

With ``--lengths``, times instead one shape (``LENGTHS_SHAPE``) at each sequence length: ``nn.LSTM``, every cell
on its fast path (``implementation="auto"``), and the step loop (``"reference"``) of every cell whose fast path is
a kernel; prints a table of milliseconds against length and, with ``--figure``, draws it and writes the numbers.

    python benchmarks/cells.py                       # every cell, all shapes, CPU
    python benchmarks/cells.py --quick               # fewer repeats
    python benchmarks/cells.py --shapes lm --repeats 20 --device cuda
    python benchmarks/cells.py --cells lstm,peephole,peephole:peephole=full   # a cell with options
    python benchmarks/cells.py --lengths 50,200,1000 --figure speed.png       # against sequence length
    python benchmarks/cells.py --ragged --recipes ner,sst2 --limit-batches 200  # ragged batches, epochs
    python benchmarks/cells.py --recipes ner_gru --before-layout padded       # torch.gru against gru_sequence
    python benchmarks/cells.py --regularisers --rounds 5                      # locked dropout, weight drop
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.cells.discovery import cell_factory, cell_names
from rnnlab.encoders import RNNEncoder
from rnnlab.encoders.engine import kernel_on
from rnnlab.kernels import KERNELS, LibraryKernel


@dataclass(frozen=True)
class Shape:
    """One benchmark shape."""

    batch: int
    steps: int
    inputs: int
    hidden: int
    layers: int = 1
    bidirectional: bool = False
    variable_lengths: bool = False
    shortest: float = 0.25  # with variable lengths, the shortest sentence as a fraction of ``steps``


SHAPES = {
    "tagger": Shape(32, 40, 100, 256, bidirectional=True, variable_lengths=True),
    "lm": Shape(20, 35, 650, 650, layers=2),
    "long": Shape(64, 200, 128, 128),
}
LENGTHS_SHAPE = Shape(16, 0, 64, 128)  # --lengths: steps set per length, all sentences that long
RAGGED_SHAPES = [Shape(32, 40, 100, 256, bidirectional=True, shortest=0.5),  # --ragged: the tagger's
                 Shape(64, 200, 128, 128, shortest=0.5), Shape(8, 2000, 128, 128, shortest=0.5)]
REGULARISER_SHAPES = [Shape(20, 70, 400, 400, layers=3), Shape(80, 70, 400, 400, layers=3)]  # --regularisers
REGULARISERS = {"standard dropout 0.25": {"dropout": 0.25},  # --regularisers: RNNEncoder options of each model
                "locked dropout 0.25": {"dropout": 0.25, "dropout_kind": "locked"},
                "standard dropout 0.25, weight drop 0.5": {"dropout": 0.25, "weight_drop": 0.5}}
# --recipes: train.py overrides; ner is the plain tagger that the tables of docs/benchmarks.md measured
RECIPES = {"ner": ["experiment=ner_plain"], "sst2": ["task=classify", "data=sst2"],
           "ner_gru": ["experiment=ner_plain", "model/cell=gru"]}


def parse_cell(spec: str) -> tuple[str, dict[str, str]]:
    """``name`` or ``name:key=value[:key=value...]`` (options of the cell's YAML) -> ``(name, options)``."""
    name, *options = spec.split(":")
    return name, dict(option.split("=", 1) for option in options)


def make_batch(shape: Shape, device: torch.device) -> tuple[Tensor, Tensor]:
    """Random inputs ``(B, T, I)`` that require grad, and a mask; varying lengths in ``[shortest T, T]`` if asked."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape.batch, shape.steps, shape.inputs, generator=generator)
    if shape.variable_lengths:
        lengths = torch.randint(int(shape.steps * shape.shortest), shape.steps + 1, (shape.batch,),
                                generator=generator)
        lengths[0] = shape.steps
    else:
        lengths = torch.full((shape.batch,), shape.steps)
    mask = torch.arange(shape.steps) < lengths.unsqueeze(1)  # (B, T)
    return x.to(device).requires_grad_(True), mask.to(device)


class TorchRNN(nn.Module):
    """``nn.LSTM`` / ``nn.RNN`` as a user would run them on a masked batch: packed when lengths vary, unless
    ``packed`` is False (then run over the padding as if it were real: a speed reference, not the same function
    for the backward direction)."""

    def __init__(self, kind: type[nn.RNNBase], shape: Shape, packed: bool = True):
        super().__init__()
        self.rnn = kind(shape.inputs, shape.hidden, num_layers=shape.layers, bidirectional=shape.bidirectional,
                        batch_first=True)
        self.packed = packed

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(dim=1)
        if not self.packed or bool((lengths == x.shape[1]).all()):
            return self.rnn(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])[0]


class Encoder(nn.Module):
    """``RNNEncoder`` returning only the token outputs."""

    def __init__(self, cell: Callable[[int, int], nn.Module], shape: Shape, implementation: str, **options: object):
        super().__init__()
        self.encoder = RNNEncoder(cell, shape.inputs, shape.hidden, num_layers=shape.layers,
                                  bidirectional=shape.bidirectional, implementation=implementation, **options)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.encoder(x, mask).outputs


def time_training_step(model: nn.Module, x: Tensor, mask: Tensor, warmup: int, repeats: int,
                       clock: Callable[[], float] = time.perf_counter) -> float:
    """Median milliseconds of forward + backward in training mode, after ``warmup`` untimed runs."""
    model.train()
    synchronize = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for run in range(warmup + repeats):
        model.zero_grad(set_to_none=True)
        x.grad = None
        synchronize()
        start = clock()
        model(x, mask).sum().backward()
        synchronize()
        if run >= warmup:
            times.append(clock() - start)
    return 1000 * statistics.median(times)


def machine_info(device: torch.device) -> str:
    """CPU/GPU model, thread count, torch version and load, for the table's caption."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = (f"CPU: {cpu}, {os.cpu_count()} cores, torch.get_num_threads()={torch.get_num_threads()}, "
            f"torch {torch.__version__}")
    if device.type == "cuda":
        info += f", GPU: {torch.cuda.get_device_name(device)}, cuDNN {torch.backends.cudnn.version()}"
    if hasattr(os, "getloadavg"):
        info += ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return info


def fast_path(cell: nn.Module, device: torch.device = torch.device("cpu")) -> str:
    """What ``implementation="auto"`` runs for ``cell`` on ``device``: ``torch.<kernel>`` (a PyTorch stack kernel),
    ``kernels.<module>`` (one of ``rnnlab.kernels``, e.g. ``kernels.scan``) or ``loop`` (the per-step loop)."""
    kernel = cell.fused_kernel()
    if kernel is None:
        return "loop"
    name = kernel_on(kernel[0], device)
    if isinstance(KERNELS[name], LibraryKernel):
        return f"torch.{name}"
    return "kernels." + KERNELS[name].run.__module__.rsplit(".", 1)[-1]


def length_models(cells: list[str], shape: Shape,
                  device: torch.device = torch.device("cpu")) -> dict[tuple[str, str], nn.Module]:
    """The models timed against length, keyed by ``(model, path)``: ``nn.LSTM`` (path ``""``), each cell on its
    fast path and, where that is not the loop, the same cell on the per-step loop (``implementation="reference"``).

    Args:
        cells: cell specs as ``--cells`` takes them (``name`` or ``name:key=value``).
        shape: sizes of the models (its ``steps`` is not read).
        device: where they will run, which decides some cells' fast path (``fast_path``).
    """
    models: dict[tuple[str, str], nn.Module] = {("nn.LSTM", ""): TorchRNN(nn.LSTM, shape)}
    for spec in cells:
        name, options = parse_cell(spec)
        factory = cell_factory(name, **options)
        path = fast_path(factory(shape.inputs, shape.hidden), device)
        models[spec, path] = Encoder(factory, shape, "auto")
        if path != "loop":
            models[spec, "loop"] = Encoder(factory, shape, "reference")
    return models


def label(model: tuple[str, str]) -> str:
    """``"name (path)"``, or the name alone for a model without a path."""
    name, path = model
    return f"{name} ({path})" if path else name


def format_ms(ms: float | None, digits: int = 1) -> str:
    """Milliseconds to ``digits`` decimals, or ``skipped``."""
    return "skipped" if ms is None else f"{ms:.{digits}f}"


def time_against_length(models: dict[tuple[str, str], nn.Module], shape: Shape, lengths: list[int],
                        device: torch.device, warmup: int, repeats: int, clock: Callable[[], float],
                        max_seconds: float) -> dict[tuple[str, str], list[float | None]]:
    """Median milliseconds per training step of every model at every length, printed as a Markdown table.

    Args:
        models: as ``length_models`` returns them.
        shape: batch and sizes; every sentence is ``steps`` long, ``steps`` taken from ``lengths``.
        lengths: sequence lengths, increasing.
        device: where the models run.
        warmup: untimed runs before each timing.
        repeats: timed runs (median reported).
        clock: ``time.perf_counter`` or ``time.process_time``.
        max_seconds: once a model's step took longer than this, its longer lengths are skipped.

    Returns:
        Per model, one entry per length: milliseconds, or None where skipped. Each model's row is printed as soon
        as it is measured.
    """
    print("| model (path) | " + " | ".join(f"T={steps}" for steps in lengths) + " |")
    print("|---|" + "---:|" * len(lengths), flush=True)
    batches = {steps: make_batch(replace(shape, steps=steps), device) for steps in lengths}
    results: dict[tuple[str, str], list[float | None]] = {}
    for model, module in models.items():
        module.to(device)
        times: list[float | None] = []
        for steps in lengths:
            too_slow = bool(times) and (times[-1] is None or times[-1] > 1000 * max_seconds)
            times.append(None if too_slow else
                         time_training_step(module, *batches[steps], warmup, repeats, clock))
        results[model] = times
        print(f"| {label(model)} | " + " | ".join(map(format_ms, times)) + " |", flush=True)
    return results


def save_against_length(results: dict[tuple[str, str], list[float | None]], lengths: list[int], figure: Path,
                        title: str) -> None:
    """Writes the numbers of ``time_against_length`` beside ``figure`` (same name, ``.csv``; one row per model,
    one column per length, ``skipped`` where skipped) and draws them, log-log, to ``figure``: one colour per
    cell, dashed for the per-step loop, black for ``nn.LSTM``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    figure.parent.mkdir(parents=True, exist_ok=True)
    with open(figure.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "path", *lengths])
        for (name, path), times in results.items():
            writer.writerow([name, path, *(format_ms(ms, 3) for ms in times)])

    names = list(dict.fromkeys(name for name, _ in results))
    fig, ax = plt.subplots(figsize=(9, 6))
    for (name, path), times in results.items():
        measured = [(steps, ms) for steps, ms in zip(lengths, times) if ms is not None]
        colour = "black" if not path else plt.get_cmap("tab10")(names.index(name) % 10)
        ax.plot(*zip(*measured), marker="o", markersize=3, color=colour, linestyle="--" if path == "loop" else "-",
                linewidth=2.5 if not path else 1.5, label=label((name, path)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(lengths, [str(steps) for steps in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("ms per training step (forward + backward)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    plt.close(fig)


def cell_overrides(cell: str) -> list[str]:
    """Hydra overrides that put ``cell`` (``name`` or ``name:key=value``) into a recipe."""
    name, options = parse_cell(cell)
    return [f"model/cell={name}", *(f"model.cell.{key}={value}" for key, value in options.items())]


class EpochClock(L.Callback):
    """Seconds from the start of a training epoch to its end."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.started


def time_epoch(overrides: list[str], data_dir: str, limit_batches: int | None = None) -> float:
    """Seconds of one training epoch of a recipe (``train.py`` overrides, e.g. ``task=ner model=bilstm``).

    The model is built as ``train.py`` builds it (data from ``data_dir``); validation is skipped and the clock
    runs from the epoch's start to its end, so the time is the training loop's alone: batching, embeddings,
    encoder, head, loss, backward, optimiser (not reading the data or building the model).

    Args:
        overrides: the recipe, as on ``train.py``'s command line.
        data_dir: the data root.
        limit_batches: stop the epoch after this many batches (``trainer.limit_train_batches``); None: all.
    """
    from hydra import compose, initialize_config_dir

    from rnnlab.run.pipeline import build

    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.data_dir={data_dir}", "paths.output_dir=."])
    datamodule, module = build(cfg)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, gradient_clip_val=cfg.trainer.gradient_clip_val,
                        limit_train_batches=limit_batches, callbacks=[clock := EpochClock()])
    trainer.fit(module, datamodule=datamodule)
    return clock.seconds


def time_interleaved(models: dict[str, nn.Module], x: Tensor, mask: Tensor, rounds: int,
                     clock: Callable[[], float]) -> dict[str, float]:
    """Best milliseconds of forward + backward of each model over ``rounds`` rounds, each timing every model once
    in turn (the first after an untimed run), so a change of load on a shared machine reaches all alike."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for run in range(rounds):
        for name, model in models.items():
            times[name].append(time_training_step(model, x, mask, warmup=int(run == 0), repeats=1, clock=clock))
    return {name: min(values) for name, values in times.items()}


def ragged_table(cells: list[str], device: torch.device, rounds: int, clock: Callable[[], float]) -> None:
    """Prints every cell against the better of packed and unpacked ``nn.LSTM`` at each of ``RAGGED_SHAPES``, on
    a ragged and a full batch (``time_interleaved``)."""
    print("| B × T, I → H | lengths | model | ms | × best nn.LSTM |")
    print("|---|---|---|---:|---:|")
    for ragged in (True, False):
        for shape in RAGGED_SHAPES:
            shape = replace(shape, variable_lengths=ragged)
            models: dict[str, nn.Module] = {"nn.LSTM packed": TorchRNN(nn.LSTM, shape)}
            if ragged:
                models["nn.LSTM unpacked"] = TorchRNN(nn.LSTM, shape, packed=False)
            for spec in cells:
                name, options = parse_cell(spec)
                models[spec] = Encoder(cell_factory(name, **options), shape, "auto")
            best = time_interleaved({name: model.to(device) for name, model in models.items()},
                                    *make_batch(shape, device), rounds, clock)
            reference = min(ms for name, ms in best.items() if name.startswith("nn.LSTM"))
            sizes = f"{shape.batch} × {shape.steps}, {shape.inputs} → {shape.hidden}" + " bi" * shape.bidirectional
            lengths = f"[{int(shape.steps * shape.shortest)}, {shape.steps}]" if ragged else f"all {shape.steps}"
            for name, ms in best.items():
                print(f"| {sizes} | {lengths} | {name} | {ms:.1f} | {ms / reference:.2f} |", flush=True)


def regulariser_table(device: torch.device, rounds: int, clock: Callable[[], float]) -> None:
    """Prints each of ``REGULARISERS`` on an LSTM at each of ``REGULARISER_SHAPES`` against standard dropout alone
    (``time_interleaved``)."""
    print("| B × T, I → H | model | ms | × standard dropout |")
    print("|---|---|---:|---:|")
    for shape in REGULARISER_SHAPES:
        models = {name: Encoder(cell_factory("lstm"), shape, "auto", **options).to(device)
                  for name, options in REGULARISERS.items()}
        best = time_interleaved(models, *make_batch(shape, device), rounds, clock)
        reference = next(iter(best.values()))
        sizes = f"{shape.batch} × {shape.steps}, {shape.inputs} → {shape.hidden} × {shape.layers} layers"
        for name, ms in best.items():
            print(f"| {sizes} | {name} | {ms:.1f} | {ms / reference:.2f} |", flush=True)


def recipes_before_after(recipes: list[str], data_dir: str, limit_batches: int | None, rounds: int,
                         before_layout: str = "packed") -> None:
    """Prints one training epoch of each recipe with library kernels forced onto ``before_layout`` (before; a
    forced layout also keeps ``torch.gru`` on CPUs) and as the engine picks (after), interleaved, best of
    ``rounds``."""
    from rnnlab.encoders.engine import force_layout

    print(f"\n| recipe | batches | before ({before_layout}), s | after, s | before / after |\n"
          "|---|---:|---:|---:|---:|")
    for recipe in recipes:
        before, after = [], []
        for _ in range(rounds):
            with force_layout(before_layout):
                before.append(time_epoch(RECIPES[recipe], data_dir, limit_batches))
            after.append(time_epoch(RECIPES[recipe], data_dir, limit_batches))
        print(f"| {' '.join(RECIPES[recipe])} | {limit_batches or 'all'} | {min(before):.1f} | {min(after):.1f} | "
              f"{min(before) / min(after):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {list(SHAPES)}")
    parser.add_argument("--cells", default=None,
                        help=f"comma-separated cells of {cell_names()}, each optionally name:key=value (default: "
                             "all; with --ragged, those with a fast path)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per model (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--quick", action="store_true", help="3 repeats after 1 warm-up")
    parser.add_argument("--implementation", default="auto", choices=["auto", "reference"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="wall: elapsed time; cpu: this process's CPU time, summed over threads (steadier "
                             "on a shared machine; with --threads 1 it is the single-core time)")
    parser.add_argument("--ner-epoch", action="store_true", help="also time one NER tagger epoch per cell")
    parser.add_argument("--data-dir", default=os.environ.get("RNNLAB_DATA_DIR", "../shared/data"),
                        help="data root holding conll2003/, for --ner-epoch")
    parser.add_argument("--lengths", default=None,
                        help="comma-separated sequence lengths, e.g. 50,100,200,500,1000,2000,4000: time every "
                             "cell (fast path and step loop) and nn.LSTM against length at batch "
                             f"{LENGTHS_SHAPE.batch}, {LENGTHS_SHAPE.inputs}→{LENGTHS_SHAPE.hidden}, one layer, "
                             "instead of the shapes (--shapes, --implementation and --ner-epoch are not read)")
    parser.add_argument("--ragged", action="store_true",
                        help="time every cell with a fast path (or --cells) at T = 40, 200, 2000 on ragged and full "
                             "batches against the better of packed and unpacked nn.LSTM, instead of the shapes")
    parser.add_argument("--regularisers", action="store_true",
                        help="time a 3-layer LSTM with standard dropout, locked dropout and weight drop, instead of "
                             "the shapes")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--ragged, --recipes, --regularisers: interleaved rounds (best kept)")
    parser.add_argument("--recipes", default="", help=f"comma-separated subset of {list(RECIPES)}, each timed for "
                                                     "one epoch before and after (with or without --ragged)")
    parser.add_argument("--limit-batches", type=int, default=None, help="--recipes: batches per epoch (all if unset)")
    parser.add_argument("--before-layout", default="packed", choices=["packed", "padded"],
                        help="--recipes: the layout forced for 'before' (padded: the CPU engine before gru_sequence)")
    parser.add_argument("--max-seconds", type=float, default=2.0,
                        help="--lengths: skip a model's longer lengths once one of its steps took longer")
    parser.add_argument("--figure", type=Path, default=None,
                        help="--lengths: draw the timings to this image, and write them beside it as .csv")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup = 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    if args.cells:
        cells = args.cells.split(",")
    else:
        cells = [name for name in cell_names() if not args.ragged or fast_path(cell_factory(name)(1, 1)) != "loop"]
    if args.regularisers:
        print(f"{machine_info(device)}; {args.clock} clock, best of {args.rounds} interleaved rounds; forward + "
              "backward, training mode; every sentence T long\n")
        regulariser_table(device, args.rounds, clock)
        return
    if args.ragged or args.recipes:
        print(f"{machine_info(device)}; {args.clock} clock, best of {args.rounds} interleaved rounds; forward + "
              "backward, training mode; ragged: lengths uniform in [T/2, T]\n")
        if args.ragged:
            ragged_table(cells, device, args.rounds, clock)
        if args.recipes:
            recipes_before_after(args.recipes.split(","), args.data_dir, args.limit_batches, args.rounds,
                                 args.before_layout)
        return
    if args.lengths:
        shape, lengths = LENGTHS_SHAPE, [int(steps) for steps in args.lengths.split(",")]
        sizes = f"batch {shape.batch}, {shape.inputs}→{shape.hidden}, one layer, every sentence T long"
        print(f"{machine_info(device)}; {sizes}; implementation=auto and, where that is a kernel, reference "
              f"(loop); {args.clock} clock, median of {args.repeats} runs after {args.warmup} warm-up, longer "
              f"lengths skipped after a step over {args.max_seconds:g} s; forward + backward, training mode; "
              "no compilation involved.\n")
        models = length_models(cells, shape, device)
        results = time_against_length(models, shape, lengths, device, args.warmup, args.repeats, clock,
                                      args.max_seconds)
        if args.figure:
            save_against_length(results, lengths, args.figure,
                                f"One training step against length\n{sizes}; {device.type}, "
                                f"threads={torch.get_num_threads()}, {args.clock} clock")
        return
    print(f"{machine_info(device)}; implementation={args.implementation}, {args.clock} clock, median of "
          f"{args.repeats} runs after {args.warmup} warm-up; forward + backward, training mode; "
          "no compilation involved.\n")
    print("| shape | model | ms | × nn.LSTM |")
    print("|---|---|---:|---:|")
    for shape_name in args.shapes.split(","):
        shape = SHAPES[shape_name]
        x, mask = make_batch(shape, device)
        models: dict[str, nn.Module] = {"nn.LSTM": TorchRNN(nn.LSTM, shape), "nn.RNN": TorchRNN(nn.RNN, shape)}
        for name in cells:
            cell_name, options = parse_cell(name)
            models[name] = Encoder(cell_factory(cell_name, **options), shape, args.implementation)
        baseline = None
        for name, model in models.items():
            ms = time_training_step(model.to(device), x, mask, args.warmup, args.repeats, clock)
            baseline = baseline or ms
            print(f"| {shape_name} {shape.batch}×{shape.steps}×{shape.inputs}→{shape.hidden}"
                  f"{' ×' + str(shape.layers) + ' layers' if shape.layers > 1 else ''}"
                  f"{' bi' if shape.bidirectional else ''} | {name} | {ms:.1f} | {ms / baseline:.2f} |", flush=True)
    if args.ner_epoch:
        print("\n| NER tagger (BiRNN 200, CoNLL-2003 train) | one epoch, s |\n|---|---:|")
        for name in cells:
            print(f"| {name} | {time_epoch(['task=ner', 'model=bilstm', *cell_overrides(name)], args.data_dir):.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
