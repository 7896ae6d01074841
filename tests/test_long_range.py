"""The long-range lab: gate functions, synthetic tasks, gradient flow, memory heatmaps, sweep analysis."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import pytest
import torch

from conftest import compose_train
from rnnlab.analysis import long_range
from rnnlab.cells import CIFGCell, ElmanCell, LSTMCell, PeepholeLSTMCell
from rnnlab.cells.discovery import cell_names
from rnnlab.cells.gates import hard_sigmoid
from rnnlab.data.special import IGNORE_INDEX
from rnnlab.data.synthetic import SyntheticDataModule
from rnnlab.data.synthetic.copy import COPY_BLANK, COPY_DELIMITER, COPY_OFFSET
from rnnlab.diagnostics import gradient_norms
from rnnlab.diagnostics.memory_heatmap import gate_trace, main as heatmap_main
from rnnlab.diagnostics.recall_gates import recall_gate_row
from rnnlab.encoders import RNNEncoder
from rnnlab.run.pipeline import build, train

GATED = [LSTMCell, CIFGCell, PeepholeLSTMCell]
SMALL = ["data.num_train=64", "data.num_val=32", "data.num_test=32", "data.batch_size=16",
         "model.encoder.hidden_size=16", "model.embedding_dim=8"]


# ----------------------------------------------------------------- gate functions
def _gate_gradients(cell_cls: type, gate: str) -> dict[str, torch.Tensor]:
    """Gradients of a few steps' loss, split into the gate rows and the candidate rows of ``weight_ih``."""
    torch.manual_seed(0)
    cell = cell_cls(3, 4, forget_bias=0.0, gate=gate)  # gates open and closed: some paths reach g
    state = cell.initial_state(2, torch.device("cpu"), torch.float32)
    for x_t in torch.randn(5, 2, 3):
        h, state = cell(x_t, state)
    state[1].sum().backward()
    rows = cell.weight_ih.grad.view(-1, 4, 3)  # (gates, H, I)
    candidate = 1 if cell_cls is CIFGCell else 2  # row blocks: CIFG f, g, o; LSTM/peephole i, f, g, o
    gates = [k for k in range(rows.shape[0]) if k != candidate]
    return {"gates": rows[gates], "candidate": rows[candidate]}


@pytest.mark.parametrize("cell_cls", GATED)
def test_hard_gate_blocks_the_gradient(cell_cls: type) -> None:
    grads = _gate_gradients(cell_cls, "hard")
    assert torch.count_nonzero(grads["gates"]) == 0
    assert torch.count_nonzero(grads["candidate"]) > 0  # the gradient reaches the rest of the cell


@pytest.mark.parametrize("cell_cls", GATED)
def test_straight_through_gate_passes_the_gradient(cell_cls: type) -> None:
    assert torch.count_nonzero(_gate_gradients(cell_cls, "straight_through")["gates"]) > 0


def test_hard_sigmoid_is_the_clipped_line() -> None:
    w = torch.linspace(-6, 6, 241)
    expected = torch.tensor([min(1.0, max(0.0, 0.5 + v / 4)) for v in w.tolist()])
    assert torch.equal(hard_sigmoid(w), expected)


@pytest.mark.parametrize("cell_cls", GATED)
def test_gate_values_follow_forward(cell_cls: type) -> None:
    torch.manual_seed(0)
    cell = cell_cls(3, 4)
    state = (torch.randn(2, 4), torch.randn(2, 4))
    x_t = torch.randn(2, 3)
    values = cell.gate_values(x_t, state)
    h, (_, c) = cell(x_t, state)
    torch.testing.assert_close(values["memory"], c)
    torch.testing.assert_close(values["output"] * torch.tanh(values["memory"]), h)
    assert all(((v >= 0) & (v <= 1)).all() for k, v in values.items() if k != "memory")


# ----------------------------------------------------------------- synthetic tasks
def _data(task: str, seed: int = 0, distance: int = 12, n: int = 300) -> SyntheticDataModule:
    data = SyntheticDataModule(task, distance=distance, num_train=n, num_val=n, num_test=n, seed=seed)
    data.setup()
    return data


@pytest.mark.parametrize("task", ["recall", "adding", "copy"])
def test_generation_is_deterministic_per_seed(task: str) -> None:
    first, again, other = _data(task, 3), _data(task, 3), _data(task, 4)
    for split in ("train", "validation", "test"):
        a, b, c = (d.datasets[split].tensors for d in (first, again, other))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not torch.equal(a["inputs"], c["inputs"])
    assert not torch.equal(first.datasets["train"].tensors["inputs"], first.datasets["test"].tensors["inputs"])


