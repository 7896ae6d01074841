"""eole's side of benchmarks/peers (translation); runs in eole's own venv (benchmarks/peers/.venvs/eole).

    python run_eole.py train   --data DIR --out DIR --epochs N --seed S
    python run_eole.py predict --data DIR --out DIR

``--data`` holds what run.py wrote: ``{train,dev,test}.{de,en}``, one sentence a line, Moses-tokenised as rnnlab
tokenises (so both systems read the same tokens).

``train``: eole's RNN encoder-decoder as close to rnnlab's ``mt_multi30k_attention`` as eole's options allow: 256-d
embeddings, a 1-layer bidirectional LSTM encoder of 256 a direction, a 1-layer LSTM decoder with additive
("mlp", Bahdanau) global attention and input feeding, dropout 0.2, Adam 0.002, clipping at 1.0, batches of 64
sentence pairs, words seen fewer than 2 (source) / 3 (target) times in train mapped to unknown. eole requires the
decoder as wide as the encoder's output (512 here, where rnnlab's decoder is 256 behind a linear bridge; eole
0.6.4's bridge fails on a bidirectional encoder, so its decoder starts from the concatenated final states). An
epoch is ``ceil(pairs / 64)`` steps; at the end of each, eole validates (its greedy BLEU on dev, tokenised) and
saves ``model/step_N``; ``epochs.json`` gets each epoch's save time and dev BLEU, read from eole's log.

``predict``: each saved epoch model translates the test sources by beam search as rnnlab's test decoding does
(beam 5, GNMT's length penalty with alpha 1, at most 100 words; eole also caps an output at twice its source) into ``pred_epoch_N.txt`` (tokenised; run.py detokenises and scores both systems alike);
``inference.json`` holds the seconds of each pass as eole's own timer reports them (``-report_time``: the model
loaded before it starts).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

EOLE = str(Path(sys.executable).with_name("eole"))
BATCH = 64
SAVED = re.compile(r"Saving optimizer and weights to step_(\d+)")
DEV_BLEU = re.compile(r"validation BLEU: ([\d.]+)", re.IGNORECASE)
PRED_TIMES = (re.compile(r"Step 0 time \(s\): ([\d.]+)"),
              re.compile(r"Subsequent prediction time including all \(s\): ([\d.]+)"))


def config(data: Path, out: Path, steps_per_epoch: int, epochs: int, seed: int, hidden: int) -> dict:
    """eole's training configuration (YAML-able dict) for the Multi30k side-by-side run."""
    return {
        "save_data": str(out), "overwrite": True, "seed": seed,
        "src_vocab": str(out / "vocab.src"), "tgt_vocab": str(out / "vocab.tgt"),
        "src_words_min_frequency": 2, "tgt_words_min_frequency": 3,
        "data": {"corpus_1": {"path_src": str(data / "train.de"), "path_tgt": str(data / "train.en")},
                 "valid": {"path_src": str(data / "dev.de"), "path_tgt": str(data / "dev.en")}},
        "valid_metrics": ["BLEU"],
        "model": {"embeddings": {"word_vec_size": 256},
                  "encoder": {"encoder_type": "brnn", "rnn_type": "LSTM", "layers": 1, "hidden_size": hidden},
                  "decoder": {"decoder_type": "rnn", "rnn_type": "LSTM", "layers": 1, "hidden_size": hidden,
                              "global_attention": "mlp"},
                  "input_feed": 1},
        "training": {"model_path": str(out / "model"), "batch_size": BATCH, "batch_type": "sents",
                     "valid_batch_size": 256, "train_steps": steps_per_epoch * epochs,
                     "valid_steps": steps_per_epoch, "save_checkpoint_steps": steps_per_epoch,
                     "keep_checkpoint": -1, "optim": "adam", "learning_rate": 0.002, "max_grad_norm": 1.0,
                     "dropout": [0.2], "world_size": 1, "gpu_ranks": [], "num_workers": 0},
    }


