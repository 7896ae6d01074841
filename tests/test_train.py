"""train.py end to end on tiny fixtures, config composition, and the errors a user sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

from conftest import CONF, ROOT, compose_train
from rnnlab.cells.discovery import cell_names
from rnnlab.run.pipeline import train

TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml") if not p.stem.startswith("_"))
CELLS = cell_names()  # the registered cells, each with its YAML file


def test_every_task_and_model_composes(tmp_path: Path) -> None:
    assert {"ner", "pos"} <= set(TASKS) and {"rnn", "lstm", "cifg", "peephole", "bilstm", "birnn"} <= set(MODELS)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for task in TASKS:
            for model in MODELS:
                cfg = compose("train", overrides=[f"task={task}", f"model={model}", f"paths.output_dir={tmp_path}"])
                assert cfg.task.name == task and cfg.model.name == model
                if "cell" in cfg.model:  # recurrent models; the CNN and the n-gram MLP have none
                    assert cfg.model.cell._target_.startswith("rnnlab.cells")


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_train_fast_dev_run(task: str, data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train([f"task={task}", "model=bilstm", "debug=fast", f"paths.data_dir={data_dir}"], tmp_path)
    metrics = train(cfg)
    main = "test/f1" if task == "ner" else "test/acc"
    assert 0.0 <= metrics[main] <= 1.0
    assert metrics["num_parameters"] > 0
    saved = json.loads((tmp_path / "vocab.json").read_text())
    assert "<unk>" in saved["vocab"]["items"] and "O" not in saved["vocab"]["items"][:2]


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_trains_in_a_two_layer_independent_birnn(cell: str, data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train(["task=ner", "model=birnn", f"model/cell={cell}", "model.encoder.num_layers=2",
                         "model.encoder.style=independent", "debug=fast", f"paths.data_dir={data_dir}"], tmp_path)
    assert train(cfg)["train/loss"] > 0


def test_training_learns_and_checkpoints(data_dir: Path, tmp_path: Path) -> None:
    """A few epochs on the fixture: the best checkpoint is written and tested, the loss falls."""
    cfg = compose_train(["task=ner", "model=bilstm", f"paths.data_dir={data_dir}", "trainer.max_epochs=15",
                         "task.optimizer.lr=0.02", "callbacks.early_stopping.patience=100",
                         "model.dropout=0", "model.embedding_dropout=0", "model.word_dropout=0"], tmp_path)
    metrics = train(cfg)
    assert metrics["test/f1"] == 1.0  # test = train on the fixture: memorised
    assert (tmp_path / "checkpoints" / "best.ckpt").exists() and (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "csv" / "metrics.csv").read_text().count("\n") > 2
    assert (tmp_path / "metrics.json").exists()
    # Checkpoints hold plain data only, so torch's safe loader (weights_only=True) reads them.
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["tags"]["items"][0] == "O"


def test_unknown_cell_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigException) as error:
        compose_train(["model/cell=no_such_cell"], tmp_path)
    for cell in CELLS:
        assert cell in str(error.value)


def run_train(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_train_script_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    result = run_train(["task=pos", "model=lstm", "debug=fast", f"paths.data_dir={data_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test/acc" in json.loads((tmp_path / "run" / "metrics.json").read_text())


@pytest.mark.slow
def test_a_task_and_data_that_do_not_fit_stop_before_the_run_folder_is_written(tmp_path: Path) -> None:
    run = tmp_path / "run"  # a finished run's folder, named again by mistake
    (run / ".hydra").mkdir(parents=True)
    before = {".hydra/config.yaml": "task:\n  name: ner\n", "metrics.json": '{"test/f1": 0.9}', "train.log": "done\n"}
    for name, text in before.items():
        (run / name).write_text(text)
    result = run_train(["task=lm", "data=conll2003", f"paths.data_dir={tmp_path / 'none'}"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: task=lm trains on LMDataModule data, but data=conll2003 is TaggingDataModule data; choose data= one "
        "of ['ptb', 'text', 'wikitext103', 'wikitext2'], or a task that reads it"]
    assert {str(path.relative_to(run)): path.read_text() for path in run.rglob("*") if path.is_file()} == before


def test_unknown_model_exits_nonzero_with_choices(tmp_path: Path) -> None:
    result = run_train(["model=transformer"], tmp_path)
    assert result.returncode != 0
    assert "Could not find 'model/transformer'" in result.stderr and "bilstm" in result.stderr


def test_malformed_file_exits_nonzero_naming_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "conll2003"
    folder.mkdir(parents=True)
    for name in ("eng.train", "eng.testa", "eng.testb"):
        (folder / name).write_text("UNESCO NNP B-NP I-ORG\npraises\n")
    result = run_train(["debug=fast", f"paths.data_dir={tmp_path / 'data'}"], tmp_path)
    assert result.returncode != 0
    assert "eng.train:2: expected 4 whitespace-separated columns, found 1" in result.stderr


def test_missing_data_without_hub_exits_with_advice(tmp_path: Path) -> None:
    result = run_train(["task=pos", "debug=fast", f"paths.data_dir={tmp_path / 'nowhere'}"], tmp_path)
    assert result.returncode != 0
    assert "ud_english_ewt" in result.stderr and "RNNLAB_DATA_DIR" in result.stderr


def test_words_that_look_like_config_syntax_are_plain_data(tmp_path: Path) -> None:
    """Words such as ``???`` (UD EWT has it) or ``${x}`` are vocabulary entries, not OmegaConf syntax."""
    from conftest import write_conll

    root = write_conll(tmp_path / "data", train="??? . O O\n${x} . O I-PER\n")
    cfg = compose_train(["task=ner", "debug=fast", f"paths.data_dir={root}"], tmp_path / "run")
    train(cfg)
    assert {"???", "${x}"} <= set(json.loads((tmp_path / "run" / "vocab.json").read_text())["vocab"]["items"])
