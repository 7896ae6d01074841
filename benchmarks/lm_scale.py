"""What a language-model corpus of N tokens costs: setup time, memory, disk, training speed.

Builds synthetic corpora from PTB's training sentences (the perplexity is meaningless; the cost is what is
measured) and runs each measurement in a fresh process, so its peak RSS is its own:

- ``ptb`` corpora: PTB training sentences drawn with replacement until N words, PTB's own validation and test
  files. Measured: first setup (tokenising, counting, writing the cache), cached setup, peak RSS of each, the
  cache's size and the disk used while building it, and training tokens/s of ``experiment=lm_ptb``'s model
  (2 x 200 LSTM, full softmax over PTB's 10,002 words) against the same model on PTB itself.
- ``zipf`` corpora: PTB sentence lengths, each word drawn from a Zipf law (s = 1) over 267,731 words, the size
  of WikiText-103's vocabulary. Measured: the setup as above, and seconds per training step of the same LSTM
  with the full softmax and with the adaptive softmax (cut-offs 20k / 40k / 200k) over that vocabulary.

``--interleave-rounds K`` measures instead the training speed of PTB against ``ptb-N`` (N the largest
``--tokens``) robustly to the machine's load: both set up once in one process, then the same model trained in
alternating blocks (PTB, ptb-N, PTB, ...), K blocks each; tokens/s by the wall and the CPU clock
(``time.process_time``), median and best per corpus, and their ratio.

    RNNLAB_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/lm_scale.py --tokens 1e6 20e6
    python benchmarks/lm_scale.py --tokens 1e6 --zipf-tokens --steps 50 --work /tmp/lm_scale  # quicker
    python benchmarks/lm_scale.py --tokens 100e6 --interleave-rounds 6 --steps 100  # PTB against 100 M words
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ZIPF_WORDS = 267_731  # + <pad> <unk> <bos> <eos> = WikiText-103's 267,735 entries
CUTOFFS = [20_000, 40_000, 200_000]
SENTENCES_PER_WRITE = 100_000
ZIPF_EVAL_WORDS = 80_000


# ------------------------------------------------------------------------------------------ corpora
def ptb_lines(ptb: Path, split: str) -> list[str]:
    with gzip.open(ptb / f"ptb.{split}.txt.gz", "rt", encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def zipf_words(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` word ranks drawn from a Zipf law (s = 1) over ``ZIPF_WORDS`` words."""
    cdf = np.cumsum(1.0 / np.arange(1, ZIPF_WORDS + 1))
    return np.searchsorted(cdf, rng.random(count) * cdf[-1])


def write_sentences(path: Path, kind: str, words: int, sentences: list[str], rng: np.random.Generator) -> None:
    """Appends PTB sentences drawn with replacement (``ptb``), or Zipf words in PTB sentence lengths (``zipf``),
    until ``words`` words are written."""
    lengths = np.array([len(sentence.split()) for sentence in sentences])
    names = np.array([f"w{rank}" for rank in range(ZIPF_WORDS)], dtype=object) if kind == "zipf" else None
    written = 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < words:
            drawn = rng.integers(0, len(sentences), SENTENCES_PER_WRITE)
            drawn = drawn[: np.searchsorted(np.cumsum(lengths[drawn]), words - written, side="right") + 1]
            if kind == "ptb":
                handle.write("\n".join(sentences[i] for i in drawn) + "\n")
            else:
                flat = names[zipf_words(rng, int(lengths[drawn].sum()))]
                ends = np.cumsum(lengths[drawn])
                handle.write("\n".join(" ".join(flat[end - n:end]) for end, n in zip(ends, lengths[drawn])) + "\n")
            written += int(lengths[drawn].sum())


def make_corpus(folder: Path, kind: str, words: int, ptb: Path, seed: int = 0) -> dict[str, str]:
    """Writes ``train.txt`` of about ``words`` words (and validation/test files); returns the files by split.

    A folder that holds them already (``done`` written last) is used as it is: the same seed writes the same text.
    """
    files = {"train": folder / "train.txt"}
    for split, name in (("validation", "valid"), ("test", "test")):
        files[split] = ptb / f"ptb.{name}.txt.gz" if kind == "ptb" else folder / f"{name}.txt"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        sentences = ptb_lines(ptb, "train")
        write_sentences(files["train"], kind, words, sentences, rng)
        if kind == "zipf":
            for split in ("validation", "test"):
                write_sentences(files[split], kind, ZIPF_EVAL_WORDS, sentences, rng)
        (folder / "done").touch()
    return {split: str(path) for split, path in files.items()}


