"""rnnlab's first run on a CUDA GPU, as one script: seven steps, then a summary of what passed and the key figures.

    benchmarks/gpu_check.sh [--out DIR]             # on one GPU: under 12 minutes on an H200
    benchmarks/gpu_check.sh --dry-run [--out DIR]   # the same steps on the CPU, a couple of batches each

Steps (each timed; a failing step is recorded and the next one runs):

1. ``benchmarks/cells.py``: every cell against ``nn.LSTM`` (cuDNN), forward + backward, three shapes;
2. one epoch of the default NER recipe (``task=ner model=bilstm``); its test F1;
3. 300 steps of ``experiment=lm_ptb_tied``; steps per second, perplexity and the precision the log reports;
4. ``predict.py`` with the NER checkpoint of step 2 on a few sentences; every module's forward must see its
   inputs and weights on the device;
5. a 1-process ``trainer=ddp`` run (ddp_spawn) of the NER recipe on a few hundred batches;
6. one epoch of ``experiment=lm_ptb_awd`` (AWD-LSTM, 3 x 1150 units); its time per epoch, to size the
   recipe's ``trainer.max_time``;
7. 100 training steps of ``experiment=lm_wt103``'s model over its 267 k-word vocabulary, on synthetic text
   (``benchmarks/wt103_speed.py``); steps/s, tokens/s and the expected time per WikiText-103 epoch.

Data: ``RNNLAB_DATA_DIR`` (default ``../shared/data`` from the repository root), holding ``conll2003/`` and
``ptb_mikolov/``. Outputs (logs, run folders, ``summary.md``) go to ``--out``, else ``GPU_CHECK_OUT``, else a new
temporary folder. Exit status: 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from rnnlab.cells.discovery import cell_names

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 690  # all steps together: the script ends within 12 minutes, start-up and summary included

# A couple of batches of every loop: the dry run tests the script, not the models.
# ++: the trainer presets leave these keys unset.
TINY = ["++trainer.limit_train_batches=2", "++trainer.limit_val_batches=2", "++trainer.limit_test_batches=2"]

SENTENCES = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "BRUSSELS 1996-08-22",
             "The European Commission said on Thursday it disagreed with German advice .",
             "Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said ."]

# predict.py as its command line runs it, with a hook on every module's forward that records the devices of
# the tensors it receives and of its own weights: device= must bring both, not only the weights, to the device.
PREDICT_WITH_DEVICE_PROBE = """
import atexit, runpy, sys, torch
from lightning_utilities.core.apply_func import apply_to_collection
seen = set()
def record(module, args):
    apply_to_collection(args, torch.Tensor, lambda tensor: seen.add(tensor.device.type))
    seen.update(parameter.device.type for parameter in module.parameters(recurse=False))
torch.nn.modules.module.register_module_forward_pre_hook(record)
atexit.register(lambda: print("devices seen by forward:", *sorted(seen), file=sys.stderr))
sys.argv[0] = "predict.py"
runpy.run_path("predict.py", run_name="__main__")
"""


class StepFailed(Exception):
    """A step's command failed, or its output lacks what the step checks."""


@dataclass
class Result:
    """One step's outcome for the summary."""

    name: str
    passed: bool
    seconds: float
    figure: str


@dataclass
class Check:
    """Where and how the steps run."""

    out: Path
    data_dir: Path
    dry_run: bool
    deadline: float

    @property
    def device(self) -> str:
        return "cpu" if self.dry_run else "cuda"

    def limits(self, gpu: list[str]) -> list[str]:
        """The GPU run's trainer limits, or :data:`TINY` in a dry run."""
        return TINY if self.dry_run else gpu

    def run(self, name: str, command: list[str], limit_s: float) -> str:
        """Runs ``command`` from the repository root, its output into ``logs/<name>.log``; returns that output.

        Raises:
            StepFailed: non-zero exit, or still running after ``limit_s`` or at the deadline (then the command
                and every process it started, such as DDP workers, are killed).
        """
        timeout = min(limit_s, self.deadline - time.monotonic())
        if timeout < 5:
            raise StepFailed("not run: the time budget is spent")
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "RNNLAB_DATA_DIR": str(self.data_dir), "HYDRA_FULL_ERROR": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
        with open(log, "w") as handle:
            # A session of its own, so a timeout can kill the spawned workers too.
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            try:
                status = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise StepFailed(f"killed after {timeout:.0f} s; see {log}") from None
        output = log.read_text(errors="replace")
        if status != 0:
            last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
            raise StepFailed(f"exit status {status}: {last.strip()[:200]} (see {log})")
        return output

    def train(self, name: str, overrides: list[str], limit_s: float) -> tuple[dict, str]:
        """``train.py`` with ``overrides`` in ``runs/<name>``; returns its ``metrics.json`` and its output."""
        output = self.run(name, [sys.executable, "train.py", *overrides, f"hydra.run.dir={self.run_dir(name)}"],
                          limit_s)
        return json.loads((self.run_dir(name) / "metrics.json").read_text()), output

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name