def test_recall_label_is_the_key_t_steps_before_the_end() -> None:
    data = _data("recall", distance=12)
    tensors = data.datasets["train"].tensors
    inputs, targets = tensors["inputs"], tensors["targets"]
    assert inputs.shape == (300, 13)
    assert torch.equal(targets, inputs[:, -13] - 1)
    # Distractors are never keys, so replacing them by any other distractor leaves the key, hence the label.
    assert (inputs[:, 1:] > data.num_classes).all() and (inputs[:, 1:] <= data.vocab_size).all()


def test_adding_target_is_the_sum_of_the_marked_values() -> None:
    tensors = _data("adding", distance=12).datasets["train"].tensors
    values, markers = tensors["inputs"].unbind(-1)  # each (n, T)
    assert torch.equal(markers.sum(1), torch.full((300,), 2.0))
    assert (markers[:, :6].sum(1) == 1).all() and (markers[:, 6:].sum(1) == 1).all()
    torch.testing.assert_close(tensors["targets"], (values * markers).sum(1))
    # Changing every unmarked value changes nothing.
    noisy = torch.where(markers.bool(), values, torch.rand_like(values))
    torch.testing.assert_close((noisy * markers).sum(1), tensors["targets"])


def test_copy_targets_are_the_prefix_after_the_blanks() -> None:
    data = _data("copy", distance=12)
    tensors = data.datasets["train"].tensors
    inputs, targets, k = tensors["inputs"], tensors["targets"], data.copy_length
    assert inputs.shape == (300, 2 * k + 12)
    assert torch.equal(targets[:, -k:], inputs[:, :k] - COPY_OFFSET)
    assert (targets[:, :-k] == IGNORE_INDEX).all()
    assert (inputs[:, k:k + 11] == COPY_BLANK).all() and (inputs[:, k + 11] == COPY_DELIMITER).all()
    assert (inputs[:, -k:] == COPY_BLANK).all()


def test_chance_levels() -> None:
    recall, adding, copy = _data("recall", n=4000), _data("adding", n=4000), _data("copy", n=4000)
    assert recall.chance() == pytest.approx(1 / 8) and copy.chance() == pytest.approx(1 / 16)
    assert adding.chance() == pytest.approx(1 / 6)
    # The best input-blind predictors reach them: the most frequent key, the mean sum 1.
    keys = recall.datasets["train"].tensors["targets"]
    assert np.bincount(keys.numpy()).max() / len(keys) == pytest.approx(1 / 8, abs=0.02)
    sums = adding.datasets["train"].tensors["targets"]
    assert float(((sums - 1.0) ** 2).mean()) == pytest.approx(1 / 6, abs=0.01)


# ----------------------------------------------------------------- end to end and gradient flow
@pytest.mark.parametrize("task,model", [("recall", "lstm"), ("adding", "rnn"), ("copy", "peephole")])
def test_fast_dev_run(task: str, model: str, tmp_path: Path) -> None:
    cfg = compose_train([f"task={task}", f"model={model}", "debug=fast", "callbacks=gradient_flow",
                         "data.distance=6", *SMALL], tmp_path)
    metrics = train(cfg)
    name = "mse" if task == "adding" else "acc"
    assert f"test/{name}" in metrics
    assert metrics["test/chance"] == pytest.approx({"recall": 1 / 8, "adding": 1 / 6, "copy": 1 / 16}[task])
    records = json.loads((tmp_path / "gradient_flow.json").read_text())
    steps = {"recall": 7, "adding": 6, "copy": 16}[task]
    assert [r["epoch"] for r in records] == [0, 1]
    assert all(len(r["curves"]["layer0"]) == steps for r in records)
    assert (tmp_path / "gradient_flow.png").stat().st_size > 0


@pytest.mark.parametrize("cell", cell_names())
def test_long_range_experiment_runs_every_cell(cell: str, tmp_path: Path) -> None:
    """Every cell of conf/model/cell/ runs in the lab, with the lab's forget bias where the cell has a forget gate."""
    cfg = compose_train(["experiment=long_range", f"model/cell={cell}", "debug=fast", "data.distance=5", *SMALL],
                        tmp_path)
    assert cfg.task.name == "recall" and cfg.model.cell.get("forget_bias", 3.0) == 3.0
    assert 0.0 <= train(cfg)["test/acc"] <= 1.0