# --------------------------------------------------------------------------- measurements (child processes)
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_setup(files: dict[str, str], cache: str) -> dict:
    """Imports, then ``LMDataModule.setup()`` alone: its seconds and the process's peak RSS."""
    from rnnlab.data.lm import LMDataModule

    datamodule = LMDataModule("scale", "", files, cache_dir=cache)
    imported = peak_rss_mb()
    start = time.perf_counter()
    datamodule.setup()
    return {"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb(), "imports_rss_mb": imported,
            "vocab": len(datamodule.vocab), "train_ids": datamodule.streams["train"].numel()}


def lm_config(files: dict[str, str], cache: str, cutoffs: list[int] | None = None):
    """``experiment=lm_ptb``'s config on the corpus (the adaptive softmax with ``cutoffs``, else the full one)."""
    from hydra import compose, initialize_config_dir

    overrides = ["experiment=lm_ptb", f"data.cache_dir={cache}", *(f"data.files.{s}={f}" for s, f in files.items())]
    if cutoffs:
        overrides.append(f"+model.adaptive_softmax.cutoffs=[{','.join(map(str, cutoffs))}]")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[*overrides, "paths.output_dir=/tmp"])


def timed_fit(cfg, datamodule, module, steps: int, warmup: int) -> dict:
    """Trains ``module`` for ``warmup`` + ``steps`` steps with ``cfg``'s trainer settings (no validation);
    wall and CPU (``time.process_time``) seconds per step after ``warmup``."""
    import lightning as L

    from rnnlab.run.precision import choose_precision

    marks: list[tuple[float, float]] = []

    class StepClock(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            marks.append((time.perf_counter(), time.process_time()))

    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=warmup + steps, limit_val_batches=0,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, precision=choose_precision("auto"),
                        gradient_clip_val=cfg.trainer.gradient_clip_val, callbacks=[StepClock()])
    trainer.fit(module, datamodule=datamodule)
    marks.append((time.perf_counter(), time.process_time()))
    wall, cpu = ((marks[-1][clock] - marks[warmup][clock]) / steps for clock in (0, 1))
    return {"seconds_per_step": wall, "cpu_seconds_per_step": cpu, "precision": str(trainer.precision)}


def child_train(files: dict[str, str], cache: str, steps: int, warmup: int, cutoffs: list[int] | None) -> dict:
    """``experiment=lm_ptb``'s model and trainer settings on the corpus (the adaptive softmax with ``cutoffs``,
    else the full softmax): seconds per step after ``warmup``."""
    from rnnlab.run.pipeline import build

    cfg = lm_config(files, cache, cutoffs)
    datamodule, module = build(cfg)
    timed = timed_fit(cfg, datamodule, module, steps, warmup)
    return {**timed, "tokens_per_s": cfg.data.batch_size * cfg.data.bptt / timed["seconds_per_step"],
            "rss_mb": peak_rss_mb(), "vocab": len(datamodule.vocab)}


def child_interleave(corpora: dict[str, list], rounds: int, steps: int, warmup: int) -> dict:
    """Both corpora set up once in this process, then the same model (``experiment=lm_ptb``, one instance per
    corpus, each trained on) in alternating blocks of ``warmup`` + ``steps`` steps, ``rounds`` times: the
    machine's load then weighs on both alike.

    Args:
        corpora: name -> ``[files, cache]``.

    Returns:
        name -> wall and CPU seconds per step of every block, in order; ``load`` the load average after each round.
    """
    from rnnlab.run.pipeline import build

    built = {}
    for name, (files, cache) in corpora.items():
        cfg = lm_config(files, cache)
        built[name] = (cfg, *build(cfg))
    blocks = {name: {"seconds_per_step": [], "cpu_seconds_per_step": []} for name in corpora}
    loads = []
    for _ in range(rounds):
        for name, (cfg, datamodule, module) in built.items():
            timed = timed_fit(cfg, datamodule, module, steps, warmup)
            for clock, per_step in blocks[name].items():
                per_step.append(timed[clock])
        loads.append(os.getloadavg()[0])
    cfg = next(iter(built.values()))[0]
    return {"blocks": blocks, "load": loads, "tokens_per_step": cfg.data.batch_size * cfg.data.bptt,
            "vocab": {name: len(datamodule.vocab) for name, (_, datamodule, _) in built.items()}}


