"""benchmarks/cells.py --lengths: which models it times, the skip guard, the table, the CSV and the figure."""

from __future__ import annotations

import csv
import importlib.util
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "cells.py"
spec = importlib.util.spec_from_file_location("cells_benchmark", SCRIPT)
cells = sys.modules["cells_benchmark"] = importlib.util.module_from_spec(spec)  # registered: dataclasses look it up
spec.loader.exec_module(cells)


def test_against_length_times_fast_path_and_loop_skips_and_saves(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    shape = cells.Shape(2, 0, 3, 4)
    models = cells.length_models(["min_gru", "indrnn"], shape)
    # The scan's cell also runs on its loop; IndRNN has no kernel, so its loop is its fast path, timed once.
    assert list(models) == [("nn.LSTM", ""), ("min_gru", "kernels.scan"), ("min_gru", "loop"), ("indrnn", "loop")]
    assert [model.encoder.layers[0][0].implementation for model in list(models.values())[1:]] == \
        ["auto", "reference", "auto"]

    # A limit of 0 s: every model is timed at the first length and skipped at the longer ones.
    results = cells.time_against_length(models, shape, [2, 3, 4], torch.device("cpu"), warmup=0, repeats=1,
                                        clock=time.process_time, max_seconds=0.0)
    assert all(times[0] > 0 and times[1:] == [None, None] for times in results.values())
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| model (path) | T=2 | T=3 | T=4 |"
    assert table[3].startswith("| min_gru (kernels.scan) | ") and table[3].endswith(" | skipped | skipped |")
    assert len(table) == 2 + len(models)

    figure = tmp_path / "figures" / "speed.png"
    cells.save_against_length(results, [2, 3, 4], figure, "test")
    assert figure.stat().st_size > 0
    with open(figure.with_suffix(".csv"), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["model", "path", "2", "3", "4"]
    assert rows[4][:2] == ["indrnn", "loop"] and rows[4][3:] == ["skipped", "skipped"]
    assert float(rows[4][2]) == pytest.approx(results["indrnn", "loop"][0], abs=1e-3)


def test_ragged_table_rates_each_cell_against_the_better_nn_lstm(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cells, "RAGGED_SHAPES", [cells.Shape(4, 24, 8, 16, shortest=0.5)])
    cells.ragged_table(["lstm", "min_gru"], torch.device("cpu"), rounds=2, clock=time.process_time)
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    # Ragged: packed and unpacked nn.LSTM, then each cell; full: one nn.LSTM (nothing to pack), then each cell.
    assert [(row[1], row[2]) for row in rows] == [
        ("[12, 24]", "nn.LSTM packed"), ("[12, 24]", "nn.LSTM unpacked"), ("[12, 24]", "lstm"),
        ("[12, 24]", "min_gru"), ("all 24", "nn.LSTM packed"), ("all 24", "lstm"), ("all 24", "min_gru")]
    for block in (rows[:4], rows[4:]):
        best = min(float(row[3]) for row in block if row[2].startswith("nn.LSTM"))
        for row in block:  # ms printed to 0.1: the ratio is known to 0.05 (1 + ratio) / (best - 0.05), ratio to 0.005
            ratio = float(row[3]) / best
            assert float(row[4].rstrip(" |")) == pytest.approx(ratio, abs=0.006 + 0.05 * (1 + ratio) / (best - 0.05))


def test_make_batch_draws_lengths_from_the_shortest_fraction() -> None:
    _, mask = cells.make_batch(cells.Shape(200, 40, 1, 1, variable_lengths=True, shortest=0.5), torch.device("cpu"))
    lengths = mask.sum(dim=1)
    assert int(lengths.min()) >= 20 and int(lengths.max()) == 40 and len(set(lengths.tolist())) > 10


def test_regulariser_table_rates_each_regulariser_against_standard_dropout(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cells, "REGULARISER_SHAPES", [cells.Shape(2, 5, 3, 4, layers=3)])
    cells.regulariser_table(torch.device("cpu"), rounds=1, clock=time.process_time)
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[1] for row in rows] == list(cells.REGULARISERS)
    assert rows[0][3] == "1.00 |"
