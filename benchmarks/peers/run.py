"""rnnlab side by side with a peer framework, on the same data and vectors, both started at the same time with one
thread each. Runs in rnnlab's venv; the peer runs in its own (``benchmarks/peers/install.sh flair`` or ``eole``
first).

    RNNLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/peers/run.py flair-ner  --work /tmp/peers
    RNNLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/peers/run.py flair-upos --work /tmp/peers
    RNNLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/peers/run.py eole-mt    --work /tmp/peers
    .venv/bin/python benchmarks/peers/run.py report   # tables and plot again from benchmarks/peers/results/*.json

Each run writes ``benchmarks/peers/results/<peer>-<task>-seed<S>.{json,md}`` (figures only, no data) and the plot
``docs/figures/peers.png`` over every results file. Everything else (the data rewritten as two columns, the
vectors, the models, the logs) goes under ``--work``, outside the repository: CoNLL-2003 may not be redistributed.

What is measured (docs/peers.md says it in words):
- each system's training is one process, launched at the same instant; the end of every epoch (after its dev
  evaluation and checkpoint) is a wall-clock time since that launch: rnnlab's every-epoch checkpoint's mtime,
  Flair's after-evaluation hook, the moment eole's checkpoint folder appears. Epoch 1 thus includes start-up
  (imports, reading data and vectors; eole's vocabulary building).
- dev score per epoch: each system's own (rnnlab's CSV log, Flair's dev evaluation, eole's validation BLEU).
- test score per epoch: every epoch's saved model predicts the test sentences after training; all predictions
  are scored here by one scorer (entity F1 with conlleval's rules; token accuracy for UPOS; sacrebleu's BLEU of
  detokenised translations against the raw references). The time of this is not training time.
- inference sentences/s: test sentences / seconds of the prediction pass, model loaded and sentences read first.
- peak RSS: ``ru_maxrss`` of each training process (``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import common  # noqa: E402

RESULTS = HERE / "results"
FIGURE = ROOT / "docs" / "figures" / "peers.png"
PEER_VENV = HERE / ".venvs"

TASKS = {
    "ner": dict(experiment="ner_conll_glove", metric="val/f1", subdir="conll2003",
                files={"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}, reader="conll"),
    "upos": dict(experiment="pos_ewt_glove", metric="val/acc", subdir="ud_english_ewt",
                 files={"train": "en_ewt-ud-train.conllu.gz", "dev": "en_ewt-ud-dev.conllu.gz",
                        "test": "en_ewt-ud-test.conllu.gz"}, reader="conllu"),
    # val/bleu is logged in points, F1 and accuracy as fractions
    "mt": dict(experiment="mt_multi30k_attention", metric="val/bleu", scale=1.0, subdir="multi30k",
               files={"train": "train", "dev": "val", "test": "test_2016_flickr"}, reader="translation"),
}
# Each peer's script (run in its venv) and the tasks it runs.
PEERS = {"flair": dict(script=HERE / "flair" / "run_flair.py", tasks=("ner", "upos")),
         "eole": dict(script=HERE / "eole" / "run_eole.py", tasks=("mt",))}


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def prepare_data(task: str, data_dir: Path, work: Path) -> Path:
    """The task's splits as read by rnnlab's readers, written as ``token<TAB>tag`` files (NER as IOB2), or for
    translation as line-aligned raw and tokenised files (``common.write_translation``)."""
    from rnnlab.data.readers import read_conll, read_conllu

    spec = TASKS[task]
    out = work / "data" / task
    out.mkdir(parents=True, exist_ok=True)
    if spec["reader"] == "translation":
        from rnnlab.data.translation import TranslationDataModule

        data = TranslationDataModule(task, spec["subdir"], {"train": spec["files"]["train"],
                                     "validation": spec["files"]["dev"], "test": spec["files"]["test"]},
                                     suffix=".gz", data_dir=str(data_dir))
        splits = data.read_splits()
        common.write_translation(out, {"train": splits["train"], "dev": splits["validation"],
                                       "test": splits["test"]}, data.source_lang, data.target_lang)
        return out
    for split, name in spec["files"].items():
        path = data_dir / spec["subdir"] / name
        if not path.is_file():
            raise SystemExit(f"{path} not found; set RNNLAB_DATA_DIR (or --data) to the folder holding "
                             f"{spec['subdir']}/")
        if spec["reader"] == "conll":
            sentences = ({"tokens": s["tokens"], "tags": common.iob2(s["tags"])}
                         for s in read_conll(path, token_column=0, tag_column=3))
        else:
            sentences = read_conllu(path)
        common.write_columns(out / f"{split}.tsv", sentences)
    return out


def prepare_vectors(work: Path, peer_python: Path) -> Path:
    """rnnlab's ``glove-6b-50d`` rows, exported and converted in the peer's venv to a gensim KeyedVectors file."""
    out = work / "vectors" / "glove-6b-50d.gensim"
    if out.is_file():
        return out
    import numpy as np
    from rnnlab.data.pretrained import REGISTRY

    source = REGISTRY["glove-6b-50d"]
    words = source.words("glove-6b-50d")
    matrix = np.load(source.root("glove-6b-50d") / source.matrix, mmap_mode="r")
    export = common.export_vectors(words, matrix, work / "vectors" / "glove-6b-50d")
    subprocess.run([str(peer_python), str(HERE / "flair" / "convert_vectors.py"), str(export), str(out)], check=True)
    return out


class Job(threading.Thread):
    """One system: its training process (timed from ``start``; peak RSS by wait4), then its predict process."""

    def __init__(self, name: str, train: list[str], predict: list[str], env: dict, log: Path, start_event,
                 after_train=None):
        super().__init__(name=name)
        self.train_cmd, self.predict_cmd, self.env, self.log = train, predict, env, log
        self.start_event, self.after_train = start_event, after_train
        self.record: dict = {}

    def run(self) -> None:
        self.start_event.wait()
        with open(self.log, "w") as log:
            launched = time.time()
            process = subprocess.Popen(self.train_cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=ROOT)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            ended = time.time()
            self.record.update(launched=launched, train_end=ended, returncode=process.returncode,
                               peak_rss_kib=usage.ru_maxrss, load_train_end=load_avg(), train_end_utc=now())
            if self.after_train:
                self.after_train(self.record)
            log.write(f"\n# predict: {' '.join(self.predict_cmd)}\n")
            log.flush()
            self.record["predict_returncode"] = subprocess.run(self.predict_cmd, env=self.env, stdout=log,
                                                               stderr=subprocess.STDOUT, cwd=ROOT).returncode


def smoke_subset(columns: Path, task: str, limit: int) -> tuple[Path, list[str]]:
    """A smoke test's data: the first ``limit`` sentences of each split, read by both systems from the same files;
    the folder and rnnlab's data overrides that read it."""
    small = columns.parent / f"{task}-first{limit}"
    small.mkdir(exist_ok=True)
    if TASKS[task]["reader"] == "translation":
        for path in [*columns.glob("*.*"), *(columns / "raw").glob("*.*")]:
            target = small / path.relative_to(columns)
            target.parent.mkdir(exist_ok=True)
            common.write_lines(target, common.read_lines(path)[:limit])
        return small, translation_overrides(small)
    train = common.read_columns(columns / "train.tsv")[:limit]
    seen = {tag for sentence in train for tag in sentence["tags"]}
    common.write_columns(small / "train.tsv", train)
    for split in ("dev", "test"):  # only sentences whose tags the training sentences hold (Flair's tag
        # dictionary is made from the training split)
        kept = [s for s in common.read_columns(columns / f"{split}.tsv") if set(s["tags"]) <= seen]
        common.write_columns(small / f"{split}.tsv", kept[:limit])
    return small, [f"paths.data_dir={small.parent}", f"data.subdir={small.name}", "data.format=conll",
                   "data.files.train=train.tsv", "data.files.validation=dev.tsv", "data.files.test=test.tsv",
                   "++data.token_column=0", "data.tag_column=1", "++data.delimiter=tab"]


