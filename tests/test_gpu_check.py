"""benchmarks/gpu_check.py: its dry run passes every step on tiny data; failures and hangs are recorded, not fatal."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, write_conll
from rnnlab.cells.discovery import cell_names
from test_lm import PTB_LIKE, write_ptb

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)  # registered: dataclasses look it up
spec.loader.exec_module(gpu_check)


@pytest.mark.slow  # about a minute: six runs of train.py and predict.py, one of them spawning a DDP worker
def test_dry_run_passes_every_step(tmp_path: Path) -> None:
    data = write_conll(tmp_path / "data")
    # Enough text for the recipe's 20 columns of 35-word windows: 3 training, 6 evaluation windows.
    write_ptb(data, PTB_LIKE * 100)
    out = tmp_path / "out"
    env = {**os.environ, "RNNLAB_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)], env=env,
                            capture_output=True, text=True, timeout=300)
    summary = (out / "summary.md").read_text()
    assert result.returncode == 0, summary
    assert result.stdout.endswith(summary)
    rows = [line for line in summary.splitlines() if line.startswith("| ") and " | pass | " in line]
    assert [row.split(" | ")[0] for row in rows] == [f"| {name}" for name, _ in gpu_check.STEPS]
    assert "all 7 steps passed" in summary
    for figure in (f"{2 + len(cell_names())} timings; largest × nn.LSTM: ", "test F1 ", "2 steps in ", "5 sentences tagged, 39 words; "
                   "forward saw only cpu", "backend gloo, test F1 ", "time per epoch ",
                   "min per WikiText-103 epoch of 3,225,845 steps"):  # 103,227,021 tokens / (4 x 8), tiny windows
        assert figure in summary
    assert summary.count("| tagger 32×40×100→256 bi |") == 2 + len(cell_names())  # the benchmark table, every model


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    def fails(check) -> str:
        raise gpu_check.StepFailed("exit status 1: boom")

    def missing_metric(check) -> str:
        return {}["test/f1"]

    steps = [("1 cells", lambda check: "| table |"), ("2 fails", fails), ("3 no metric", missing_metric),
             ("4 runs", lambda check: "fine")]
    monkeypatch.setattr(gpu_check, "STEPS", steps)
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--dry-run", "--out", str(tmp_path)])
    assert gpu_check.main() == 1
    summary = capsys.readouterr().out
    assert "| 2 fails | FAIL | " in summary and "| exit status 1: boom |" in summary
    assert "| 3 no metric | FAIL | " in summary and "| KeyError: 'test/f1' |" in summary
    assert "| 4 runs | pass | " in summary and "| fine |" in summary
    assert "2 of 4 steps failed: 2 fails, 3 no metric" in summary


def test_an_earlier_run_s_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "summary.md").write_text("earlier\n")
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--dry-run", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        gpu_check.main()
    assert f"--out {tmp_path} is not empty; give a new or empty folder" in capsys.readouterr().err


def test_a_step_past_its_time_is_killed_with_the_processes_it_started(tmp_path: Path) -> None:
    check = gpu_check.Check(tmp_path, tmp_path, dry_run=True, deadline=float("inf"))
    hang = "import subprocess, time; print(subprocess.Popen(['sleep', '60']).pid, flush=True); time.sleep(60)"
    with pytest.raises(gpu_check.StepFailed, match="killed after 5 s"):
        check.run("hang", [sys.executable, "-c", hang], limit_s=5)
    child = (tmp_path / "logs" / "hang.log").read_text().split()[0]
    for _ in range(50):  # SIGKILL was sent to it too; its exit may take a moment
        try:
            if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":  # dead, not yet reaped
                return
        except FileNotFoundError:  # gone
            return
        time.sleep(0.1)
    pytest.fail(f"the step's child process {child} still runs")