def in_child(*args) -> dict:
    """Runs a ``child_*`` measurement in a fresh Python process; returns what it printed."""
    command = [sys.executable, __file__, "--child", json.dumps(args)]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode:
        raise RuntimeError(f"{args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def first_and_cached_setup(files: dict[str, str], cache: Path) -> dict:
    """Setup with an empty cache (disk polled while it builds), then again with the cache."""
    shutil.rmtree(cache, ignore_errors=True)
    peak, done = [0], threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], folder_bytes(cache))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        first = in_child("setup", files, str(cache))
    finally:
        done.set()
        poller.join()
    cached = in_child("setup", files, str(cache))
    return {"first": first, "cached": cached, "cache_mb": folder_bytes(cache) / 2**20, "peak_disk_mb": peak[0] / 2**20}


# ---------------------------------------------------------------------------------------------- report
def setup_row(name: str, words: int, files: dict[str, str], setup: dict, speed: dict | None) -> str:
    text_mb = sum(Path(f).stat().st_size for f in files.values()) / 2**20
    first, cached = setup["first"], setup["cached"]
    tokens_per_s = f"{speed['tokens_per_s']:,.0f}" if speed else "-"
    return (f"| {name} | {words / 1e6:.1f} M | {first['vocab']:,} | {text_mb:,.0f} | {first['seconds']:.1f} | "
            f"{cached['seconds']:.2f} | {first['rss_mb']:,.0f} / {cached['rss_mb']:,.0f} "
            f"({first['imports_rss_mb']:,.0f}) | {setup['cache_mb']:,.0f} / {setup['peak_disk_mb']:,.0f} | "
            f"{tokens_per_s} |")


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return names[0] if names else platform.processor() or platform.machine()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=float, nargs="*", default=[1e6, 20e6], help="ptb corpus sizes (words)")
    parser.add_argument("--zipf-tokens", type=float, nargs="*", default=[20e6], help="267k-word corpus sizes")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps, 10k vocabulary")
    parser.add_argument("--vocab-steps", type=int, default=20, help="timed training steps, 267k vocabulary")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    parser.add_argument("--interleave-rounds", type=int, default=0,
                        help="instead of the table: PTB and ptb-N (N the largest --tokens) in this many rounds of "
                             "alternating blocks of --steps steps, in one process")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lm_scale"), help="corpora (kept) and caches")
    parser.add_argument("--figure", type=Path, help="draw setup time and peak RSS against words into this file")
    parser.add_argument("--data-dir", type=Path, help="folder holding ptb_mikolov/ ($RNNLAB_DATA_DIR)",
                        default=Path(os.environ.get("RNNLAB_DATA_DIR", ROOT.parent / "shared" / "data")))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def ptb_files(ptb: Path) -> dict[str, str]:
    return {split: str(ptb / f"ptb.{name}.txt.gz") for split, name in (("train", "train"), ("validation", "valid"),
                                                                      ("test", "test"))}


def measure_ptb_corpora(args: argparse.Namespace, ptb: Path) -> list[tuple[int, dict]]:
    """PTB and the ``ptb-N`` corpora: a table row each; returns ``(words, setup)`` per corpus."""
    corpora = [("PTB", 887_521, ptb_files(ptb))]
    corpora += [(f"ptb-{n / 1e6:g}M", int(n), make_corpus(args.work / f"ptb-{n:g}", "ptb", int(n), ptb))
                for n in args.tokens]
    measured = []
    for name, words, files in corpora:
        setup = first_and_cached_setup(files, args.work / f"cache-{name}")
        speed = in_child("train", files, str(args.work / f"cache-{name}"), args.steps, args.warmup, None)
        print(setup_row(name, words, files, setup, speed), flush=True)
        measured.append((words, setup))
    return measured


def measure_zipf_corpora(args: argparse.Namespace, ptb: Path) -> None:
    """The ``zipf-N`` corpora: a table row each, then the full and the adaptive softmax's step time."""
    for n in args.zipf_tokens:
        files = make_corpus(args.work / f"zipf-{n:g}", "zipf", int(n), ptb)
        setup = first_and_cached_setup(files, args.work / f"cache-zipf-{n:g}")
        print(setup_row(f"zipf-{n / 1e6:g}M", int(n), files, setup, None), flush=True)
        cutoffs = [cutoff for cutoff in CUTOFFS if cutoff < setup["first"]["vocab"]]
        for adaptive in (None, cutoffs):
            speed = in_child("train", files, str(args.work / f"cache-zipf-{n:g}"), args.vocab_steps, args.warmup,
                             adaptive)
            output = f"adaptive softmax {adaptive}" if adaptive else "full softmax"
            print(f"#   {output} over {speed['vocab']:,} words: "
                  f"{speed['seconds_per_step']:.3f} s/step, {speed['tokens_per_s']:,.0f} tokens/s, peak RSS "
                  f"{speed['rss_mb']:,.0f} MB ({speed['precision']}, {args.vocab_steps} steps)", flush=True)