def cells(check: Check) -> str:
    """Step 1: the cell benchmark, its table written to ``cells.md``; the figure is the largest ratio to
    ``nn.LSTM``."""
    sizes = ["--shapes", "tagger", "--repeats", "1", "--warmup", "0"] if check.dry_run else \
        ["--repeats", "20", "--warmup", "5"]
    output = check.run("cells", [sys.executable, "benchmarks/cells.py", "--device", check.device, *sizes], 120)
    rows = [line for line in output.splitlines() if line.startswith("| ") and not line.startswith("| shape")]
    expected = (1 if check.dry_run else 3) * (2 + len(cell_names()))  # shapes × (nn.LSTM, nn.RNN, every cell)
    if len(rows) != expected:
        raise StepFailed(f"{len(rows)} table rows instead of {expected}")
    header = next(line for line in output.splitlines() if line.startswith("CPU:"))
    (check.out / "cells.md").write_text("\n".join([header, "", "| shape | model | ms | × nn.LSTM |",
                                                   "|---|---|---:|---:|", *rows]) + "\n")
    shape, model, _, ratio = max((row.strip("| ").split(" | ") for row in rows), key=lambda row: float(row[3]))
    return f"{len(rows)} timings; largest × nn.LSTM: {ratio} ({model}, {shape.split()[0]} shape); table below"


def ner(check: Check) -> str:
    """Step 2: one epoch of the default NER recipe."""
    metrics, _ = check.train("ner", ["task=ner", "model=bilstm", f"trainer={'cpu' if check.dry_run else 'gpu'}",
                                     "trainer.max_epochs=1", *check.limits([])], 200)
    return (f"test F1 {metrics['test/f1']:.4f}, val F1 {metrics['val/f1']:.4f}, "
            f"fit {metrics['train_seconds']:.1f} s")


def lm(check: Check) -> str:
    """Step 3: 300 training steps of the tied PTB language model, validated at 150 and 300."""
    metrics, output = check.train("lm", ["experiment=lm_ptb_tied", f"trainer={'cpu' if check.dry_run else 'gpu'}",
                                         "trainer.max_epochs=1",
                                         *check.limits(["++trainer.limit_train_batches=300",
                                                        "++trainer.limit_val_batches=50"])], 150)
    with open(check.run_dir("lm") / "csv" / "metrics.csv") as handle:
        steps = max(int(row["step"]) for row in csv.DictReader(handle))  # the test row's: the training steps
    # The precision is the recipe's choice (trainer.precision), reported as the run's log states it.
    precision = next((line.split("] - ", 1)[-1].strip() for line in output.splitlines()
                      if "precision" in line.lower()), "no precision line in the log")  # without the log prefix
    return (f"{steps} steps in {metrics['train_seconds']:.1f} s ({steps / metrics['train_seconds']:.1f} steps/s, "
            f"validation included), val ppl {metrics['val/ppl']:.1f}, test ppl {metrics['test/ppl']:.1f}; "
            f"{precision}")


def predict(check: Check) -> str:
    """Step 4: predictions on :data:`SENTENCES` of step 2's best checkpoint (the tested one), on the device."""
    checkpoint = check.run_dir("ner") / "checkpoints" / "best.ckpt"
    if not checkpoint.exists():
        raise StepFailed(f"no NER checkpoint at {checkpoint} (step 2 failed)")
    text = check.out / "predict_input.txt"
    text.write_text("".join(line + "\n" for line in SENTENCES))
    predictions = check.out / "predictions.tsv"
    output = check.run("predict", [sys.executable, "-c", PREDICT_WITH_DEVICE_PROBE, f"ckpt_path={checkpoint}",
                                   f"input={text}", f"output={predictions}", f"device={check.device}"], 60)
    blocks = [block.splitlines() for block in predictions.read_text().strip("\n").split("\n\n")]
    if [len(block) for block in blocks] != [len(line.split()) for line in SENTENCES]:
        raise StepFailed(f"{len(blocks)} tagged sentences in {predictions}, not one per input sentence with a tag "
                         "per word")
    seen = re.search(r"^devices seen by forward: (.*)$", output, re.MULTILINE)
    if seen is None or seen.group(1).split() != [check.device]:
        raise StepFailed(f"forward saw tensors on {seen.group(1) if seen else 'no device'}, not {check.device} "
                         f"alone")
    return f"{len(blocks)} sentences tagged, {sum(map(len, blocks))} words; forward saw only {check.device}"


def ddp(check: Check) -> str:
    """Step 5: the NER recipe under ddp_spawn with one process."""
    metrics, output = check.train("ddp", ["task=ner", "model=bilstm",
                                          f"trainer={'ddp_cpu' if check.dry_run else 'ddp'}", "trainer.devices=1",
                                          "trainer.max_epochs=1",
                                          *check.limits(["++trainer.limit_train_batches=200"])], 180)
    backend = re.search(r"distributed_backend=(\w+)", output)
    if backend is None:
        raise StepFailed("no process group started: the log lacks Lightning's distributed_backend line")
    return f"backend {backend.group(1)}, test F1 {metrics['test/f1']:.4f}, fit {metrics['train_seconds']:.1f} s"


