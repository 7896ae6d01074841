"""What a large tagging file costs to set up: wall time and peak memory against the encoded data's size.

Writes a synthetic CoNLL file of N training sentences (four columns as CoNLL-2003: word, POS, chunk, NER tag;
~14 tokens a sentence, words from a Zipf law over 100,000 words) and validation and test files of N / 100
sentences each, then runs ``TaggingDataModule.setup`` on them in a fresh process, so that its peak RSS is its
own. A second fresh process imports the same libraries and reads nothing: its peak RSS is the baseline. The
encoded size is the bytes of the Arrow tables ``setup`` leaves. The goal: (peak - baseline) <= 2 x encoded.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/large_files.py --sentences 1000000 --work /tmp/large_files
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
SENTENCES_PER_WRITE = 50_000


def write_conll(path: Path, sentences: int, seed: int) -> None:
    """``sentences`` sentences of 4-column CoNLL, lengths 1 + Poisson(13), words Zipf-distributed (s = 1)."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, WORDS + 1))
    names = np.array([f"w{rank}" for rank in range(WORDS)], dtype=object)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("-DOCSTART- -X- -X- O\n\n")
        for start in range(0, sentences, SENTENCES_PER_WRITE):
            lengths = 1 + rng.poisson(13, min(SENTENCES_PER_WRITE, sentences - start))
            total = int(lengths.sum())
            words = names[np.searchsorted(cdf, rng.random(total) * cdf[-1])]
            pos, chunks, tags = (rng.integers(0, len(options), total) for options in (POS, CHUNKS, TAGS))
            lines = [f"{w} {POS[p]} {CHUNKS[c]} {TAGS[t]}\n" for w, p, c, t in zip(words, pos, chunks, tags)]
            ends = set(np.cumsum(lengths) - 1)
            handle.write("".join(line + "\n" if i in ends else line for i, line in enumerate(lines)))


def child(work: Path, read: bool) -> dict:
    """In this (fresh) process: set up the DataModule (or only import, for the baseline); what it cost."""
    import datasets  # noqa: F401  the libraries setup uses, for both measurements

    from rnnlab.data.tagging import TaggingDataModule

    result = {}
    if read:
        start = time.perf_counter()
        data = TaggingDataModule("synthetic", "", {split: str(work / f"{split}.txt")
                                                   for split in ("train", "validation", "test")})
        data.setup()
        result["seconds"] = time.perf_counter() - start
        result["encoded_bytes"] = sum(d.data.nbytes for d in data.datasets.values())
        result["sentences"] = {split: len(d) for split, d in data.datasets.items()}
        result["words"], result["tags"] = len(data.vocab), len(data.tags)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    return result


def measure(work: Path, read: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    output = subprocess.run([sys.executable, __file__, "--child", "read" if read else "import", "--work", str(work)],
                            env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=1_000_000, help="training sentences")
    parser.add_argument("--work", type=Path, default=Path("/tmp/large_files"), help="folder of the files")
    parser.add_argument("--child", choices=("read", "import"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.work, args.child == "read")))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = {"train": args.sentences, "validation": max(1, args.sentences // 100),
             "test": max(1, args.sentences // 100)}
    stamp = args.work / "sizes.json"
    if not stamp.is_file() or json.loads(stamp.read_text()) != sizes:  # the files of an earlier run are reused
        for seed, (split, count) in enumerate(sizes.items()):
            write_conll(args.work / f"{split}.txt", count, seed)
        stamp.write_text(json.dumps(sizes))
    baseline, read = measure(args.work, read=False), measure(args.work, read=True)
    encoded_mb = read["encoded_bytes"] / 2**20
    ratio = (read["peak_rss_mb"] - baseline["peak_rss_mb"]) / encoded_mb
    report = {**read, "train_file_mb": (args.work / "train.txt").stat().st_size / 2**20,
              "baseline_rss_mb": baseline["peak_rss_mb"], "encoded_mb": encoded_mb,
              "peak_minus_baseline_over_encoded": ratio, "load_average": os.getloadavg()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
