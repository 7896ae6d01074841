"""Parts of the side-by-side harness that run without any peer installed (rnnlab's venv, or none at all).

- the data each system reads: the same sentences, read once by rnnlab's readers, written as two-column
  ``token<TAB>tag`` files for the peer (NER tags rewritten as IOB2: the same entities as the IOB1 files); for
  translation, the raw sentence pairs (which rnnlab reads) and the same pairs Moses-tokenised as rnnlab
  tokenises them (which the peer reads);
- the vectors: the rows of rnnlab's named source (``glove-6b-50d``) exported as ``words.txt`` + ``vectors.npy``,
  which the peer's venv turns into a gensim KeyedVectors file (``flair/convert_vectors.py``);
- scoring: every system's test predictions are scored here by one scorer (rnnlab's conlleval-equal span F1 for
  NER, token accuracy for UPOS, sacrebleu's corpus BLEU of detokenised translations against the raw references)
  against the same gold;
- parsing each system's per-epoch records, and the tables and the plot of docs/peers.md.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import re
from pathlib import Path
from statistics import median
from typing import Iterable, Sequence

SPLITS = ("train", "dev", "test")
SCORE_NAMES = {"ner": "F1", "upos": "accuracy", "mt": "BLEU"}
TASK_TITLES = {"ner": "NER, CoNLL-2003", "upos": "UPOS, UD EWT", "mt": "Multi30k de→en, test2016"}


# ----------------------------------------------------------------------------------------------- peer scripts

def peer_arguments(tasks: Sequence[str], epochs: int, batch_size: int, batch_help: str) -> argparse.ArgumentParser:
    """The command line every peer's script shares (run in the peer's venv: this module imports only the
    standard library at its top): ``train`` or ``predict`` and the options ``run.py`` passes; a script adds its
    own."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["train", "predict"])
    parser.add_argument("--task", choices=sorted(tasks), required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-minutes", type=float, help="no epoch started that would end past this")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=batch_help)
    parser.add_argument("--keep-models", action="store_true")
    return parser


def run_peer(args: argparse.Namespace, train, predict) -> None:
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: OMP_NUM_THREADS is not 1", flush=True)
    train(args) if args.mode == "train" else predict(args)


# ----------------------------------------------------------------------------------------------- data

def iob2(tags: Sequence[str]) -> list[str]:
    """The IOB2 tags of a sentence's entities, read with conlleval's rules (IOB1, IOB2 and BIOES inputs)."""
    from rnnlab.metrics.span_f1 import extract_spans

    out = ["O"] * len(tags)
    for kind, first, last in extract_spans(tags):
        out[first] = f"B-{kind}"
        for position in range(first + 1, last + 1):
            out[position] = f"I-{kind}"
    return out


def write_columns(path: Path, sentences: Iterable[dict]) -> int:
    """``token<TAB>tag`` lines, a blank line after each sentence; returns the number of sentences."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for sentence in sentences:
            for token, tag in zip(sentence["tokens"], sentence["tags"]):
                if "\t" in token or "\n" in token or not token:
                    raise ValueError(f"{path}: token {token!r} cannot be written as a column")
                out.write(f"{token}\t{tag}\n")
            out.write("\n")
            count += 1
    return count


def read_columns(path: Path) -> list[dict]:
    """What ``write_columns`` wrote."""
    sentences, tokens, tags = [], [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if tokens:
                sentences.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        token, tag = line.split("\t")
        tokens.append(token)
        tags.append(tag)
    if tokens:
        sentences.append({"tokens": tokens, "tags": tags})
    return sentences


def write_translation(folder: Path, pairs: dict[str, list[dict]], source_lang: str, target_lang: str) -> None:
    """Each split's ``{"source", "target"}`` pairs as line-aligned files: raw under ``folder/raw/<split>.<lang>``
    (rnnlab reads and tokenises these itself), and Moses-tokenised as rnnlab tokenises them (``escape=False``,
    case kept) as ``folder/<split>.<lang>``, one sentence a line with tokens separated by spaces (the peer's)."""
    from sacremoses import MosesTokenizer

    (folder / "raw").mkdir(parents=True, exist_ok=True)
    for lang, side in ((source_lang, "source"), (target_lang, "target")):
        tokenizer = MosesTokenizer(lang)
        for split, rows in pairs.items():
            lines = [row[side] for row in rows]
            if any("\n" in line for line in lines):
                raise ValueError(f"{split}.{lang}: a sentence holds a line break")
            write_lines(folder / "raw" / f"{split}.{lang}", lines)
            write_lines(folder / f"{split}.{lang}",
                        [" ".join(tokenizer.tokenize(line, escape=False)) for line in lines])


def write_lines(path: Path, lines: Iterable[str]) -> None:
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_lines(path: Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


# ----------------------------------------------------------------------------------------------- vectors

def export_vectors(words: Sequence[str], matrix, folder: Path) -> Path:
    """Writes ``words.txt`` (one word a line, row order) and ``vectors.npy`` (float32 rows) into ``folder``.

    Rows whose word repeats an earlier one, or holds whitespace (which no word2vec or KeyedVectors key file can
    hold), are left out; the first row of a word is the one both systems read.
    """
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    keep = []
    for row, word in enumerate(words):
        if word in seen or not word or any(ch.isspace() for ch in word):
            continue
        seen.add(word)
        keep.append(row)
    kept = np.asarray(matrix[keep] if len(keep) != len(words) else matrix, dtype=np.float32)
    (folder / "words.txt").write_text("".join(f"{words[row]}\n" for row in keep), encoding="utf-8")
    np.save(folder / "vectors.npy", kept)
    return folder


def read_exported(folder: Path):
    """``(words, matrix)`` as ``export_vectors`` wrote them."""
    import numpy as np

    words = (folder / "words.txt").read_text(encoding="utf-8").split("\n")[:-1]
    matrix = np.load(folder / "vectors.npy")
    if matrix.shape[0] != len(words):
        raise ValueError(f"{folder}: {matrix.shape[0]} rows for {len(words)} words")
    return words, matrix


# ----------------------------------------------------------------------------------------------- scoring

def score(task: str, gold: Sequence, predicted: Sequence) -> float:
    """Test score in percent: entity micro F1 (conlleval rules) for ``ner``, token accuracy for ``upos`` (gold and
    predicted: a tag sequence per sentence); corpus BLEU (sacrebleu's defaults, as rnnlab's ``test/bleu``) for
    ``mt`` (gold: raw references; predicted: detokenised translations, a string each)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predicted sentences for {len(gold)} gold ones")
    if task == "mt":
        import sacrebleu

        return sacrebleu.corpus_bleu(list(predicted), [list(gold)]).score
    for number, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {number}: {len(p)} predicted tags for {len(g)} tokens")
    if task == "upos":
        total = sum(len(g) for g in gold)
        right = sum(a == b for g, p in zip(gold, predicted) for a, b in zip(g, p))
        return 100.0 * right / total
    from rnnlab.metrics.span_f1 import extract_spans

    found = correct = wanted = 0
    for g, p in zip(gold, predicted):
        gs, ps = extract_spans(g), extract_spans(p)
        wanted += len(gs)
        found += len(ps)
        correct += len(gs & ps)
    if correct == 0:
        return 0.0
    precision, recall = correct / found, correct / wanted
    return 100.0 * 2 * precision * recall / (precision + recall)


def read_predictions(path: Path) -> list[list[str]]:
    """One sentence a line, its tags separated by spaces (what both systems' predict steps write)."""
    return [line.split(" ") if line else [] for line in Path(path).read_text(encoding="utf-8").split("\n")[:-1]]


def write_predictions(path: Path, predicted: Iterable[Sequence[str]]) -> None:
    Path(path).write_text("".join(" ".join(tags) + "\n" for tags in predicted), encoding="utf-8")


# ----------------------------------------------------------------------------------------------- records

def rnnlab_epochs(metrics_csv: Path, metric: str, scale: float = 100.0) -> dict[int, float]:
    """Epoch (1-based) -> validation score in percent, from rnnlab's CSV log (``val/f1``, ``val/acc``, ``val/bleu``
    column, one row per validation; rows of the same epoch without that column are training steps); ``scale``
    turns the logged value into percent (100 for F1 and accuracy, logged as fractions; 1 for BLEU)."""
    scores: dict[int, float] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            value = row.get(metric, "")
            if value not in ("", None) and row.get("epoch", "") != "":
                scores[int(float(row["epoch"])) + 1] = float(value) * scale
    return scores


def rnnlab_partial_epochs(metrics_csv: Path, metric: str) -> dict[str, float]:
    """Epochs (1-based, as strings) cut short by the time budget, and the fraction of an epoch each ran: fewer
    optimiser steps between their validation and the previous one than the first epoch had (Lightning validates
    and checkpoints the epoch its timer ends)."""
    steps: dict[int, int] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get(metric, "") not in ("", None) and row.get("epoch", "") != "":
                steps[int(float(row["epoch"])) + 1] = int(float(row["step"]))
    if 1 not in steps:
        return {}
    full = steps[1] + 1
    return {str(e): (steps[e] - steps[e - 1]) / full for e in sorted(steps)
            if e > 1 and e - 1 in steps and steps[e] - steps[e - 1] < full}


EPOCH_CKPT = re.compile(r"epoch=(\d+)\.ckpt$")


def rnnlab_checkpoints(folder: Path) -> dict[int, Path]:
    """Epoch (1-based) -> the checkpoint the benchmark's every-epoch callback wrote (``epoch=NNN.ckpt``, 0-based)."""
    found = {}
    for path in Path(folder).glob("epoch=*.ckpt"):
        match = EPOCH_CKPT.search(path.name)
        if match:
            found[int(match.group(1)) + 1] = path
    return dict(sorted(found.items()))


def epoch_times(ends: dict[int, float], start: float) -> dict[int, float]:
    """Seconds each epoch took, from the wall-clock time at the end of each (after its validation) and the
    launch time: epoch 1 includes the start-up (reading data and vectors), later ones are differences."""
    times, previous = {}, start
    for epoch in sorted(ends):
        times[epoch] = ends[epoch] - previous
        previous = ends[epoch]
    return times


# ----------------------------------------------------------------------------------------------- tables

def fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, float)) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(x, y) -> str:
    """``x / y`` as ``3.69×``; a dash when either is missing."""
    return f"{x / y:.2f}×" if x and y else "–"


def summary(system: dict) -> dict:
    """Derived figures of one system's record (see ``run.py`` for the record's fields)."""
    epochs = sorted(int(e) for e in system["epoch_end_s"])
    partial = {int(e): part for e, part in (system.get("partial_epochs") or {}).items()}
    times = epoch_times({e: system["epoch_end_s"][str(e)] for e in epochs}, 0.0)
    steady = [times[e] for e in epochs if e > 1 and e not in partial] or [times[e] for e in epochs]
    test = {int(e): v for e, v in system.get("test_by_epoch", {}).items()}
    best_epoch = system.get("best_epoch")
    infer = system.get("inference_sent_s") or []
    infer_sorted = system.get("inference_sorted_sent_s") or []
    return {
        "epochs": len(epochs) - len(partial) + sum(partial.values()),
        "infer_sorted_median": median(infer_sorted) if infer_sorted else None,
        "epoch_s_median": median(steady) if steady else None,
        "epoch_s_min": min(steady) if steady else None,
        "epoch_s_max": max(steady) if steady else None,
        "first_epoch_s": times.get(1),
        "train_sent_s": system["train_sentences"] / median(steady) if steady else None,
        "test_best": test.get(best_epoch) if best_epoch else None,
        "test_last": test[epochs[-1]] if epochs and epochs[-1] in test else None,
        "infer_min": min(infer) if infer else None,
        "infer_max": max(infer) if infer else None,
        "infer_median": median(infer) if infer else None,
        "peak_rss_mib": system.get("peak_rss_kib", 0) / 1024 if system.get("peak_rss_kib") else None,
    }


def score_at(system: dict, seconds: float, selected: bool = False) -> float | None:
    """Test score of the model a system holds ``seconds`` after launch: the last epoch finished by then, or with
    ``selected`` the best-dev epoch among those (the checkpoint each system keeps); None before the first."""
    done = [int(e) for e, end in system["epoch_end_s"].items() if end <= seconds]
    if not done:
        return None
    dev = system["dev_by_epoch"]
    epoch = max(done, key=lambda e: (dev.get(str(e), -math.inf), -e)) if selected else max(done)
    return system["test_by_epoch"].get(str(epoch))


def equal_time_margins(result: dict, selected: bool = False) -> dict[float, float]:
    """rnnlab's test score minus the peer's at every epoch end of either system from the first time both hold a
    model, keyed by seconds since launch (the issue's "at every equal training wall time"): of each one's latest
    epoch, or with ``selected`` of each one's best-dev epoch so far (``score_at``)."""
    ours, theirs = result["systems"]["rnnlab"], result["systems"][result["peer"]]
    ends = sorted({end for system in (ours, theirs) for end in system["epoch_end_s"].values()})
    margins = {}
    for end in ends:
        a, b = score_at(ours, end, selected), score_at(theirs, end, selected)
        if a is not None and b is not None:
            margins[end] = a - b
    return margins


def budget(result: dict) -> str:
    """Each system's training budget as its command set it: ``15 ep / 00:00:38:00`` and ``15 ep / 38 min``."""
    commands = result["commands"]
    ours = dict(arg.replace("'", "").split("=", 1) for arg in commands["rnnlab"] if arg.startswith("trainer.max_"))
    theirs = commands[result["peer"]]
    option = lambda name: theirs[theirs.index(name) + 1] if name in theirs else None
    peer_minutes = option("--max-minutes")
    return (f"{ours.get('trainer.max_epochs', '?')} ep / {ours.get('trainer.max_time', 'no limit')}; "
            f"{option('--epochs')} ep / " + (f"{float(peer_minutes):g} min" if peer_minutes else "no limit"))


def seeds_table(results: Sequence[dict]) -> str:
    """Every run of each task and peer, one row a seed, then the mean over seeds of each system's test score at its
    best-dev epoch with its 95% interval inside the score's range, and a paired t-test of their difference
    (``rnnlab.analysis.stats``; rnnlab's venv)."""
    import pandas as pd
    from rnnlab.analysis.stats import compare, mean_interval

    groups: dict[tuple[str, str], list[dict]] = {}
    for result in results:
        groups.setdefault((result["task"], result["peer"]), []).append(result)
    lines = []
    for (task, peer), runs in sorted(groups.items(), key=lambda item: list(SCORE_NAMES).index(item[0][0])):
        runs = sorted(runs, key=lambda r: r["seed"])
        label = SCORE_NAMES[task]
        lines += [f"{TASK_TITLES[task]}, rnnlab and {peer}, test {label} at each system's best-dev epoch:", "",
                  f"| seed | started (load) | budget: rnnlab; {peer} | epochs | rnnlab | {peer} | difference | "
                  "training sentences/s, ratio | rnnlab ≥ peer at equal wall time, latest epochs (smallest margin) "
                  "| the same, best-dev epochs so far |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        scores = {"rnnlab": {}, peer: {}}
        for run in runs:
            sums = {name: summary(run["systems"][name]) for name in ("rnnlab", peer)}
            for name in scores:
                scores[name][run["seed"]] = sums[name]["test_best"]
            checks = []
            for selected in (False, True):
                margins = equal_time_margins(run, selected)
                checks.append(f"{sum(m >= 0 for m in margins.values())} of {len(margins)} "
                              f"({min(margins.values(), default=math.nan):+.2f})")
            difference = (sums["rnnlab"]["test_best"] or math.nan) - (sums[peer]["test_best"] or math.nan)
            lines.append(
                f"| {run['seed']} | {run['started'][:16]} ({run['load_start'].split()[0]}) | {budget(run)} | "
                f"{sums['rnnlab']['epochs']:.3g} / {sums[peer]['epochs']:.3g} | "
                f"{fmt(sums['rnnlab']['test_best'], 2)} | {fmt(sums[peer]['test_best'], 2)} | {difference:+.2f} | "
                f"{ratio(sums['rnnlab']['train_sent_s'], sums[peer]['train_sent_s'])} | {' | '.join(checks)} |")
        series = {name: pd.Series(values, dtype=float) for name, values in scores.items()}
        intervals = {name: mean_interval(values, (0.0, 100.0)) for name, values in series.items()}
        span = lambda i: f"{i.mean:.2f} ± {i.std:.2f} [{i.low:.2f}, {i.high:.2f}]" if i.n > 1 else fmt(i.mean, 2)
        comparison = compare(series["rnnlab"], series[peer])
        seeds = intervals["rnnlab"].n
        lines += [f"| mean ± sd [95% interval], {seeds} seed{'s' * (seeds != 1)} | | | | "
                  f"{span(intervals['rnnlab'])} | {span(intervals[peer])} | "
                  f"{comparison.difference:+.2f} (p = {fmt(comparison.p, 3)}, "
                  f"{comparison.test}) | | | |", ""]
    return "\n".join(lines)


def tables(result: dict) -> str:
    """The markdown tables of one side-by-side run (``result`` as ``run.py`` writes it)."""
    systems = result["systems"]
    names = list(systems)
    label = SCORE_NAMES[result["task"]]
    sums = {name: summary(systems[name]) for name in names}
    lines = [f"Task `{result['task']}`, seed {result['seed']}, started {result['started']}; load (1-min) at start "
             f"{result['load_start']}, when the first system ended {result.get('load_first_end', '–')}, at the end "
             f"{result.get('load_end', '–')}.", ""]
    lines += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    rows = [
        ("epochs trained", lambda s: f"{s['epochs']:.2f}".removesuffix(".00")),
        ("first epoch, s (incl. start-up)", lambda s: fmt(s["first_epoch_s"], 0)),
        ("later epochs, s (median, min–max)",
         lambda s: f"{fmt(s['epoch_s_median'], 0)} ({fmt(s['epoch_s_min'], 0)}–{fmt(s['epoch_s_max'], 0)})"),
        ("training sentences/s", lambda s: fmt(s["train_sent_s"], 0)),
        (f"test {label}, best-dev epoch", lambda s: fmt(s["test_best"], 2)),
        (f"test {label}, last epoch", lambda s: fmt(s["test_last"], 2)),
        ("inference sentences/s (median, min–max)",
         lambda s: f"{fmt(s['infer_median'], 0)} ({fmt(s['infer_min'], 0)}–{fmt(s['infer_max'], 0)})"),
        ("inference sentences/s, sorted by length first", lambda s: fmt(s["infer_sorted_median"], 0)),
        ("peak RSS of training, MiB", lambda s: fmt(s["peak_rss_mib"], 0)),
    ]
    for title, get in rows:
        lines.append(f"| {title} | " + " | ".join(get(sums[n]) for n in names) + " |")
    lines.append("| best-dev epoch | " + " | ".join(str(systems[n].get("best_epoch", "–")) for n in names) + " |")
    lines.append("")
    side = result.get("inference_side_by_side")
    if side:
        passes = len(side[names[0]]["sent_s"])
        lines += [f"Inference side by side ({side['at']}; load {side['load_start']} → {side['load_end']}): rnnlab's "
                  f"best-dev checkpoint and Flair's final model, started together, one thread each, {passes} passes "
                  "each; sentences/s, median (min–max):", "",
                  "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        span = lambda xs: f"{fmt(median(xs), 0)} ({fmt(min(xs), 0)}–{fmt(max(xs), 0)})" if xs else "–"
        lines.append("| as each predict runs (batch " + " / ".join(str(side[n]["batch_size"]) for n in names) +
                     ") | " + " | ".join(span(side[n]["sent_s"]) for n in names) + " |")
        lines.append("| rnnlab's sentences sorted by length first | " +
                     " | ".join(span(side[n]["sorted_sent_s"]) for n in names) + " |")
        lines.append("")
    if len(names) == 2:
        a, b = names
        sa, sb = sums[a], sums[b]
        if side:
            ia, ib = median(side[a]["sent_s"]), median(side[b]["sent_s"])
            sorted_a = median(side[a]["sorted_sent_s"]) if side[a]["sorted_sent_s"] else None
            inference = (f"inference sentences/s side by side {ratio(ia, ib)} ({ratio(sorted_a, ib)} with "
                         f"{a}'s sentences sorted by length)")
        else:
            inference = f"inference sentences/s (medians) {ratio(sa['infer_median'], sb['infer_median'])}"
        lines += [f"Ratios {a} / {b}: training sentences/s {ratio(sa['train_sent_s'], sb['train_sent_s'])}, "
                  f"{inference}, "
                  f"peak RSS {ratio(sa['peak_rss_mib'], sb['peak_rss_mib'])}.", ""]
    most = max(len(systems[n]["epoch_end_s"]) for n in names)
    lines += ["| epoch | " + " | ".join(f"{n} end, s | {n} dev | {n} test" for n in names) + " |",
              "|---|" + "---|---|---|" * len(names)]
    for epoch in range(1, most + 1):
        cells = []
        for n in names:
            s = systems[n]
            e = str(epoch)
            part = (s.get("partial_epochs") or {}).get(e)
            cut = f" ({part:.0%} of an epoch)" if part is not None else ""
            cells += [fmt(s["epoch_end_s"].get(e), 0) + cut, fmt(s["dev_by_epoch"].get(e), 2),
                      fmt(s["test_by_epoch"].get(e), 2)]
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def plot(results: Sequence[dict], path: Path) -> Path:
    """Test score against training wall time (minutes since launch, at each epoch's end): one panel per task,
    one colour per system, one marker per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({result["task"] for result in results}, key=list(SCORE_NAMES).index)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        runs = sorted((r for r in results if r["task"] == task), key=lambda r: r["seed"])
        for marker, result in zip(itertools.cycle("os^Dv"), runs):
            for colour, (name, system) in enumerate(result["systems"].items()):
                epochs = sorted(int(e) for e in system["test_by_epoch"])
                ax.plot([system["epoch_end_s"][str(e)] / 60 for e in epochs],
                        [system["test_by_epoch"][str(e)] for e in epochs], marker=marker, color=f"C{colour}",
                        alpha=0.8, label=f"{name}, seed {result['seed']} (load {result['load_start'].split()[0]})")
        ax.set_xlabel("minutes since both trainings started (one thread each)")
        ax.set_ylabel(f"test {SCORE_NAMES[task]}")
        ax.set_title(TASK_TITLES.get(task, task))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
