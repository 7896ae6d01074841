"""What a large tagging or classification file costs to set up: wall time and peak memory against the encoded
data's size.

Writes synthetic files of N training sentences (~14 tokens a sentence, words from a Zipf law over 100,000 words),
then runs the DataModule's ``setup`` on them in a fresh process, so that its peak RSS is its own. A second fresh
process imports the same libraries and reads nothing: its peak RSS is the baseline. The encoded size is the
bytes of the Arrow tables ``setup`` leaves. The goal: (peak - baseline) <= 2 x encoded. ``--kind``:

- ``tagging``: CoNLL files (four columns as CoNLL-2003: word, POS, chunk, NER tag), N training sentences and
  N / 100 each for validation and test; ``TaggingDataModule``;
- ``classification``: ``LABEL sentence`` files (the SST ``stsa.*`` format, labels 0-4), the same sizes;
  ``ClassificationDataModule``;
- ``pooled``: MR's layout, one sentence a line in one file per label (N / 2 each, ``format: lines``), split
  10% test, 10% of the rest validation by ``ClassificationDataModule``.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/large_files.py --sentences 1000000 --work /tmp/large_files
    python benchmarks/large_files.py --kind pooled --src /tmp/old/src  # another copy of the code
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = 100_000
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
POS = ["NN", "NNP", "VB", "DT", "IN", "JJ", "CD", "."]
CHUNKS = ["B-NP", "I-NP", "B-VP", "O"]
LABELS = ["0", "1", "2", "3", "4"]
SENTENCES_PER_WRITE = 50_000
KINDS = ("tagging", "classification", "pooled")
SPLITS = ("train", "validation", "test")


def zipf_sentences(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` sentence lengths, 1 + Poisson(13), and their words drawn from a Zipf law (s = 1), concatenated."""
    cdf = np.cumsum(1.0 / np.arange(1, WORDS + 1))
    names = np.array([f"w{rank}" for rank in range(WORDS)], dtype=object)
    lengths = 1 + rng.poisson(13, count)
    return lengths, names[np.searchsorted(cdf, rng.random(int(lengths.sum())) * cdf[-1])]


def write_conll(path: Path, sentences: int, seed: int) -> None:
    """``sentences`` sentences of 4-column CoNLL, lengths 1 + Poisson(13), words Zipf-distributed (s = 1)."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("-DOCSTART- -X- -X- O\n\n")
        for start in range(0, sentences, SENTENCES_PER_WRITE):
            lengths, words = zipf_sentences(rng, min(SENTENCES_PER_WRITE, sentences - start))
            total = int(lengths.sum())
            pos, chunks, tags = (rng.integers(0, len(options), total) for options in (POS, CHUNKS, TAGS))
            lines = [f"{w} {POS[p]} {CHUNKS[c]} {TAGS[t]}\n" for w, p, c, t in zip(words, pos, chunks, tags)]
            ends = set(np.cumsum(lengths) - 1)
            handle.write("".join(line + "\n" if i in ends else line for i, line in enumerate(lines)))


def write_labelled(path: Path, sentences: int, seed: int, labels: list[str] | None = LABELS) -> None:
    """``sentences`` lines ``LABEL sentence`` (labels uniform over ``labels``), or bare sentences when ``labels``
    is None; sentences as ``write_conll``'s."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, sentences, SENTENCES_PER_WRITE):
            lengths, words = zipf_sentences(rng, min(SENTENCES_PER_WRITE, sentences - start))
            ends = np.cumsum(lengths)
            texts = (" ".join(words[end - n:end]) for end, n in zip(ends, lengths))
            if labels is not None:
                texts = (f"{labels[k]} {text}" for k, text in zip(rng.integers(0, len(labels), len(lengths)), texts))
            handle.write("".join(text + "\n" for text in texts))


def files(work: Path, kind: str) -> dict[str, Path]:
    """The kind's files: by split, or by label for ``pooled``."""
    if kind == "pooled":
        return {label: work / f"{label}.lines" for label in ("neg", "pos")}
    return {split: work / f"{split}.{'txt' if kind == 'tagging' else 'labelled'}" for split in SPLITS}


def write_files(work: Path, kind: str, sentences: int) -> None:
    """The kind's synthetic files; those of an earlier run of the same kind and size are reused."""
    paths = files(work, kind)
    sizes = {key: sentences // 2 for key in paths} if kind == "pooled" else \
        {split: sentences if split == "train" else max(1, sentences // 100) for split in paths}
    stamp = work / f"sizes-{kind}.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == sizes:
        return
    for seed, (key, count) in enumerate(sizes.items()):
        if kind == "tagging":
            write_conll(paths[key], count, seed)
        else:
            write_labelled(paths[key], count, seed, None if kind == "pooled" else LABELS)
    stamp.write_text(json.dumps(sizes))


def datamodule(work: Path, kind: str):
    """The DataModule that reads the kind's files."""
    paths = {key: str(path) for key, path in files(work, kind).items()}
    if kind == "tagging":
        from rnnlab.data.tagging import TaggingDataModule

        return TaggingDataModule("synthetic", "", paths)
    from rnnlab.data.classification import ClassificationDataModule

    if kind == "pooled":
        return ClassificationDataModule("synthetic", "", paths, format="lines", labels=list(paths))
    return ClassificationDataModule("synthetic", "", paths, format="label_text", labels=LABELS)


def child(work: Path, kind: str, read: bool) -> dict:
    """In this (fresh) process: set up the DataModule (or only import, for the baseline); what it cost."""
    import datasets  # noqa: F401  the libraries setup uses, for both measurements

    data = datamodule(work, kind)
    result = {}
    if read:
        start = time.perf_counter()
        data.setup()
        result["seconds"] = time.perf_counter() - start
        result["encoded_bytes"] = sum(d.data.nbytes for d in data.datasets.values())
        result["sentences"] = {split: len(d) for split, d in data.datasets.items()}
        result["words"] = len(data.vocab)
        result["classes" if kind != "tagging" else "tags"] = len(data.labels if kind != "tagging" else data.tags)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    return result


def measure(work: Path, kind: str, read: bool, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--child", "read" if read else "import", "--kind", kind, "--work", str(work)]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=1_000_000, help="training sentences")
    parser.add_argument("--kind", choices=KINDS, default="tagging", help="which files and DataModule")
    parser.add_argument("--work", type=Path, default=Path("/tmp/large_files"), help="folder of the files")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the rnnlab code to measure (its src folder)")
    parser.add_argument("--child", choices=("read", "import"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.work, args.kind, args.child == "read")))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    write_files(args.work, args.kind, args.sentences)
    baseline = measure(args.work, args.kind, False, args.src)
    read = measure(args.work, args.kind, True, args.src)
    encoded_mb = read["encoded_bytes"] / 2**20
    ratio = (read["peak_rss_mb"] - baseline["peak_rss_mb"]) / encoded_mb
    report = {**read, "kind": args.kind, "src": str(args.src),
              "text_mb": sum(path.stat().st_size for path in files(args.work, args.kind).values()) / 2**20,
              "baseline_rss_mb": baseline["peak_rss_mb"], "encoded_mb": encoded_mb,
              "peak_minus_baseline_over_encoded": ratio, "load_average": os.getloadavg()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
