"""Defaults in one place: the translation task's decoder and decoding options are typed configs (``rnnlab.config``)
that fill in what an older checkpoint lacks, and a key they lack fails before any data is read, naming the keys
they have; the model keys' defaults are those of ``conf/model/_defaults.yaml``; no optimiser is assumed; the config
groups mirror the code (a task file holds its task family, nothing of the trainer or the model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose_train
from rnnlab.config import DecoderConfig, DecodingConfig, complete, with_model_defaults
from rnnlab.errors import UserError
from rnnlab.run.pipeline import CheckTaskFitsData, train
from rnnlab.tasks.classification import ClassificationModule


def test_composition_starts_from_the_typed_defaults(tmp_path: Path) -> None:
    cfg = compose_train(["task=translation", "task.decoding.beam_size=3"], tmp_path)
    assert OmegaConf.get_type(cfg.task.decoding) is DecodingConfig
    assert OmegaConf.to_container(cfg.task.decoding) == {**complete(DecodingConfig, None, "x"), "beam_size": 3}
    assert OmegaConf.to_container(cfg.model.decoder) == complete(DecoderConfig, None, "x")
    assert cfg.task.module.decoding.beam_size == 3


def test_a_checkpoint_without_a_newer_option_gets_its_default() -> None:
    older = {"strategy": "beam", "beam_size": 4, "length_penalty": 0.6, "max_length": 50}  # before length_norm
    assert complete(DecodingConfig, older, "task.decoding") == {**older, "length_norm": "length"}
    decoder = complete(DecoderConfig, {"hidden_size": 32}, "model.decoder")  # before attention
    assert decoder["attention"] == {"kind": "none", "size": None, "input_feeding": False}
    assert decoder["bridge"] == "auto" and decoder["hidden_size"] == 32


def test_an_unknown_key_fails_at_composition(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException, match="task.decoding.beam_sise"):
        compose_train(["task=translation", "task.decoding.beam_sise=3"], tmp_path)


@pytest.mark.parametrize(("override", "message"), [
    ("+task.decoding.beam_sise=3", "task.decoding.beam_sise is not an option; task.decoding has ['strategy', "
                                   "'beam_size', 'length_penalty', 'length_norm', 'max_length']"),
    ("+model.decoder.attention.heads=2", "model.decoder.attention.heads is not an option; model.decoder.attention "
                                         "has ['kind', 'size', 'input_feeding']"),
])
def test_an_appended_unknown_key_stops_the_run_before_the_data(override: str, message: str, tmp_path: Path) -> None:
    # The data folder does not exist: reading any data would fail with another message.
    cfg = compose_train(["task=translation", override, f"paths.data_dir={tmp_path / 'none'}", "data.hub=null"],
                        tmp_path / "run")
    with pytest.raises(UserError) as error:
        train(cfg)
    assert str(error.value) == message


def test_a_checkpoint_option_of_the_wrong_type_is_one_error() -> None:
    with pytest.raises(UserError, match="model.decoder: Key 'knd' not in 'AttentionConfig'$"):
        complete(DecoderConfig, {"attention": {"knd": "dot"}}, "model.decoder")
    with pytest.raises(UserError, match="task.decoding.beam_sise is not an option"):
        complete(DecodingConfig, {"beam_sise": 3}, "task.decoding")


def test_a_model_config_without_newer_keys_gets_the_values_of_the_defaults_file() -> None:
    older = {"embedding_dim": 8, "dropout": 0.3}  # a checkpoint from before crf and pooling
    filled = with_model_defaults(older)
    assert filled["crf"] is False and filled["pooling"] == "final"  # conf/model/_defaults.yaml's
    assert filled["embedding_dim"] == 8 and filled["dropout"] == 0.3 and "defaults" not in filled


def test_a_module_without_an_optimizer_predicts_and_refuses_to_train(tmp_path: Path) -> None:
    cfg = compose_train(["task=classify", "data=sst2", "model=bilstm", "model.embedding_dim=8", "model.encoder.hidden_size=4"],
                        tmp_path)
    vocab = {"items": ["<pad>", "<unk>", "a"], "unk": "<unk>"}
    module = ClassificationModule(OmegaConf.to_container(cfg.model, resolve=True), vocab,
                                  {"items": ["0", "1"], "unk": None})
    assert module(torch.tensor([[2, 2]]), torch.tensor([[True, True]])).shape == (1, 2)
    with pytest.raises(UserError, match="task.optimizer is not set"):
        module.configure_optimizers()


def test_a_task_and_data_that_do_not_fit_stop_before_the_data_is_read(tmp_path: Path) -> None:
    # The data folder does not exist: reading any data would fail with another message.
    cfg = compose_train(["task=ner", "data=sst2", f"paths.data_dir={tmp_path / 'none'}", "data.hub=null"],
                        tmp_path / "run")
    with pytest.raises(UserError) as error:
        train(cfg)
    assert str(error.value) == ("task=ner trains on TaggingDataModule data, but data=sst2 is ClassificationDataModule "
                                "data; choose data= one of ['conll2003', 'ud_ewt', 'wnut17'], or a task that reads it")


def test_the_composed_config_of_a_run_is_checked_before_hydra_writes_its_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = compose_train(["task=classify", "data=multi30k"], tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        CheckTaskFitsData().on_run_start(cfg)  # Hydra calls it before it makes the run folder
    assert stop.value.code == 2 and not (tmp_path / "run").exists()
    assert capsys.readouterr().err == (
        "error: task=classify trains on ClassificationDataModule data, but data=multi30k is TranslationDataModule "
        "data; choose data= one of ['labelled_text', 'mr', 'sst2', 'sst5', 'sst_trees'], or a task that reads it\n")
    CheckTaskFitsData().on_run_start(compose_train(["task=classify"], tmp_path / "run"))  # a fit: no error


def test_task_configs_hold_task_families_only() -> None:
    datasets = {path.stem for path in (CONF / "data").glob("*.yaml")}
    for path in sorted((CONF / "task").glob("*.yaml")):
        config = OmegaConf.load(path)
        assert path.stem not in datasets, f"{path.name} is a dataset; put it in conf/data/"
        assert set(config) <= {"defaults", "task", "data"}, f"{path.name}: {set(config)}"  # no trainer or model keys


@pytest.mark.parametrize(("task", "data", "epochs"), [("ner", "conll2003", 15), ("pos", "ud_english_ewt", 12),
                                                      ("classify", "sst2", 10), ("recall", None, 20)])
def test_a_task_picks_its_data_budget_and_standard_model(task: str, data: str, epochs: int, tmp_path: Path) -> None:
    cfg = compose_train([f"task={task}", "model=bilstm"], tmp_path)
    assert cfg.data.get("name") == data and cfg.trainer.max_epochs == epochs
    assert (cfg.model.crf, cfg.model.get("chars") is not None) == (task == "ner", task == "ner")
    assert compose_train([f"task={task}", "trainer.max_epochs=2"], tmp_path).trainer.max_epochs == 2


def test_a_renamed_task_stops_with_one_line_naming_its_replacement(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "task=ner,sst2", "seed=1,2"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and not (tmp_path / "multirun").exists()
    assert run.stderr == ("error: task=sst2 is now task=classify data=sst2: task= picks the task family, data= its "
                          "dataset\n")
