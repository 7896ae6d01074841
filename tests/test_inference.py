"""eval.py and predict.py: checkpoints alone rebuild a model of every task; outputs, and the errors a user sees."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from conftest import COLUMNS_OPTIONS, COLUMNS_TRAIN, CONF, ROOT, compose_train, write_conll
from rnnlab.cli.evaluate import evaluate
from rnnlab.cli.inference import MOVED_MODULES, load_checkpoint
from rnnlab.cli.predict import predict
from rnnlab.errors import BROKEN_PIPE_EXIT, USER_ERROR_EXIT, main_guard
from rnnlab.run.pipeline import train
from rnnlab.tasks.base import CHECKPOINT_FORMAT
from test_classify import SST_LINES, write_sst
from test_lm import PTB_LIKE, write_ptb
from test_translation import GERMAN, write_multi30k

TINY = ["model.embedding_dim=8", "model.encoder.hidden_size=8", "model.head_hidden=0", "trainer.max_epochs=1",
        "~logger"]
TASKS = {  # task -> (overrides, writes the data folder, the file of its test split inside it)
    "ner": (["experiment=ner_plain"], write_conll, "conll2003/eng.testb"),  # the tagger these tests were written on
    "classify": (["task=classify", "data=sst2"], write_sst, "sst2/stsa.binary.test"),
    "lm": (["task=lm", "model=lstm", "data.batch_size=2", "data.eval_batch_size=3", "data.bptt=4"], write_ptb,
           "ptb_mikolov/ptb.test.txt.gz"),
    "translation": (["task=translation", "data.min_freq=1"], write_multi30k, "multi30k/test_2016_flickr.*.gz"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict, Path]]:
    """Per task: the best checkpoint copied alone into a fresh folder, the training run's metrics, and a data
    folder holding only the test split (the training data is gone)."""
    runs = {}
    for task, (overrides, write, test_file) in TASKS.items():
        root = tmp_path_factory.mktemp(task)
        data = write(root / "data")
        metrics = train(compose_train([*overrides, *TINY, f"paths.data_dir={data}"], root / "run"))
        checkpoint = root / "model" / "model.ckpt"
        checkpoint.parent.mkdir()
        shutil.copy(root / "run" / "checkpoints" / "best.ckpt", checkpoint)
        test_only = root / "test_only"
        for path in data.glob(test_file):
            target = test_only / path.relative_to(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        shutil.rmtree(data)
        shutil.rmtree(root / "run")
        runs[task] = (checkpoint, metrics, test_only)
    return runs


@pytest.fixture(scope="module")
def columns(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A NER tagger trained on TAB columns with an ID column and comments (every split: COLUMNS_TRAIN), trained
    until it has memorised them; its best checkpoint and the training run's metrics."""
    root = tmp_path_factory.mktemp("columns")
    data = write_conll(root / "data", train=COLUMNS_TRAIN, dev=COLUMNS_TRAIN, test=COLUMNS_TRAIN)
    memorise = ["model.embedding_dim=16", "model.encoder.hidden_size=16", "model.head_hidden=0", "model.dropout=0",
                "model.embedding_dropout=0", "model.word_dropout=0", "trainer.max_epochs=25", "task.optimizer.lr=0.05",
                "callbacks.early_stopping.patience=100", "~logger"]
    # The files' own tags (not task=ner's BIOES), so predictions compare with them as written.
    metrics = train(compose_train(["task=ner", "data.tag_scheme=null", *COLUMNS_OPTIONS, *memorise, f"paths.data_dir={data}"], root / "run"))
    return root / "run" / "checkpoints" / "best.ckpt", metrics


def config(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides)


def run_eval(overrides: list[str], output_dir: Path) -> dict[str, float]:
    return evaluate(config("eval", [*overrides, f"paths.output_dir={output_dir}"]))


