"""How a trained recall model uses its gates: at the key, and on the distractors after it.

    python -m rnnlab.diagnostics.recall_gates RUN/checkpoints/best.ckpt [RUN2/...] --distance 100

For each checkpoint of the lab's key-recall task (``experiment=long_range``) with a gated first layer, steps the
cell through fresh recall sequences and prints one markdown row: the test accuracy (the run's ``metrics.json``),
the mean input and forget gates on the distractors, how many units keep more than 10% of what they wrote at the
key to the end (retention: the product of their forget gates over the distractors), and each unit's key ratio:
what it wrote at the key, ``|i g| = |c(t) - f(t) c(t-1)|``, times its retention, over the same for every
distractor step, summed. A unit with a ratio well above 1 is a latch: it takes the key in and shuts out the
distractors; the table gives the best unit's ratio and how many exceed 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rnnlab.data.synthetic.recall import generate_recall
from rnnlab.diagnostics.memory_heatmap import gate_trace
from rnnlab.tasks.synthetic import SyntheticModule

COLUMNS = ("run", "test acc", "input gate on distractors", "forget gate on distractors", "units retaining > 10%",
           "latch units (key ratio > 1)", "best key ratio")


def recall_gate_row(ckpt_path: Path, distance: int, sequences: int) -> list[str]:
    """One table row for the checkpoint: gate means over ``sequences`` recall sequences at ``distance``."""
    module = SyntheticModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    if module.hparams.task != "recall":
        raise ValueError(f"{ckpt_path} was trained on task={module.hparams.task}; recall_gates reads recall runs")
    # the run's own key and symbol counts: num_outputs keys, ids 1..vocab_size - 1 (0 is padding)
    data = generate_recall(np.random.default_rng(0), sequences, distance, module.hparams.num_outputs,
                           module.hparams.vocab_size - 1)
    traces = [gate_trace(module, " ".join(map(str, row.tolist())))[1] for row in data["inputs"]]
    input_gate, forget_gate, memory = (np.stack([trace[name] for trace in traces])  # each (N, T+1, H)
                                       for name in ("input", "forget", "c"))
    previous = np.concatenate([np.zeros_like(memory[:, :1]), memory[:, :-1]], axis=1)
    write = np.abs(memory - forget_gate * previous)  # |i g|, (N, T+1, H)
    # survival[:, t]: the product of the forget gates after step t, so what step t wrote that is left at the end
    later = np.concatenate([forget_gate[:, 1:], np.ones_like(forget_gate[:, :1])], axis=1)
    survival = np.flip(np.cumprod(np.flip(later, axis=1), axis=1), axis=1)  # (N, T+1, H)
    kept = write * survival
    key_ratio = kept[:, 0].mean(axis=0) / np.maximum(kept[:, 1:].sum(axis=1).mean(axis=0), 1e-12)  # (H,)
    metrics = ckpt_path.parent.parent / "metrics.json"
    accuracy = json.loads(metrics.read_text()).get("test/acc") if metrics.exists() else None
    return [str(ckpt_path.parent.parent), "?" if accuracy is None else f"{accuracy:.3f}",
            f"{input_gate[:, 1:].mean():.3f}", f"{forget_gate[:, 1:].mean():.3f}",
            str(int((survival[:, 0].mean(axis=0) > 0.1).sum())), str(int((key_ratio > 1).sum())),
            f"{key_ratio.max():.3g}"]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--distance", type=int, required=True, help="distractors after the key (data.distance)")
    parser.add_argument("--sequences", type=int, default=64)
    args = parser.parse_args(argv)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(recall_gate_row(path, args.distance, args.sequences)) + " |"
              for path in args.checkpoints]
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