def translation_overrides(folder: Path) -> list[str]:
    """rnnlab's data overrides that read the raw pairs ``prepare_data`` wrote under ``folder/raw``."""
    return [f"paths.data_dir={folder}", "data.subdir=raw", "data.suffix=''", "data.files.train=train",
            "data.files.validation=dev", "data.files.test=test"]


def wait_for(jobs: dict, result: dict) -> None:
    """Until every job has ended; notes in ``result`` which system ended training first, and the load then."""
    first_end = None
    while any(job.is_alive() for job in jobs.values()):
        time.sleep(5)
        ended = [job for job in jobs.values() if "train_end" in job.record]
        if ended and first_end is None:
            first_end = ended[0].name
            result["load_first_end"] = ended[0].record["load_train_end"]
            result["first_to_end"] = first_end
            print(f"{first_end} ended training at {now()}, load {result['load_first_end']}", flush=True)


def side_by_side(args) -> dict:
    peer, task = args.command.split("-")
    translation = TASKS[task]["reader"] == "translation"
    data_dir = Path(args.data or os.environ.get("RNNLAB_DATA_DIR") or "")
    work = Path(args.work).resolve()
    tag = f"{peer}-{task}-seed{args.seed}" + (f"-first{args.limit}" if args.limit else "")
    run_dir = work / tag
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    peer_python = PEER_VENV / peer / "bin" / "python"
    if not peer_python.is_file():
        raise SystemExit(f"{peer_python} not found; run benchmarks/peers/install.sh {peer} first")
    columns = prepare_data(task, data_dir, work)
    spec = TASKS[task]
    # both systems read the prepared files: the same sentences (rnnlab its raw copy when translating)
    data_overrides = translation_overrides(columns) if translation else [f"paths.data_dir={data_dir.resolve()}"]
    if args.limit:
        columns, data_overrides = smoke_subset(columns, task, args.limit)

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    rnnlab_dir = run_dir / "rnnlab"
    rnnlab_train = [sys.executable, "train.py", f"experiment={spec['experiment']}", f"seed={args.seed}",
                    f"trainer.max_epochs={args.rnnlab_epochs}", *data_overrides,
                    f"hydra.run.dir={rnnlab_dir}",
                    "+callbacks.every_epoch._target_=lightning.pytorch.callbacks.ModelCheckpoint",
                    f"+callbacks.every_epoch.dirpath={rnnlab_dir / 'checkpoints' / 'epochs'}",
                    "+callbacks.every_epoch.filename='{epoch:03d}'",
                    "+callbacks.every_epoch.save_top_k=-1", "+callbacks.every_epoch.monitor=null",
                    "+callbacks.every_epoch.mode=max",  # only to tell its state key from last_checkpoint's
                    "+callbacks.every_epoch.every_n_epochs=1", "+callbacks.every_epoch.enable_version_counter=false",
                    *args.rnnlab_override]
    test_input = ["--test", str(columns / "raw" / "test.de"), "--lines"] if translation else \
        ["--test", str(columns / "test.tsv")]
    rnnlab_predict = [sys.executable, str(HERE / "rnnlab_predict.py"), "--run", str(rnnlab_dir), *test_input,
                      "--out", str(rnnlab_dir / "predictions")]
    peer_dir = run_dir / peer
    script = str(PEERS[peer]["script"])
    peer_extra = [] if translation else ["--vectors", str(prepare_vectors(work, peer_python))]
    if args.peer_max_minutes:
        peer_extra += ["--max-minutes", str(args.peer_max_minutes)]
    peer_train = [str(peer_python), script, "train", "--task", task, "--data", str(columns), *peer_extra,
                  "--out", str(peer_dir), "--epochs", str(args.peer_epochs), "--seed", str(args.seed),
                  *args.peer_option]
    peer_predict = [str(peer_python), script, "predict", "--task", task, "--data", str(columns),
                    "--out", str(peer_dir)]

    def keep_rnnlab_times(record: dict) -> None:  # before the predict step removes the checkpoints
        record["epoch_end_abs"] = {str(e): p.stat().st_mtime for e, p in
                                   common.rnnlab_checkpoints(rnnlab_dir / "checkpoints" / "epochs").items()}

    go = threading.Event()
    jobs = {"rnnlab": Job("rnnlab", rnnlab_train, rnnlab_predict, env, run_dir / "rnnlab.log", go, keep_rnnlab_times),
            peer: Job(peer, peer_train, peer_predict, env, run_dir / f"{peer}.log", go)}
    result = {"peer": peer, "task": task, "seed": args.seed, "started": now(), "load_start": load_avg(),
              "columns": str(columns),
              "commands": {"rnnlab": rnnlab_train, peer: peer_train}, "machine": machine()}
    print(f"{tag}: started {result['started']}, load {result['load_start']}; logs in {run_dir}", flush=True)
    for job in jobs.values():
        job.start()
    go.set()
    wait_for(jobs, result)
    result["load_end"] = load_avg()
    result["ended"] = now()

    records = {name: job.record for name, job in jobs.items()}
    (run_dir / "records.json").write_text(json.dumps({"result": result, "records": records}, indent=1) + "\n")
    return finish(run_dir, limit=args.limit)