def run_predict(overrides: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    predict(config("predict", overrides))
    return capsys.readouterr().out


def user_error(name: str, overrides: list[str], capsys: pytest.CaptureFixture) -> str:
    """Runs the entry point as the scripts do; returns the message of the user error it must exit with."""
    main = main_guard(evaluate if name == "eval" else predict)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(config(name, overrides))
    assert exit_info.value.code == USER_ERROR_EXIT
    message = capsys.readouterr().err
    assert message.startswith("error: ") and message.count("\n") == 1  # one paragraph
    return message


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


# ----------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("task", TASKS)
def test_checkpoint_holds_what_rebuilds_the_model(task: str, trained) -> None:
    checkpoint = torch.load(trained[task][0], weights_only=True)
    assert checkpoint["rnnlab"]["format"] == CHECKPOINT_FORMAT
    run = checkpoint["rnnlab"]["config"]
    assert run["task"]["name"] == task and ("lowercase" in run["data"]) == (task != "lm")
    assert run["data"]["_target_"].startswith("rnnlab.data.")
    vocabularies = {key for key, value in checkpoint["hyper_parameters"].items()
                    if isinstance(value, dict) and "items" in value}
    assert vocabularies == {"ner": {"vocab", "tags"}, "classify": {"vocab", "labels"}, "lm": {"vocab"},
                            "translation": {"source_vocab", "target_vocab"}}[task]
    implementations = checkpoint["rnnlab"]["implementations"]  # what the model is built from, by kind
    assert implementations["cell"].startswith("rnnlab.cells.")
    if task == "lm":
        assert implementations == {"language-model network": "rnn", "cell": "rnnlab.cells.lstm.LSTMCell",
                                   "head": "rnnlab.models.lm.SoftmaxHead"}
    cell = checkpoint["hyper_parameters"]["model"]["cell"]["_target_"]  # the class path the config gives
    assert checkpoint["rnnlab"]["registered"] == {cell: {"cell": "lstm"}}


# ----------------------------------------------------------------------------------------------- eval
@pytest.mark.parametrize("task", TASKS)
def test_eval_reproduces_the_training_test_metrics_without_training_data(task: str, trained,
                                                                         tmp_path: Path) -> None:
    checkpoint, training, test_only = trained[task]
    metrics = run_eval([f"ckpt_path={checkpoint}", f"paths.data_dir={test_only}"], tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    for name, value in metrics.items():
        assert value == pytest.approx(training[name], rel=1e-5), name
    main = {"ner": "test/f1", "classify": "test/acc", "lm": "test/ppl", "translation": "test/bleu"}[task]
    assert main in metrics
    predictions = {path.name for path in (tmp_path / "predictions").glob("*")} if task != "lm" else set()
    assert predictions == {"ner": {"test.conll"}, "classify": {"test.tsv"}, "lm": set(),
                           "translation": {"test.hyp"}}[task]


def test_eval_writes_tagger_predictions_beside_gold(trained, tmp_path: Path) -> None:
    file = tmp_path / "other.conll"
    file.write_text("Anna NNP B-NP I-PER\nlives VBZ B-VP O\n\nLondon NNP B-NP I-LOC\n")
    metrics = run_eval([f"ckpt_path={trained['ner'][0]}", f"input={file}"], tmp_path / "out")
    assert 0.0 <= metrics["other/f1"] <= 1.0
    rows = [line.split("\t") for line in (tmp_path / "out" / "predictions" / "other.conll").read_text().splitlines()]
    assert [row[:2] for row in rows] == [["Anna", "I-PER"], ["lives", "O"], [""], ["London", "I-LOC"], [""]]
    assert all(len(row) == 3 for row in rows if row != [""])


def test_data_option_set_to_null_overrides_the_checkpoint(columns, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """+data.comment_prefix=null switches off the comment lines the checkpoint's data config skips."""
    file = tmp_path / "released.iob2"
    file.write_text(COLUMNS_TRAIN)
    message = user_error("eval", [f"ckpt_path={columns[0]}", f"input={file}", "+data.comment_prefix=null",
                                  f"paths.output_dir={tmp_path}"], capsys)
    assert f"{file}:1: expected" in message and "set data.comment_prefix='#'" in message


def test_training_reads_tab_columns_with_ids_and_comments(columns) -> None:
    checkpoint, metrics = columns
    assert metrics["test/f1"] == 1.0  # test = train: memorised
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["rnnlab"]["config"]["data"]["delimiter"] == "tab"
    assert "New York" in saved["hyper_parameters"]["vocab"]["items"]


def test_eval_reads_tab_columns_with_data_overrides(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A model trained on whitespace columns, evaluated on TAB columns with an ID column and comments."""
    file = tmp_path / "released.iob2"
    file.write_text(COLUMNS_TRAIN)
    checkpoint = trained["ner"][0]
    message = user_error("eval", [f"ckpt_path={checkpoint}", f"input={file}", f"paths.output_dir={tmp_path}"], capsys)
    assert f"{file}:2: expected 5 whitespace-separated columns" in message and "set data.comment_prefix='#'" in message
    metrics = run_eval([f"ckpt_path={checkpoint}", f"input={file}", *(f"+{option}" for option in COLUMNS_OPTIONS)],
                       tmp_path / "out")
    assert 0.0 <= metrics["released/f1"] <= 1.0
    rows = [line.split("\t") for line in (tmp_path / "out" / "predictions" / "released.conll").read_text().splitlines()]
    assert [row[0] for row in rows if row != [""]][5:11] == ["Anna", "Korhonen", "lives", "in", "New York", "."]


def test_eval_on_another_tag_set_scores_as_seqeval(columns, tmp_path: Path) -> None:
    """Gold has a type the model never saw (EVENT) and lacks one it predicts (MISC): every entity still counts."""
    file = tmp_path / "other_tags.iob2"
    file.write_text(COLUMNS_TRAIN.replace("3\tDanish\tI-MISC\n4\tcall\tO", "3\tDanish\tI-EVENT\n4\tcall\tI-EVENT"))
    metrics = run_eval([f"ckpt_path={columns[0]}", f"input={file}"], tmp_path)
    assert all(math.isfinite(value) for value in metrics.values())
    blocks = (tmp_path / "predictions" / "other_tags.conll").read_text().strip().split("\n\n")
    sentences = [[line.split("\t") for line in block.splitlines()] for block in blocks]  # token, gold, predicted
    gold, predicted = ([[row[column] for row in sentence] for sentence in sentences] for column in (1, 2))
    assert "I-MISC" in sum(predicted, []) and "I-MISC" not in sum(gold, []) and "I-EVENT" in sum(gold, [])
    assert metrics["other_tags/precision"] == pytest.approx(precision_score(gold, predicted), abs=1e-6)
    assert metrics["other_tags/recall"] == pytest.approx(recall_score(gold, predicted), abs=1e-6)
    assert metrics["other_tags/recall"] < 1.0  # the EVENT entity is missed
    assert metrics["other_tags/f1"] == pytest.approx(f1_score(gold, predicted), abs=1e-6)
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    types = {key for key in report if not key.endswith(" avg")}
    assert {"EVENT", "MISC"} <= types
    for kind in types:
        for name in ("precision", "recall", "f1"):
            expected = report[kind]["f1-score" if name == "f1" else name]
            assert metrics[f"other_tags/{name}_{kind}"] == pytest.approx(expected, abs=1e-6), (name, kind)
    assert metrics["other_tags/f1_EVENT"] == metrics["other_tags/f1_MISC"] == 0.0
    assert metrics["other_tags/recall_EVENT"] == 0.0 and metrics["other_tags/precision_MISC"] == 0.0


def test_eval_of_a_classifier_writes_text_gold_prediction_probability(trained, tmp_path: Path) -> None:
    run_eval([f"ckpt_path={trained['classify'][0]}", f"paths.data_dir={trained['classify'][2]}"], tmp_path)
    header, *rows = (tmp_path / "predictions" / "test.tsv").read_text().splitlines()
    assert header == "text\tgold\tpredicted\tprobability" and len(rows) == len(SST_LINES)
    text, gold, predicted, probability = rows[0].split("\t")
    assert f"{gold} {text}" == SST_LINES[0] and predicted in ("0", "1") and 0.5 <= float(probability) <= 1


def test_eval_script_end_to_end(trained, tmp_path: Path) -> None:
    checkpoint, training, test_only = trained["translation"]
    result = subprocess.run([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={checkpoint}",
                             f"paths.data_dir={test_only}", f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test/bleu"] == pytest.approx(
        training["test/bleu"])
    assert len((tmp_path / "run" / "predictions" / "test.hyp").read_text().splitlines()) == len(GERMAN)


# -------------------------------------------------------------------------------------------- predict
def test_predict_tags_lines_and_conll_alike(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    long = " ".join(["London"] * 300)  # far longer than any training sentence
    text = write_lines(tmp_path / "in.txt", ["Anna lives in London .", "", long])
    out = run_predict([f"ckpt_path={trained['ner'][0]}", f"input={text}"], capsys)
    first, rest = out.split("\n\n", 1)
    assert len(first.splitlines()) == 5 and rest.startswith("\n")  # the empty line: an empty sentence
    assert len(rest.strip().splitlines()) == 300 and rest.endswith("\n\n")
    tags = {"O", *(f"{prefix}-{kind}" for prefix in "BIES" for kind in ("PER", "LOC", "ORG", "MISC"))}  # BIOES
    assert all(line.split("\t")[1] in tags for line in out.splitlines() if line)
    conll = tmp_path / "in.conll"
    conll.write_text("".join(f"{token}\n" for token in "Anna lives in London .".split()))
    assert run_predict([f"ckpt_path={trained['ner'][0]}", f"input={conll}", "input_format=conll"],
                       capsys) == first + "\n\n"


@pytest.mark.parametrize("task", ["ner", "classify"])
def test_predicting_by_length_gives_the_predictions_of_input_order(trained, task: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    words = "Anna lives in London great fun an unseen dull word".split()
    lines = ["", *(" ".join(words[i % 7:i % 7 + 1 + i % 9]) for i in range(40)), ""]  # lengths 1-9, unsorted
    text = write_lines(tmp_path / "in.txt", lines)
    options = [f"ckpt_path={trained[task][0]}", f"input={text}", "batch_size=4"]
    in_order = run_predict([*options, "sort_window=1"], capsys)
    assert run_predict(options, capsys) == in_order  # 16 batches of 4 read, then predicted shortest first
    assert run_predict([*options, "batch_size=1"], capsys) == in_order  # alone, as if in no batch at all


def test_predict_reads_tab_columns(trained, columns, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """With the options of the checkpoint's data config, or with +data overrides as eval.py takes them."""
    file = tmp_path / "released.iob2"
    file.write_text(COLUMNS_TRAIN)
    gold = [line.split("\t")[1:] for line in COLUMNS_TRAIN.splitlines() if line and not line.startswith("#")]
    out = run_predict([f"ckpt_path={columns[0]}", f"input={file}", "input_format=conll"], capsys)
    assert [line.split("\t") for line in out.splitlines() if line] == gold  # memorised
    overrides = [f"+{option}" for option in COLUMNS_OPTIONS]
    out = run_predict([f"ckpt_path={trained['ner'][0]}", f"input={file}", "input_format=conll", *overrides], capsys)
    assert [line.split("\t")[0] for line in out.splitlines() if line] == [token for token, _ in gold]
    assert out.count("\n\n") == 3


def test_predict_classifies_lines(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = write_lines(tmp_path / "in.txt", ["great fun", "", "an unseen dull word"])
    lines = run_predict([f"ckpt_path={trained['classify'][0]}", f"input={text}", "batch_size=1"],
                        capsys).split("\n")
    assert lines[1] == "" and lines[3] == ""
    label, probability, sentence = lines[0].split("\t")
    assert label in ("0", "1") and 0.5 <= float(probability) <= 1.0 and sentence == "great fun"


def test_predict_translates_greedy_as_eval_and_by_beam(trained, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    checkpoint, _, test_only = trained["translation"]
    stem = test_only / "multi30k" / "test_2016_flickr"  # eval reads <stem>.de.gz and <stem>.en.gz
    assert "test_2016_flickr/bleu" in run_eval([f"ckpt_path={checkpoint}", f"input={stem}"], tmp_path / "eval")
    greedy = run_predict([f"ckpt_path={checkpoint}", f"input={stem}.de.gz", "beam_size=1"], capsys)
    assert greedy == (tmp_path / "eval" / "predictions" / "test_2016_flickr.hyp").read_text()
    beam = run_predict([f"ckpt_path={checkpoint}", f"input={stem}.de.gz", "beam_size=3", "max_length=4"], capsys)
    assert len(beam.splitlines()) == len(GERMAN) and all(len(line.split()) <= 4 for line in beam.splitlines())


def test_predict_scores_lines_with_a_language_model(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = write_lines(tmp_path / "in.txt", [*PTB_LIKE.strip().splitlines(), "", "the unseen cat"])
    *lines, total = run_predict([f"ckpt_path={trained['lm'][0]}", f"input={text}", "mode=score",
                                 "batch_size=2"], capsys).splitlines()
    rows = [line.split("\t") for line in lines]
    assert [int(count) for _, count, _ in rows] == [7, 6, 7, 1, 4]  # words and <eos>; the empty line: <eos>
    nll = sum(math.log(float(ppl)) * int(count) for ppl, count, _ in rows)
    total_ppl, total_count, marker = total.split("\t")
    assert marker == "<total>" and int(total_count) == 25
    assert float(total_ppl) == pytest.approx(math.exp(nll / 25), rel=1e-3)
    metrics = run_eval([f"ckpt_path={trained['lm'][0]}", f"input={text}"], tmp_path / "eval")
    assert metrics["in/ppl"] > 1 and not (tmp_path / "eval" / "predictions").exists()


def test_predict_generates_reproducibly(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    prompts = write_lines(tmp_path / "prompts.txt", ["the cat", ""])
    args = [f"ckpt_path={trained['lm'][0]}", f"input={prompts}", "mode=generate", "num_samples=2",
            "temperature=0.8", "top_k=3", "seed=1", "max_length=5"]
    first = run_predict(args, capsys).splitlines()
    assert run_predict(args, capsys).splitlines() == first
    assert len(first) == 4 and first[0].startswith("the cat ") and first[1].startswith("the cat ")
    assert all(len(line.split()) <= 7 for line in first)


def test_predict_reads_stdin(trained, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("great fun\ndull\n"))
    out = run_predict([f"ckpt_path={trained['classify'][0]}", "input=-"], capsys)
    assert [line.split("\t")[2] for line in out.splitlines()] == ["great fun", "dull"]


# ----------------------------------------------------------------------------------------- bad inputs
def test_missing_and_invalid_checkpoints_and_inputs(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = write_lines(tmp_path / "in.txt", ["a b"])
    message = user_error("predict", [f"ckpt_path={tmp_path / 'none.ckpt'}", f"input={text}"], capsys)
    assert f"checkpoint {tmp_path / 'none.ckpt'} not found; pass ckpt_path=" in message
    message = user_error("eval", [f"ckpt_path={text}", f"paths.output_dir={tmp_path / 'out'}"], capsys)
    assert f"{text} is not a checkpoint (not a zip archive, as torch.save writes); pass ckpt_path=" in message
    message = user_error("eval", [f"ckpt_path={trained['ner'][0]}", f"input={tmp_path / 'none.conll'}",
                                  f"paths.output_dir={tmp_path / 'out'}"], capsys)
    assert f"input {tmp_path / 'none.conll'} not found; pass input= a file in the model's data format" in message


def test_a_directory_is_named_as_one(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    message = user_error("predict", [f"ckpt_path={trained['classify'][0]}", f"input={tmp_path}"], capsys)
    assert f"input {tmp_path} is a directory; pass input= a file, or input=- to read stdin" in message
    message = user_error("predict", [f"ckpt_path={tmp_path}", f"input={tmp_path}"], capsys)
    assert f"checkpoint {tmp_path} is a directory; pass ckpt_path=" in message


def test_predictions_that_fail_halfway_leave_the_previous_output_whole(trained, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """Line 3,001 does not decode: 3,000 predictions were made when the run stopped, none reached the file."""
    lines = tmp_path / "in.txt"
    lines.write_bytes(b"great fun\ndull\n" * 1500 + b"\xff\xfe\n")
    output = tmp_path / "out.txt"
    output.write_text("previous predictions\n")
    message = user_error("predict", [f"ckpt_path={trained['classify'][0]}", f"input={lines}", f"output={output}",
                                     "batch_size=100"], capsys)
    assert f"{lines}:3001: cannot decode the file as utf-8" in message
    assert output.read_text() == "previous predictions\n" and sorted(tmp_path.iterdir()) == [lines, output]


def test_a_device_name_torch_does_not_know_is_named_before_the_checkpoint(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    text = write_lines(tmp_path / "in.txt", ["a b"])
    message = user_error("predict", [f"ckpt_path={tmp_path / 'none.ckpt'}", f"input={text}", "device=gpu"], capsys)
    assert "device=gpu is not a device name; use cpu, cuda or cuda:N (the N-th GPU)" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message of a machine without CUDA")
def test_cuda_without_a_gpu_is_named_not_taken_for_a_bad_checkpoint(trained, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    text = write_lines(tmp_path / "in.txt", ["a b"])
    message = user_error("predict", [f"ckpt_path={trained['ner'][0]}", f"input={text}", "device=cuda"], capsys)
    assert f"device=cuda, but torch {torch.__version__} finds no CUDA GPU; use device=cpu" in message


@pytest.mark.parametrize("version", [None, CHECKPOINT_FORMAT + 1])
def test_incompatible_format_versions(version: int | None, trained, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    checkpoint = torch.load(trained["ner"][0], weights_only=True)
    if version is None:
        del checkpoint["rnnlab"]
    else:
        checkpoint["rnnlab"]["format"] = version
    path = tmp_path / "changed.ckpt"
    torch.save(checkpoint, path)
    message = user_error("predict", [f"ckpt_path={path}", f"input={path}"], capsys)
    expected = ("has no rnnlab format version" if version is None
                else f"has rnnlab checkpoint format {version}, but this rnnlab reads format {CHECKPOINT_FORMAT}; "
                     f"update rnnlab")
    assert expected in message


OLD_MODULES = {new: old for old, new in MOVED_MODULES.items()}


def _old_targets(node):
    """A stored config as rnnlab wrote it before the package root was split into models/, run/ and cli/."""
    if isinstance(node, dict):
        return {key: _old_path(value) if key == "_target_" else _old_targets(value) for key, value in node.items()}
    return [_old_targets(item) for item in node] if isinstance(node, list) else node


def _old_path(path: str) -> str:
    module, _, name = path.rpartition(".")
    return f"{OLD_MODULES.get(module, module)}.{name}"


def test_checkpoints_with_the_class_paths_of_before_the_package_split_still_load(trained, tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture) -> None:
    checkpoint = torch.load(trained["ner"][0], weights_only=True)
    checkpoint["rnnlab"]["config"] = _old_targets(checkpoint["rnnlab"]["config"])
    checkpoint["hyper_parameters"] = _old_targets(checkpoint["hyper_parameters"])
    del checkpoint["rnnlab"]["implementations"]  # recorded since the registries' names were
    del checkpoint["rnnlab"]["registered"]  # recorded since loading reads registered classes by name
    callbacks = checkpoint["rnnlab"]["config"]["callbacks"]
    assert callbacks["rng_state"]["_target_"] == "rnnlab.callbacks.RNGState"  # as checkpoints of 21cf8ab store it
    path = tmp_path / "old.ckpt"
    torch.save(checkpoint, path)
    loaded = load_checkpoint(path)
    for name, node in loaded.config["callbacks"].items():
        if node and "_target_" in node:
            assert get_class(node["_target_"]).__name__ == node["_target_"].rpartition(".")[2], name
    text = write_lines(tmp_path / "in.txt", ["EU rejects German call", "", "Peter Blackburn"])
    assert run_predict([f"ckpt_path={path}", f"input={text}"], capsys) == \
        run_predict([f"ckpt_path={trained['ner'][0]}", f"input={text}"], capsys)


def test_registered_classes_load_by_name_wherever_their_class_moved(trained, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    checkpoint = torch.load(trained["ner"][0], weights_only=True)
    moved = "rnnlab.cells.retired.LSTMCell"  # a module that does not exist, as after a move
    for run in (checkpoint["rnnlab"]["config"], checkpoint["hyper_parameters"]):
        run["model"]["cell"]["_target_"] = moved
    checkpoint["rnnlab"]["registered"] = {moved: {"cell": "lstm"}}
    path = tmp_path / "moved.ckpt"
    torch.save(checkpoint, path)
    assert load_checkpoint(path).config["model"]["cell"]["_target_"] == "rnnlab.cells.lstm.LSTMCell"
    text = write_lines(tmp_path / "in.txt", ["EU rejects German call"])
    assert run_predict([f"ckpt_path={path}", f"input={text}"], capsys) == \
        run_predict([f"ckpt_path={trained['ner'][0]}", f"input={text}"], capsys)


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_every_moved_module_has_its_new_home(old: str) -> None:
    assert importlib.util.find_spec(MOVED_MODULES[old]) is not None
    assert importlib.util.find_spec(old) is None  # moved, not copied


def test_checkpoint_of_another_task(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ner, lm = trained["ner"][0], trained["lm"][0]
    text = write_lines(tmp_path / "in.txt", ["a b"])
    message = user_error("eval", [f"ckpt_path={ner}", "task_name=pos", f"paths.output_dir={tmp_path}"], capsys)
    assert f"{ner} holds a ner tagger, not a pos model; drop task_name= or pass a pos checkpoint" in message
    message = user_error("predict", [f"ckpt_path={lm}", f"input={text}"], capsys)
    assert "holds a lm language model; set mode= to one of ('generate', 'score')" in message
    message = user_error("predict", [f"ckpt_path={ner}", f"input={text}", "mode=score"], capsys)
    assert "holds a ner tagger; drop mode=: a tagger has no modes" in message
    message = user_error("predict", [f"ckpt_path={trained['classify'][0]}", f"input={text}", "input_format=conll"],
                         capsys)
    assert "input_format=conll is not for a classifier; use input_format=text" in message
    message = user_error("eval", [f"ckpt_path={lm}", "data.format=conll", f"paths.output_dir={tmp_path}"], capsys)
    assert "data.format is not an option of LMDataModule, the data of" in message


def test_unwritable_outputs_fail_before_anything_is_lost(trained, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    text = write_lines(tmp_path / "in.txt", ["a b"])
    blocker = write_lines(tmp_path / "a_file", ["keep me"])
    message = user_error("predict", [f"ckpt_path={trained['ner'][0]}", f"input={text}",
                                     f"output={blocker / 'out.txt'}"], capsys)
    assert f"cannot write output={blocker / 'out.txt'} (Not a directory); choose a writable file" in message
    message = user_error("eval", [f"ckpt_path={trained['ner'][0]}", f"paths.output_dir={blocker / 'run'}"], capsys)
    assert f"cannot create the output directory {blocker / 'run'} (Not a directory); set paths.output_dir=" in message
    # A bad checkpoint is reported before the output file is opened: an earlier output survives.
    user_error("predict", [f"ckpt_path={text}", f"input={text}", f"output={blocker}"], capsys)
    assert blocker.read_text() == "keep me\n"


def test_predict_script_exits_2_with_the_message_only(tmp_path: Path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    result = subprocess.run([sys.executable, str(ROOT / "predict.py"), f"ckpt_path={tmp_path / 'x.ckpt'}",
                             "input=-"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == USER_ERROR_EXIT and result.stdout == ""
    assert not list(tmp_path.iterdir())  # predict.py leaves no run folder or log file behind
    assert result.stderr == (f"error: checkpoint {tmp_path / 'x.ckpt'} not found; pass ckpt_path= a .ckpt file "
                             f"written by train.py, e.g. outputs/<task>/<time>/checkpoints/last.ckpt\n")


def test_predict_into_a_reader_that_stops_early_ends_quietly(trained, tmp_path: Path) -> None:
    # Output far beyond a pipe's buffer, so writing goes on after the reader has closed its end.
    text = write_lines(tmp_path / "in.txt", [" ".join(["London"] * 300)] * 60)
    with subprocess.Popen([sys.executable, str(ROOT / "predict.py"), f"ckpt_path={trained['ner'][0]}",
                           f"input={text}", "batch_size=1"], cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:
        assert process.stdout.readline().endswith(b"\n")  # like `| head -1`
        process.stdout.close()
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=300) == BROKEN_PIPE_EXIT
    assert stderr == ""


def test_attention_checkpoint_evaluates_predicts_n_best_and_plots_from_a_fresh_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_multi30k(tmp_path / "data")
    train(compose_train(["task=translation", "data.min_freq=1", "model=bilstm", "model/attention=general",
                         "model.decoder.attention.input_feeding=true", *TINY, f"paths.data_dir={data}"],
                        tmp_path / "run"))
    checkpoint = tmp_path / "model" / "model.ckpt"
    checkpoint.parent.mkdir()
    shutil.copy(tmp_path / "run" / "checkpoints" / "best.ckpt", checkpoint)
    shutil.rmtree(tmp_path / "run")
    assert torch.load(checkpoint, weights_only=True)["rnnlab"]["implementations"]["attention score"] == "general"
    stem = data / "multi30k" / "test_2016_flickr"
    assert "test_2016_flickr/bleu" in run_eval([f"ckpt_path={checkpoint}", f"input={stem}"], tmp_path / "eval")
    source = write_lines(tmp_path / "in.de", [GERMAN[0], "", GERMAN[1]])
    plots = tmp_path / "maps"
    common = [f"ckpt_path={checkpoint}", f"input={source}", "max_length=5"]
    best = run_predict([*common, "beam_size=3", f"attention_plot={plots}"], capsys).split("\n")
    assert len(best) == 4 and best[1] == "" and best[3] == ""
    assert sorted(path.name for path in plots.iterdir()) == ["00001.png", "00003.png"]
    assert (plots / "00001.png").read_bytes().startswith(b"\x89PNG")
    n_best = run_predict([*common, "beam_size=3", "n_best=2"], capsys).split("\n")
    assert len(n_best) == 7 and n_best[2:4] == ["", ""]  # 2 lines per input, the empty input's empty
    scores = [float(line.split("\t")[0]) for line in n_best[:2]]
    assert scores[0] >= scores[1] and n_best[0].split("\t")[1] == best[0]
    assert "set beam_size >= 4" in user_error("predict", [*common, "beam_size=3", "n_best=4"], capsys)


def test_attention_plot_needs_a_model_with_attention(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    checkpoint, _, test_only = trained["translation"]
    source = write_lines(tmp_path / "in.de", [GERMAN[0]])
    message = user_error("predict", [f"ckpt_path={checkpoint}", f"input={source}", f"attention_plot={tmp_path}"],
                         capsys)
    assert "attention_plot=" in message and "model/attention=none" in message