def awd(check: Check) -> str:
    """Step 6: one epoch of AWD-LSTM on PTB: the time per epoch (``train_seconds``, its validation included)."""
    metrics, _ = check.train("awd", ["experiment=lm_ptb_awd", f"trainer={'cpu' if check.dry_run else 'gpu'}",
                                     "trainer.max_epochs=1", *check.limits([])], 240)
    with open(check.run_dir("awd") / "csv" / "metrics.csv") as handle:
        steps = max(int(row["step"]) for row in csv.DictReader(handle))  # the test row's: the training steps
    return (f"time per epoch {metrics['train_seconds']:.1f} s ({steps} steps, validation included), "
            f"val ppl {metrics['val/ppl']:.1f}, test ppl {metrics['test/ppl']:.1f}")


def wt103(check: Check) -> str:
    """Step 7: the WikiText-103 recipe's training speed on the device, and the epoch time it implies."""
    sizes = ["--steps", "2", "--warmup", "1", "--tiny"] if check.dry_run else ["--steps", "100", "--warmup", "5"]
    output = check.run("wt103", [sys.executable, "benchmarks/wt103_speed.py", "--device", check.device, *sizes], 150)
    speed = json.loads(output.strip().splitlines()[-1])
    memory = f", peak GPU memory {speed['peak_gpu_mb']:,.0f} MB" if speed["peak_gpu_mb"] is not None else ""
    return (f"{speed['steps_per_s']:.2f} steps/s, {speed['tokens_per_s']:,.0f} tokens/s ({speed['batch']} x "
            f"{speed['bptt']} tokens, {speed['vocab']:,} words, {speed['precision']}{memory}): expected "
            f"{speed['epoch_minutes']:,.1f} min per WikiText-103 epoch of {speed['epoch_steps']:,} steps")


STEPS: list[tuple[str, Callable[[Check], str]]] = [("1 cells", cells), ("2 ner", ner), ("3 lm", lm),
                                                   ("4 predict", predict), ("5 ddp", ddp), ("6 awd", awd),
                                                   ("7 wt103", wt103)]


def machine_info() -> str:
    """GPU (nvidia-smi), torch, CUDA and cuDNN versions, and whether torch sees CUDA and bf16 on it."""
    smi = "nvidia-smi not found"
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True)
        smi = query.stdout.strip().replace("\n", "; ") or query.stderr.strip()
    cuda = torch.cuda.is_available()
    return (f"GPU: {smi} | torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}, cuda available: {cuda}, bf16: "
            f"{cuda and torch.cuda.is_bf16_supported()} | python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs")


def summary(check: Check, machine: str, results: list[Result], seconds: float) -> str:
    """The report printed at the end: machine, one row per step, the benchmark table, the verdict."""
    failed = [result.name for result in results if not result.passed]
    lines = [f"# GPU check{' (dry run on the CPU)' if check.dry_run else ''}", "", machine,
             f"data: {check.data_dir}, outputs: {check.out}", "",
             "| step | result | s | key figure |", "|---|---|---:|---|"]
    for result in results:
        figure = " ".join(result.figure.split()).replace("|", "\\|")  # an error message must not break the table
        lines.append(f"| {result.name} | {'pass' if result.passed else 'FAIL'} | {result.seconds:.1f} | {figure} |")
    if (check.out / "cells.md").is_file():
        table = (check.out / "cells.md").read_text().rstrip()
        lines += ["", "Cell benchmark (forward + backward, median ms):", "", table]
    verdict = f"all {len(results)} steps passed" if not failed else \
        f"{len(failed)} of {len(results)} steps failed: {', '.join(failed)}"
    return "\n".join([*lines, "", f"{verdict}, in {seconds:.0f} s"]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="run every step on the CPU with tiny sizes")
    parser.add_argument("--out", default=os.environ.get("GPU_CHECK_OUT"),
                        help="output folder (default: $GPU_CHECK_OUT, else a new temporary folder)")
    args = parser.parse_args()
    started = time.monotonic()
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu_check_")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):  # an earlier run's checkpoints and tables would be taken for this run's
        parser.error(f"--out {out} is not empty; give a new or empty folder")
    data_dir = Path(os.environ.get("RNNLAB_DATA_DIR") or ROOT.parent / "shared" / "data").absolute()
    check = Check(out, data_dir, args.dry_run, started + BUDGET_S)
    machine = machine_info()
    print(machine, flush=True)
    results = []
    for name, step in STEPS:
        print(f"step {name} ...", flush=True)
        step_started = time.monotonic()
        try:
            figure, passed = step(check), True
        except StepFailed as error:
            figure, passed = str(error), False
        except Exception as error:  # a missing metric or file: recorded, and the next step still runs
            figure, passed = f"{type(error).__name__}: {error}", False
        results.append(Result(name, passed, time.monotonic() - step_started, figure))
        print(f"step {name}: {'pass' if passed else 'FAIL'}", flush=True)
    report = summary(check, machine, results, time.monotonic() - started)
    (out / "summary.md").write_text(report)
    print("\n" + report, end="")
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