def collect(run_dir: Path, result: dict, records: dict) -> dict:
    """Each system's figures from what its processes left in ``run_dir`` and the driver's ``records``."""
    task, peer = result["task"], result["peer"]
    spec = TASKS[task]
    columns = Path(result["columns"])
    translation = spec["reader"] == "translation"
    if translation:
        gold = common.read_lines(columns / "raw" / "test.en")
        train_sentences = len(common.read_lines(columns / "train.en"))
    else:
        gold = [s["tags"] for s in common.read_columns(columns / "test.tsv")]
        train_sentences = len(common.read_columns(columns / "train.tsv"))
    systems = {}
    for name, record in records.items():
        start = record["launched"]
        if name == "rnnlab":
            ends = record.get("epoch_end_abs", {})
            metrics = run_dir / "rnnlab" / "csv" / "metrics.csv"
            dev = common.rnnlab_epochs(metrics, spec["metric"], spec.get("scale", 100.0))
            folder = run_dir / "rnnlab" / "predictions"
            partial = common.rnnlab_partial_epochs(metrics, spec["metric"])
        else:
            epochs_file = run_dir / peer / "epochs.json"
            if not epochs_file.is_file():
                print(f"{peer} recorded no epoch (exit status {record.get('returncode')}); see {run_dir / peer}.log")
            rows = json.loads(epochs_file.read_text()) if epochs_file.is_file() else {}
            ends = {e: row["end"] for e, row in rows.items()}
            dev = {int(e): row["dev"] for e, row in rows.items()}
            folder = run_dir / peer
            partial = {}  # the peer's budget ends training between epochs
        best = max(dev, key=lambda e: (dev[e], -e)) if dev else None
        test = {}
        for epoch in ends:
            path = folder / f"pred_epoch_{epoch}.txt"
            if path.is_file():
                test[str(epoch)] = common.score(task, gold, predictions(path, task, name))
        inference = json.loads((folder / "inference.json").read_text()) if (folder / "inference.json").is_file() \
            else {"seconds": {}, "sentences": len(gold)}
        systems[name] = {
            "epoch_end_s": {str(e): t - start for e, t in sorted(ends.items(), key=lambda kv: int(kv[0]))},
            "dev_by_epoch": {str(e): v for e, v in sorted(dev.items())},
            "test_by_epoch": test, "best_epoch": best, "train_sentences": train_sentences,
            "inference_sent_s": [inference["sentences"] / s for s in inference["seconds"].values()],
            "inference_sorted_sent_s": [inference["sentences"] / s
                                        for s in inference.get("seconds_sorted", {}).values()],
            "inference_batch_size": inference.get("batch_size"), "partial_epochs": partial,
            "peak_rss_kib": record.get("peak_rss_kib"), "returncode": record.get("returncode"),
            "train_process_s": record["train_end"] - start, "train_end_utc": record.get("train_end_utc"),
        }
    return systems


