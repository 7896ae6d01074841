"""rnnlab's predict step of benchmarks/peers (rnnlab's venv): each epoch checkpoint of a run predicts the test
sentences, as ``predict.py`` does (the model's own encoding and collate, batches of ``--batch-size``, 64 being
predict.py's default, shortest first within windows of ``--sort-window`` batches), writing ``pred_epoch_N.txt``
(one sentence's tags a line) and ``inference.json`` (seconds of each pass). The checkpoint is loaded and the test file read before the clock starts.
With ``--lines`` the test file holds one raw input a line (translation sources) and each prediction is one line
(a detokenised translation); a model whose predictions depend on the batch (``batch_independent`` false, as the
translation decoder's) reads the file's order only, as predict.py does.

    python benchmarks/peers/rnnlab_predict.py --run RUN_DIR --test FILE --out DIR [--lines]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True, help="the training run's folder (checkpoints/epochs/epoch=NNN.ckpt)")
    parser.add_argument("--test", required=True, help="the test sentences, as run.py wrote them (token<TAB>tag)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sort-window", type=int, default=16, help="predict.py's sort_window (1: the file's order)")
    parser.add_argument("--keep-checkpoints", action="store_true")
    parser.add_argument("--lines", action="store_true", help="the test file holds one raw input a line")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from rnnlab.cli.inference import datamodule, load_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sentences = common.read_lines(Path(args.test)) if args.lines else \
        [s["tokens"] for s in common.read_columns(Path(args.test))]
    # predict.py's order: windows of sort_window batches, each window's sentences shortest first; and, for
    # comparison, all sentences sorted by length first (as Flair's predict does). The predictions are the same.
    window = args.batch_size * args.sort_window
    as_predict = [i for start in range(0, len(sentences), window)
                  for i in sorted(range(start, min(start + window, len(sentences))), key=lambda i: len(sentences[i]))]
    by_length = sorted(range(len(sentences)), key=lambda i: len(sentences[i]), reverse=True)
    seconds, seconds_sorted = {}, {}
    for epoch, path in common.rnnlab_checkpoints(Path(args.run) / "checkpoints" / "epochs").items():
        loaded = load_checkpoint(path)
        module = loaded.module.eval()
        data = datamodule(loaded)
        collate = data.collate_fn()

        def run(order: list[int]) -> tuple[float, list]:
            predicted: list = [[] for _ in sentences]
            start = time.perf_counter()
            with torch.inference_mode():
                for first in range(0, len(order), args.batch_size):
                    chunk = order[first:first + args.batch_size]
                    examples = [module.prediction_example(sentences[i]) for i in chunk]
                    for i, tags in zip(chunk, module.predict_step(collate(data.encode(examples)))):
                        predicted[i] = tags
            return time.perf_counter() - start, predicted

        in_order = as_predict if module.batch_independent else list(range(len(sentences)))
        seconds[str(epoch)], predicted = run(in_order)
        if module.batch_independent:  # again with every sentence sorted first: the same predictions
            seconds_sorted[str(epoch)], again = run(by_length)
            if again != predicted:
                print(f"epoch {epoch}: sorted by length, {sum(a != b for a, b in zip(again, predicted))} sentences "
                      f"were tagged differently", flush=True)
        if args.lines:
            common.write_lines(out / f"pred_epoch_{epoch}.txt", predicted)
        else:
            common.write_predictions(out / f"pred_epoch_{epoch}.txt", predicted)
        print(f"epoch {epoch}: {len(sentences) / seconds[str(epoch)]:.0f} sentences/s", flush=True)
        if not args.keep_checkpoints:
            path.unlink()
    (out / "inference.json").write_text(json.dumps({"sentences": len(sentences), "batch_size": args.batch_size,
                                                    "seconds": seconds, "seconds_sorted": seconds_sorted}, indent=1))


if __name__ == "__main__":
    main()