def measure_interleaved(args: argparse.Namespace, ptb: Path) -> None:
    """PTB and ``ptb-N`` (N the largest of ``--tokens``) trained in alternating blocks in one process
    (``child_interleave``): tokens/s of each by the wall and the CPU clock, and the ratio of ``ptb-N``'s to PTB's."""
    words = int(max(args.tokens))
    large = f"ptb-{words / 1e6:g}M"
    corpora = {"PTB": [ptb_files(ptb), str(args.work / "cache-PTB")],
               large: [make_corpus(args.work / f"ptb-{words:g}", "ptb", words, ptb), str(args.work / f"cache-{large}")]}
    result = in_child("interleave", corpora, args.interleave_rounds, args.steps, args.warmup)
    tokens = result["tokens_per_step"]
    speeds = {name: {clock: tokens / np.array(per_step) for clock, per_step in blocks.items()}
              for name, blocks in result["blocks"].items()}  # tokens/s of each block
    print(f"# interleaved: {args.interleave_rounds} rounds of {args.warmup} + {args.steps} steps on each corpus "
          f"(PTB first), one process; vocabularies {result['vocab']}; load average after each round "
          f"{' '.join(f'{x:.1f}' for x in result['load'])}")
    print("| corpus | clock | tokens/s median | best | every block |\n|---|---|---:|---:|---|")
    for name, clocks in speeds.items():
        for clock, label in (("seconds_per_step", "wall"), ("cpu_seconds_per_step", "CPU")):
            print(f"| {name} | {label} | {np.median(clocks[clock]):,.0f} | {clocks[clock].max():,.0f} | "
                  f"{', '.join(f'{x:,.0f}' for x in clocks[clock])} |")
    for clock, label in (("seconds_per_step", "wall"), ("cpu_seconds_per_step", "CPU")):
        big, small = speeds[large][clock], speeds["PTB"][clock]
        paired = big / small  # each round's blocks ran minutes apart at most
        print(f"# {large} / PTB tokens/s, {label} clock: medians {np.median(big) / np.median(small):.3f}, bests "
              f"{big.max() / small.max():.3f}, median of the rounds' ratios {np.median(paired):.3f} (range "
              f"{paired.min():.3f}-{paired.max():.3f})", flush=True)


def draw(measured: list[tuple[int, dict]], path: Path) -> None:
    """Setup seconds and peak RSS against words, first and cached, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = [n / 1e6 for n, _ in measured]
    figure, (seconds, memory) = plt.subplots(1, 2, figsize=(9, 3.5))
    for run, style in (("first", "o-"), ("cached", "s--")):
        seconds.plot(words, [setup[run]["seconds"] for _, setup in measured], style, label=run)
        memory.plot(words, [setup[run]["rss_mb"] for _, setup in measured], style, label=run)
    memory.plot(words, [setup["first"]["imports_rss_mb"] for _, setup in measured], ":", label="after imports")
    for axes, label in ((seconds, "setup (s)"), (memory, "peak RSS (MB)")):
        axes.set(xscale="log", xlabel="training words (millions)", ylabel=label)
        axes.grid(alpha=0.3)
        axes.legend()
    seconds.set_yscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    if args.child:
        name, *rest = json.loads(args.child)
        print(json.dumps({"setup": child_setup, "train": child_train, "interleave": child_interleave}[name](*rest)))
        return
    import torch

    ptb = args.data_dir / "ptb_mikolov"
    print(f"# {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.interleave_rounds:
        measure_interleaved(args, ptb)
        print(f"# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return
    print("| corpus | words | vocabulary | text MB | first setup s | cached setup s | peak RSS MB first / cached "
          "(after imports) | cache MB / peak disk MB | training tokens/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    measured = measure_ptb_corpora(args, ptb)
    measure_zipf_corpora(args, ptb)
    if args.figure:
        draw(measured, args.figure)
    print(f"# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