def predictions(path: Path, task: str, system: str) -> list:
    """A predict step's output: the tags of each sentence, or a translation each (rnnlab's detokenised by its
    predict step; the peer's tokenised, so detokenised here as rnnlab detokenises)."""
    if TASKS[task]["reader"] != "translation":
        return common.read_predictions(path)
    if system == "rnnlab":
        return common.read_lines(path)
    from sacremoses import MosesDetokenizer

    detokenizer = MosesDetokenizer("en")
    return [detokenizer.detokenize(line.split()) for line in common.read_lines(path)]


def finish(run_dir: Path, limit: int | None = None) -> dict:
    """The results of a run folder (``records.json`` and what the systems wrote) as JSON, tables and plot."""
    saved = json.loads((run_dir / "records.json").read_text())
    result = saved["result"]
    result["systems"] = collect(run_dir, result, saved["records"])
    tag = run_dir.name
    results = RESULTS if not limit else run_dir.parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"{tag}.json").write_text(json.dumps(result, indent=1) + "\n")
    (results / f"{tag}.md").write_text(common.tables(result))
    if not limit:
        report()
    print(common.tables(result))
    return result


def infer(run_dir: Path, repeats: int = 3) -> dict:
    """Inference side by side: each system's trained model (rnnlab's best-dev checkpoint; Flair's final model, as
    the budget's stop skips Flair's saving of the last epoch as best) predicts the test sentences ``repeats`` times,
    both systems started at the same instant with one thread each (so both see the same load), each with its
    predict's default batch; recorded in ``records.json`` as ``inference_side_by_side`` and in the tables."""
    saved = json.loads((run_dir / "records.json").read_text())
    result = saved["result"]
    peer, task, columns = result["peer"], result["task"], result["columns"]
    if peer != "flair":
        raise SystemExit(f"infer runs Flair's taggers again; {peer}'s and rnnlab's inference on {task} is timed by "
                         "each one's predict step, in the run's table")
    peer_python = PEER_VENV / peer / "bin" / "python"
    base = run_dir / "infer"
    if base.exists():
        shutil.rmtree(base)
    (base / "rnnlab" / "checkpoints" / "epochs").mkdir(parents=True)
    (base / peer).mkdir(parents=True)
    for copy in range(repeats):  # the same model under several epoch names: one timed pass each
        (base / "rnnlab" / "checkpoints" / "epochs" / f"epoch={copy:03d}.ckpt").symlink_to(
            run_dir / "rnnlab" / "checkpoints" / "best.ckpt")
        (base / peer / f"model_epoch_{copy + 1}.pt").symlink_to(run_dir / peer / "final-model.pt")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    commands = {"rnnlab": [sys.executable, str(HERE / "rnnlab_predict.py"), "--run", str(base / "rnnlab"), "--test",
                           f"{columns}/test.tsv", "--out", str(base / "rnnlab" / "out"), "--keep-checkpoints"],
                peer: [str(peer_python), str(HERE / "flair" / "run_flair.py"), "predict", "--task", task, "--data",
                       columns, "--out", str(base / peer)]}
    load_start = load_avg()
    processes = {name: subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=open(base / f"{name}.log", "w"),
                                        stderr=subprocess.STDOUT) for name, cmd in commands.items()}
    codes = {name: p.wait() for name, p in processes.items()}
    side = {"load_start": load_start, "load_end": load_avg(), "at": now(), "returncodes": codes}
    for name, folder in (("rnnlab", base / "rnnlab" / "out"), (peer, base / peer)):
        record = json.loads((folder / "inference.json").read_text())
        side[name] = {"batch_size": record["batch_size"],
                      "sent_s": [record["sentences"] / x for x in record["seconds"].values()],
                      "sorted_sent_s": [record["sentences"] / x for x in record.get("seconds_sorted", {}).values()]}
    saved["result"]["inference_side_by_side"] = side
    (run_dir / "records.json").write_text(json.dumps(saved, indent=1) + "\n")
    return finish(run_dir, limit=1 if "-first" in run_dir.name else None)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?")
    import torch

    return f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}"