@pytest.mark.parametrize("task,metric,chance", [("recall", "acc", 1 / 8), ("adding", "mse", 1 / 6),
                                                ("copy", "acc", 1 / 16)])
def test_long_range_experiment_stops_once_solved_in_the_task_metric(task: str, metric: str, chance: float,
                                                                      tmp_path: Path) -> None:
    """The early-stopping threshold follows the task: an accuracy for recall and copy, an MSE for adding."""
    cfg = compose_train(["experiment=long_range", f"task={task}"], tmp_path)
    stopping = cfg.callbacks.early_stopping
    assert cfg.task.name == task and stopping.monitor == f"val/{metric}"
    assert stopping.mode == ("min" if metric == "mse" else "max")
    assert long_range.solved(stopping.stopping_threshold, chance, metric)  # reached only by a solved run


@pytest.mark.parametrize("task", ["recall", "adding", "copy"])
@pytest.mark.parametrize("experiment,stops_without_progress", [("long_range", True), ("long_range_neutral", False)])
def test_neutral_lab_stops_a_run_only_once_solved(experiment: str, stops_without_progress: bool, task: str,
                                                    tmp_path: Path) -> None:
    """The neutral budget never stops a run for lack of progress within its epochs, only at the solved threshold;
    the lab's own budget stops it after its patience."""
    cfg = compose_train([f"experiment={experiment}", f"task={task}"], tmp_path)
    stopping = hydra.utils.instantiate(cfg.callbacks.early_stopping)
    worse = 0.2 if stopping.mode == "max" else 0.4  # than the first validation's 0.3
    stopped = [stopping._evaluate_stopping_criteria(torch.tensor(value))[0]
               for value in [0.3] + [worse] * (cfg.trainer.max_epochs - 1)]
    assert cfg.trainer.max_epochs == 8 and any(stopped) == stops_without_progress
    solved = 1.0 if stopping.mode == "max" else 0.0
    assert stopping._evaluate_stopping_criteria(torch.tensor(solved))[0]


@pytest.mark.parametrize("gate", ["hard", "straight_through", "hard_sigmoid"])
def test_long_range_experiment_runs_every_gate(gate: str, tmp_path: Path) -> None:
    cfg = compose_train(["experiment=long_range", "model/cell=cifg", f"model.gate={gate}", "debug=fast",
                         "data.distance=5", *SMALL], tmp_path)
    assert cfg.model.cell.gate == gate
    assert 0.0 <= train(cfg)["test/acc"] <= 1.0


def test_gradient_norms_per_layer_and_direction(tmp_path: Path) -> None:
    cfg = compose_train(["task=recall", "model=birnn", "model.encoder.num_layers=2", "data.distance=9", *SMALL],
                        tmp_path)
    datamodule, module = build(cfg)
    batch = next(iter(datamodule.val_dataloader()))
    curves = gradient_norms(module, batch)
    assert sorted(curves) == ["layer0", "layer0/backward", "layer1", "layer1/backward"]
    assert all(len(norms) == 10 for norms in curves.values())
    assert all(layer.implementation == "auto" for d in module.encoder.layers for layer in d)  # restored
    # The loss reads the forward RNN's last state and the backward RNN's state at the first token.
    assert curves["layer1"][-1] > 0 and curves["layer1/backward"][0] > 0


def test_gradient_norms_of_a_reverse_encoder_are_in_sentence_order(tmp_path: Path) -> None:
    cfg = compose_train(["task=recall", "model=rnn", "model.encoder.reverse=true", "data.distance=9", *SMALL],
                        tmp_path)
    datamodule, module = build(cfg)
    curves = gradient_norms(module, next(iter(datamodule.val_dataloader())))
    assert list(curves) == ["layer0/backward"]
    assert curves["layer0/backward"][0] > curves["layer0/backward"][-1]  # position 0 is read last


