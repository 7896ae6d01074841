"""Precision by capability: ``trainer.precision=auto`` picks bf16-mixed only where the device runs it.

CI runs this file a second time under ``ONEDNN_MAX_CPU_ISA=AVX2`` (see ``.ci/run``), so both branches of the
choice run on every machine.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from rnnlab.errors import UserError
from rnnlab.run import precision
from rnnlab.run.precision import BF16, FP32, choose_precision, cpu_bf16_support
from test_lm import write_ptb

AVX2_ONLY = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}


def _bf16_lstm_runs() -> bool:
    """Ground truth: does a bf16 LSTM over an unpadded batch run here?"""
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(4, 4)(torch.zeros(3, 2, 4))
    except RuntimeError:
        return False
    return True


def test_cpu_check_agrees_with_the_kernel() -> None:
    """Where the check says yes, the kernel that failed on AVX2-only CPUs runs; where the kernel fails, it says no."""
    supported, why = cpu_bf16_support()
    assert why
    if supported:
        assert _bf16_lstm_runs()
    if not _bf16_lstm_runs():
        assert not supported


def test_cpu_check_honours_the_onednn_isa_cap() -> None:
    """``ONEDNN_MAX_CPU_ISA=AVX2`` turns any x86 CPU into one without bf16 kernels, and the check sees it."""
    code = "from rnnlab.run.precision import cpu_bf16_support; print(cpu_bf16_support()[0])"
    result = subprocess.run([sys.executable, "-c", code], env=AVX2_ONLY, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("supported, expected", [(True, BF16), (False, FP32)])
def test_auto_follows_the_capability(supported: bool, expected: str, monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (supported, "because of the test"))
    with caplog.at_level(logging.INFO, logger="rnnlab.run.precision"):
        assert choose_precision("auto", "cpu") == expected
    assert f"precision: {expected} (trainer.precision=auto: because of the test)" in caplog.text


def test_explicit_bf16_without_support_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (False, "the CPU has neither AVX-512 BF16 nor AMX"))
    with pytest.raises(UserError, match=r"trainer.precision=bf16-mixed cannot run here: the CPU has neither.*"
                                        r"use trainer.precision=auto"):
        choose_precision("bf16-mixed", "cpu")


def test_explicit_bf16_with_support_and_other_values_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (True, "yes"))
    assert choose_precision("bf16-mixed", "cpu") == "bf16-mixed"
    for value in ("32-true", "16-mixed", 32, None):
        assert choose_precision(value, "cpu") == value


def test_gpu_auto_without_cuda_falls_back_to_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_precision("auto", "gpu") == FP32


def _train_lm(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``train.py experiment=lm_ptb`` on a tiny PTB fixture, as an AVX2-only machine runs it."""
    data = write_ptb(tmp_path / "data")
    command = [sys.executable, "train.py", "experiment=lm_ptb", "debug=fast", "model.embedding_dim=8",
               "model.encoder.hidden_size=8", "data.batch_size=2", "data.bptt=4", f"paths.data_dir={data}",
               f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    return subprocess.run(command, cwd=ROOT, env=AVX2_ONLY, capture_output=True, text=True, timeout=300)


def test_lm_recipe_trains_in_fp32_on_an_avx2_only_cpu(tmp_path: Path) -> None:
    result = _train_lm(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "precision: 32-true (trainer.precision=auto: " in log
    assert (tmp_path / "run" / "metrics.json").exists()


def test_explicit_bf16_on_an_avx2_only_cpu_stops_with_one_error_line(tmp_path: Path) -> None:
    result = _train_lm(tmp_path, "trainer.precision=bf16-mixed")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "trainer.precision=bf16-mixed cannot run here" in errors[0]
    assert "Traceback" not in result.stderr