def report(_args=None) -> None:
    results = [common.load(path) for path in sorted(RESULTS.glob("*.json"))]
    for path in sorted(RESULTS.glob("*.json")):
        path.with_suffix(".md").write_text(common.tables(common.load(path)))
    if results:
        common.plot(results, FIGURE)
        (RESULTS / "seeds.md").write_text(common.seeds_table(results))
        print(f"wrote {len(results)} tables, {RESULTS / 'seeds.md'} and {FIGURE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    runs = [f"{peer}-{task}" for peer, spec in PEERS.items() for task in spec["tasks"]]
    parser.add_argument("command", choices=[*runs, "report", "collect", "infer"])
    parser.add_argument("--run-dir", help="collect: a run folder under --work, to rebuild its results from")
    parser.add_argument("--work", default="/tmp/rnnlab-peers", help="scratch folder outside the repository")
    parser.add_argument("--data", help="data root (default: RNNLAB_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rnnlab-epochs", type=int, default=15)
    parser.add_argument("--peer-epochs", type=int, default=15)
    parser.add_argument("--peer-max-minutes", type=float, help="the peer starts no epoch that would end past this")
    parser.add_argument("--limit", type=int, help="smoke test: only the first N sentences of each split")
    parser.add_argument("--rnnlab-override", action="append", default=[], help="extra train.py override")
    parser.add_argument("--peer-option", action="append", default=[], help="extra option of the peer's train")
    args = parser.parse_args()
    if args.command == "report":
        report(args)
    elif args.command == "infer":
        infer(Path(args.run_dir))
    elif args.command == "collect":
        finish(Path(args.run_dir), limit=1 if "-first" in Path(args.run_dir).name else None)
    else:
        side_by_side(args)


if __name__ == "__main__":
    main()