def test_gradient_norms_equal_autograd_through_the_loop() -> None:
    torch.manual_seed(0)

    class Probe(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = RNNEncoder(ElmanCell, 3, 5)

        def compute_loss(self, batch: dict) -> tuple[torch.Tensor, None]:
            return self.encoder(batch["x"], batch["mask"]).sentence.pow(2).sum(), None

    probe, x = Probe(), torch.randn(2, 6, 3)
    curves = gradient_norms(probe, {"x": x, "mask": torch.ones(2, 6, dtype=torch.bool)})
    cell, h, hs = probe.encoder.layers[0][0].cell, torch.zeros(2, 5), []
    for t in range(6):
        h, _ = cell(x[:, t], (h,))
        hs.append(h)
    grads = torch.autograd.grad(h.pow(2).sum(), hs)
    torch.testing.assert_close(torch.tensor(curves["layer0"]), torch.stack([g.norm() for g in grads]))
    assert curves["layer0"][0] < curves["layer0"][-1]


def test_gradient_norms_on_the_tagger(data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train(["task=ner", "model=bilstm", f"paths.data_dir={data_dir}"], tmp_path)
    datamodule, module = build(cfg)
    batch = next(iter(datamodule.val_dataloader()))
    curves = gradient_norms(module, batch)
    assert len(curves["layer0"]) == batch["tokens"].shape[1] and min(curves["layer0/backward"]) >= 0


@pytest.mark.parametrize("cell", cell_names())
def test_memory_heatmap_writes_a_png(cell: str, data_dir: Path, tmp_path: Path) -> None:
    """One panel per gate and state the cell declares, for every cell."""
    cfg = compose_train(["task=ner", "model=lstm", f"model/cell={cell}", "~model/chars", "model.crf=false",
                         "debug=fast", f"paths.data_dir={data_dir}"], tmp_path)  # the plain tagger: words only
    datamodule, module = build(cfg)
    trainer = L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=datamodule)
    ckpt = tmp_path / "tagger.ckpt"
    trainer.save_checkpoint(ckpt)
    out = heatmap_main([f"ckpt_path={ckpt}", "sentence=UNESCO praises Danish plan to Korhonen",
                        f"out={tmp_path / 'memory.png'}", "module=rnnlab.tasks.tagging.TaggingModule", "units=8"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cell_module = module.encoder.layers[0][0].cell
    words, trace = gate_trace(module, "UNESCO praises Danish")
    assert list(trace) == [*cell_module.gate_names, *cell_module.state_names]
    assert all(values.shape == (len(words), cell_module.hidden_size) for values in trace.values())


@pytest.mark.parametrize("forget_bias,units", [(40.0, 8), (-40.0, 0)])
def test_recall_gates_reads_retention_and_latches_off_the_cell(forget_bias: float, units: int,
                                                               tmp_path: Path) -> None:
    """A forget gate pinned open keeps everything written; pinned shut, nothing. With the input gate also shut
    on every distractor (and open at the key, whose id is below theirs) every unit is a latch."""
    cfg = compose_train(["task=recall", "model=lstm", "data.distance=5", *SMALL, "model.encoder.hidden_size=8"],
                        tmp_path)
    datamodule, module = build(cfg)
    trainer = L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=datamodule)
    cell = module.encoder.layers[0][0].cell
    with torch.no_grad():
        cell.bias[8:16] = forget_bias  # forget rows: the gate is 1 (or 0) throughout
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    trainer.save_checkpoint(ckpt)
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"test/acc": 0.5}))
    row = recall_gate_row(ckpt, distance=5, sequences=4)
    assert row[1] == "0.500" and row[3] == ("1.000" if forget_bias > 0 else "0.000") and row[4] == str(units)
    with torch.no_grad():  # one embedding dimension says key (+1, ids 1-8) or distractor (-1, ids 9-15); the
        embedding = module.embedder[0].weight  # input gate reads only it: open at the key, shut after
        embedding.zero_()
        embedding[1:9, 0], embedding[9:, 0] = 1.0, -1.0
        cell.weight_ih[:8], cell.weight_hh[:8], cell.bias[:8] = 0.0, 0.0, 0.0
        cell.weight_ih[:8, 0] = 40.0
    trainer.save_checkpoint(ckpt)
    row = recall_gate_row(ckpt, distance=5, sequences=4)
    assert int(row[5]) == (8 if forget_bias > 0 else 0) and (float(row[6]) > 100) == (forget_bias > 0)