def epochs_from_log(log: str, steps_per_epoch: int, save_times: dict[int, float]) -> dict[str, dict]:
    """Epoch (1-based, as a string) -> ``{"end": save time, "dev": eole's dev BLEU}`` from eole's training log;
    each validation's BLEU is reported before the checkpoint of the same step is saved."""
    rows, dev = {}, None
    for line in log.splitlines():
        if (found := DEV_BLEU.search(line)):
            dev = float(found.group(1))
        elif (saved := SAVED.search(line)):
            step = int(saved.group(1))
            if step in save_times:
                rows[str(step // steps_per_epoch)] = {"end": save_times[step], "dev": dev}
    return rows


def saved_steps(out: Path) -> dict[int, Path]:
    """Step -> the checkpoint folder eole saved at it (``model/step_N``), in step order."""
    return dict(sorted((int(folder.name.split("_")[1]), folder) for folder in (out / "model").glob("step_*")))


def train(args) -> None:
    import yaml

    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = sum(1 for _ in open(data / "train.de", encoding="utf-8"))
    steps = math.ceil(pairs / BATCH)
    cfg = out / "config.yaml"
    cfg.write_text(yaml.safe_dump(config(data, out, steps, args.epochs, args.seed, args.hidden), sort_keys=False))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    subprocess.run([EOLE, "build_vocab", "-config", str(cfg), "-n_sample", "-1"], check=True, env=env)
    start = time.time()
    with open(out / "train.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen([EOLE, "train", "-config", str(cfg)], env=env, stdout=log, stderr=subprocess.STDOUT)
        save_times: dict[int, float] = {}
        stopped = False
        while process.poll() is None:  # a checkpoint's folder appears when it is saved: note the time then
            time.sleep(1)
            for step, folder in saved_steps(out).items():
                if step not in save_times:
                    save_times[step] = time.time()
                    ends = [start, *sorted(save_times.values())]
                    # a time budget, as run_flair.py's: stop when one more epoch as long as the last would pass it
                    if args.max_minutes and 2 * ends[-1] - ends[-2] - start > 60 * args.max_minutes:
                        while not (folder / "vocab.json").is_file():  # written last
                            time.sleep(1)
                        process.terminate()
                        stopped = True
    rows = epochs_from_log((out / "train.log").read_text(encoding="utf-8"), steps, save_times)
    (out / "epochs.json").write_text(json.dumps(rows, indent=1))
    if process.wait() and not stopped:
        raise SystemExit(f"eole train exited with {process.returncode}; see {out / 'train.log'}")


def predict(args) -> None:
    data, out = Path(args.data), Path(args.out)
    seconds = {}
    saved = saved_steps(out)
    per_epoch = next(iter(saved), 1)  # the first save is one epoch's steps
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for step, folder in saved.items():
        epoch = step // per_epoch
        command = [EOLE, "predict", "-model_path", str(folder), "-src", str(data / "test.de"),
                   "-output", str(out / f"pred_epoch_{epoch}.txt"), "-beam_size", "5", "-length_penalty", "wu",
                   "-alpha", "1.0", "-max_length", "100", "-batch_size", str(args.batch_size), "-batch_type",
                   "sents", "-report_time"]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"eole predict failed for {folder}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        times = [float(m.group(1)) for pattern in PRED_TIMES if (m := pattern.search(result.stdout + result.stderr))]
        seconds[str(epoch)] = sum(times)
        print(f"epoch {epoch}: {seconds[str(epoch)]:.2f} s", flush=True)
        if not args.keep_models:
            shutil.rmtree(folder)
    sentences = sum(1 for _ in open(data / "test.de", encoding="utf-8"))
    (out / "inference.json").write_text(json.dumps({"sentences": sentences, "batch_size": args.batch_size,
                                                    "seconds": seconds}, indent=1))


def main() -> None:
    parser = common.peer_arguments(["mt"], epochs=10, batch_size=64, batch_help="predict's batch (sentences)")
    parser.add_argument("--hidden", type=int, default=512, help="encoder output = decoder size (eole ties them)")
    common.run_peer(parser.parse_args(), train, predict)


if __name__ == "__main__":
    main()
