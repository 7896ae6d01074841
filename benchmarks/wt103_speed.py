"""How long an epoch of ``experiment=lm_wt103`` takes on a device, from a few timed training steps.

The recipe's model (2 x 1024 LSTM over 400-dimensional embeddings, the adaptive softmax with cut-offs
20k / 40k / 200k), optimizer, gradient clipping and precision, trained on synthetic text of its size:
WikiText-103's 267,735-entry vocabulary (267,731 words and 4 specials), each word drawn from a Zipf law (s = 1),
cut into the recipe's 64 x 70-token windows as the real stream is. No corpus is read; what is timed is the
training step, whose cost does not depend on the text. Prints one JSON line: steps/s, tokens/s and the expected
minutes per WikiText-103 epoch (103,227,021 training tokens / (batch x bptt) steps, validation not counted).

    python benchmarks/wt103_speed.py --device cuda --steps 100   # the step of benchmarks/gpu_check.py
    python benchmarks/wt103_speed.py --device cpu --tiny         # tiny sizes: checks the script, not the speed
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
WT103_TRAIN_TOKENS = 103_227_021
WT103_WORDS = 267_731  # + <pad> <unk> <bos> <eos> = the vocabulary's 267,735 entries
# Tiny sizes for a dry run: a vocabulary the cut-offs still split in four, a 16-unit model, 4 x 8 windows.
TINY = ["model.embedding_dim=8", "model.encoder.hidden_size=16", "model.adaptive_softmax.cutoffs=[50,100,400]",
        "data.batch_size=4", "data.bptt=8"]
TINY_WORDS = 500


def zipf_stream(words: int, tokens: int, vocab, seed: int = 0) -> torch.Tensor:
    """``(tokens,)`` ids of words ``w0`` .. drawn from a Zipf law (s = 1) over ``words`` words, in sentences of
    about 1 + Poisson(20) words between ``<eos>`` and ``<bos>``, as a cached stream holds them."""
    from rnnlab.data.special import BOS, EOS

    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, words + 1))
    first = vocab["w0"]  # the words' ids follow the specials, in rank order
    stream = first + np.searchsorted(cdf, rng.random(tokens) * cdf[-1])
    ends = np.cumsum(1 + rng.poisson(20, tokens // 10))
    ends = ends[ends < tokens - 1]
    stream[ends], stream[ends + 1] = vocab[EOS], vocab[BOS]
    stream[0] = vocab[BOS]
    return torch.from_numpy(stream.astype(np.int32))


class Synthetic:
    """What ``build_module`` needs of a DataModule: the vocabulary, ``<pad> <unk> <bos> <eos>`` then the words."""

    def __init__(self, words: int):
        from rnnlab.data.lm import SPECIALS
        from rnnlab.data.vocab import Vocabulary

        self.vocab = Vocabulary([*SPECIALS, *(f"w{rank}" for rank in range(words))])

    def model_kwargs(self) -> dict:
        return {"vocab": self.vocab.to_dict()}


def measure(device: str, steps: int, warmup: int, tiny: bool) -> dict:
    """Trains the recipe's model for ``warmup`` + ``steps`` steps on ``device``; the timed steps' speed."""
    import lightning as L
    from hydra import compose, initialize_config_dir
    from torch.utils.data import DataLoader

    from rnnlab.data.lm import BPTTWindows
    from rnnlab.data.special import BOS
    from rnnlab.run.pipeline import build_module
    from rnnlab.run.precision import choose_precision

    trainer_preset = "gpu" if device == "cuda" else "cpu"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=lm_wt103", f"trainer={trainer_preset}", "paths.output_dir=/tmp",
                                          *(TINY if tiny else [])])
    batch, bptt = cfg.data.batch_size, cfg.data.bptt
    data = Synthetic(TINY_WORDS if tiny else WT103_WORDS)
    L.seed_everything(0, verbose=False)
    module = build_module(cfg, data)
    stream = zipf_stream(len(data.vocab) - 4, batch * bptt * (warmup + steps + 1), data.vocab)
    windows = BPTTWindows(stream, batch, range(batch), bptt, data.vocab.pad_id, data.vocab[BOS])
    marks: list[float] = []

    class StepClock(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            if device == "cuda":
                torch.cuda.synchronize()  # the previous step's kernels have run
            marks.append(time.perf_counter())

    precision = choose_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, max_steps=warmup + steps,
                        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, precision=precision,
                        gradient_clip_val=cfg.trainer.gradient_clip_val, callbacks=[StepClock()])
    trainer.fit(module, train_dataloaders=DataLoader(windows, batch_size=None))
    if device == "cuda":
        torch.cuda.synchronize()
    marks.append(time.perf_counter())
    steps_per_s = steps / (marks[-1] - marks[warmup])
    epoch_steps = -(-WT103_TRAIN_TOKENS // (batch * bptt))
    return {"steps_per_s": steps_per_s, "tokens_per_s": steps_per_s * batch * bptt, "batch": batch, "bptt": bptt,
            "vocab": len(data.vocab), "precision": str(trainer.precision), "steps": steps, "epoch_steps": epoch_steps,
            "epoch_minutes": epoch_steps / steps_per_s / 60,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and vocabulary (a dry run)")
    args = parser.parse_args()
    print(json.dumps(measure(args.device, args.steps, args.warmup, args.tiny)))


if __name__ == "__main__":
    main()