# ----------------------------------------------------------------- sweep analysis
def write_lab_run(sweep: Path, job: int, model: str, distance: int, seed: int, value: float, task: str = "recall",
                  gradient_flow: bool = False) -> None:
    """A finished job folder of a lab sweep, as the pipeline leaves it (only what the analysis reads)."""
    metric, chance = {"recall": ("acc", 0.125), "adding": ("mse", 1 / 6), "copy": ("acc", 1 / 16)}[task]
    folder = sweep / f"{job}_task={task},model={model},data.distance={distance},seed={seed}"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(
        "\n".join(f"{k}: {json.dumps(v)}" for k, v in {
            "task": {"name": task, "mode": "min" if metric == "mse" else "max", "optimized_metric": f"val/{metric}"},
            "seed": seed,
            "data": {"distance": distance},
            "model": {"name": model, "cell": {"gate": "sigmoid"} if model == "lstm" else {}}}.items()))
    (folder / "metrics.json").write_text(json.dumps({f"test/{metric}": value, "test/chance": chance,
                                                     "train_seconds": 1.0}))
    if gradient_flow:
        (folder / "gradient_flow.json").write_text(json.dumps([{"epoch": 0, "curves": {"layer0": [0.1] * 6}}]))


def test_analysis_reads_runs_and_writes_figures(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for job, (model, distance, seed, acc) in enumerate([("rnn", 5, 1, 1.0), ("rnn", 50, 1, 0.13),
                                                        ("lstm", 5, 1, 1.0), ("lstm", 50, 1, 0.97),
                                                        ("lstm", 50, 2, 0.99)]):
        write_lab_run(sweep, job, model, distance, seed, acc, gradient_flow=True)
    table = long_range.main([str(sweep), "--out", str(tmp_path / "out")])
    assert "| rnn | 1.000 n=1 | 0.130 n=1 | 5 | 50 |" in table  # one seed: no interval
    # 0.98 ± t(0.975, 1) 0.0141 / sqrt(2) = 0.98 ± 0.127, clipped to accuracy's 1
    assert "| lstm | 1.000 n=1 | 0.980 [0.853, 1.000] n=2 | 50 | never |" in table
    assert (tmp_path / "out" / "long_range_accuracy.png").exists()
    assert (tmp_path / "out" / "long_range_gradient_flow.png").exists()


def test_analysis_groups_tasks_and_tables_the_largest_distance_solved(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    values = {("recall", "elman", 5): [1.0, 1.0, 0.9], ("recall", "elman", 50): [0.13, 0.12, 0.14],
              ("recall", "lstm", 5): [1.0, 1.0, 1.0], ("recall", "lstm", 50): [0.96, 0.97, 0.95],
              ("adding", "elman", 5): [0.02, 0.03, 0.01], ("adding", "elman", 50): [0.17, 0.16, 0.18],
              ("adding", "lstm", 5): [0.001, 0.002, 0.003], ("adding", "lstm", 50): [0.01, 0.015, 0.02],
              ("copy", "lstm", 5): [1.0, 1.0, 1.0], ("copy", "lstm", 50): [0.5, 0.6, 0.4]}
    job = 0
    for (task, model, distance), seeds in values.items():
        for seed, value in enumerate(seeds, start=1):
            write_lab_run(sweep, job, model, distance, seed, value, task, gradient_flow=model == "lstm")
            job += 1

    runs = long_range.load_runs(sweep)
    assert list(long_range.by_task(runs)) == ["recall", "adding", "copy"]
    table = long_range.main([str(sweep), "--out", str(tmp_path / "out")])

    solved = table[table.index("**largest distance solved**"):]
    # recall: elman's 0.967 at T=5 solves, lstm's 0.96 at T=50 too; adding: MSE < 0.0167 solves (lstm's 0.015
    # at T=50, not elman's 0.02 at T=5); copy: elman not run.
    assert "| variant | recall (acc) | adding (mse) | copy (acc) |" in solved
    assert "| elman | 5 | – | not run |" in solved and "| lstm | 50 | 50 | 5 |" in solved
    assert "Distances run: recall 5, 50; adding 5, 50; copy 5, 50." in solved
    recall = table[table.index("**recall**"):table.index("**adding**")]
    assert "| elman | 0.967 [0.823, 1.000] n=3 | 0.130 [0.105, 0.155] n=3 | 5 | 50 |" in recall  # clipped at 1
    adding = table[table.index("**adding**"):table.index("**copy**")]
    assert "| lstm | 0.002 [0.000, 0.004] n=3 | 0.015 [0.003, 0.027] n=3 | 50 | never |" in adding  # clipped at 0
    assert "solved: mean MSE < 0.1 × chance = 0.0167" in adding and "clipped to [0, ∞)" in adding
    for name in ("accuracy", "gradient_flow_recall", "gradient_flow_adding", "gradient_flow_copy"):
        assert (tmp_path / "out" / f"long_range_{name}.png").exists()
