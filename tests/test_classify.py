"""Sentence classification: readers, splits, the DataModule's bad inputs, CNN pooling, padding, training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF, SHARED_DATA, compose_train, skip_without_vectors
from rnnlab.data.classification import ClassificationDataModule, read_labelled, split_indices
from rnnlab.data.errors import DataError
from rnnlab.encoders.cnn import CNNEncoder
from rnnlab.run.pipeline import build, train
from rnnlab.tasks.classification import ClassificationModule
from test_sst_trees import write_trees

SST_LINES = ["1 a stirring , funny and finally transporting film", "0 apparently reassembled from the floor .",
             "1 great fun", "0 dull", "1 the best movie of the year , by far", "0 not worth a minute of your time"]
MR_POS = ["a gorgeous , witty , seductive movie .", "the café scene is simply wonderful .", "a masterpiece"]
MR_NEG = ["a dull , lifeless mess .", "the plot is an ungainly, déjà vu affair .", "boring", "awful … truly"]


def write_sst(root: Path, subdir: str = "sst2", prefix: str = "stsa.binary", lines: list[str] = SST_LINES) -> Path:
    """Writes an SST-style folder ``root/subdir`` (the same sentences in every split) and returns ``root``."""
    (root / subdir).mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        (root / subdir / f"{prefix}.{split}").write_text("\n".join(lines) + "\n")
    return root


def write_mr(root: Path, encoding: str = "cp1252") -> Path:
    (root / "mr").mkdir(parents=True, exist_ok=True)
    for name, lines in (("rt-polarity.pos", MR_POS * 4), ("rt-polarity.neg", MR_NEG * 4)):
        (root / "mr" / name).write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return root


def mr_datamodule(root: Path, **kwargs) -> ClassificationDataModule:
    cfg = OmegaConf.to_container(compose_train(["task=classify", "data=mr"], root).data)
    cfg.pop("_target_")
    return ClassificationDataModule(**{**cfg, "data_dir": str(root), "seed": 0, **kwargs})


def labelled(tmp_path: Path, text: str, name: str = "train.tsv", **kwargs) -> ClassificationDataModule:
    path = tmp_path / name
    path.write_text(text)
    kwargs = {"format": "tsv", **kwargs}
    return ClassificationDataModule(name="x", subdir="", files={"train": str(path)}, batch_size=2, **kwargs)


# ----------------------------------------------------------------- end to end
@pytest.mark.parametrize("model", ["bilstm", "lstm", "cnn"])
def test_train_fast_dev_run(model: str, tmp_path: Path) -> None:
    data_dir = write_sst(tmp_path / "data")
    cfg = compose_train(["task=classify", "data=sst2", f"model={model}", "debug=fast", f"paths.data_dir={data_dir}"], tmp_path)
    metrics = train(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0 and 0.0 <= metrics["test/macro_f1"] <= 1.0
    assert "val/acc_best" in metrics and "val/macro_f1" in metrics
    assert json.loads((tmp_path / "vocab.json").read_text())["labels"]["items"] == ["0", "1"]


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("sst*.yaml")))
def test_experiment_recipes_run(experiment: str, tmp_path: Path) -> None:
    data_dir = write_trees(write_sst(write_sst(tmp_path / "data"), "sst5", "stsa.fine"))
    cfg = compose_train([f"experiment={experiment}", "debug=fast", f"paths.data_dir={data_dir}"], tmp_path)
    skip_without_vectors(cfg)
    dataset = experiment.split("_")[0]  # sst2 | sst5, as sentences or as trees of that granularity
    assert cfg.task.name == "classify"
    assert dataset in (cfg.data.name, {"binary": "sst2", "fine": "sst5"}.get(cfg.data.get("granularity")))
    assert 0.0 <= train(cfg)["test/acc"] <= 1.0


def test_classify_on_mr_learns_the_fixture(tmp_path: Path) -> None:
    """A few epochs of the CNN on MR-style cp1252 files; train = memorised, so the loss falls."""
    data_dir = write_mr(tmp_path / "data")
    cfg = compose_train(["task=classify", "data=mr", "model=cnn", f"paths.data_dir={data_dir}", "logger=[]",
                         "trainer.max_epochs=8", "task.optimizer.lr=0.01", "data.batch_size=4"], tmp_path)
    metrics = train(cfg)
    assert metrics["train/loss"] < 0.3
    assert 0.0 <= metrics["test/acc"] <= 1.0


# ----------------------------------------------------------------- models
def classifier(model: list[str]) -> ClassificationModule:
    cfg = compose_train(["task=classify", "data=sst2", *model, "model.embedding_dim=8", "model.head_hidden=6"], Path("/tmp"))
    vocab = {"items": ["<pad>", "<unk>", *"abcdefgh"], "unk": "<unk>"}
    return ClassificationModule(OmegaConf.to_container(cfg.model, resolve=True), vocab, {"items": ["0", "1", "2"], "unk": None})


@pytest.mark.parametrize("model", [["model=bilstm"], ["model=bilstm", "model/cell=peephole"],
                                   ["model=birnn", "model.encoder.num_layers=2"], ["model=lstm"],
                                   ["model=bilstm", "model/cell=cifg", "model.encoder.style=independent"],
                                   ["model=bilstm", "model.pooling=max"],
                                   ["model=cnn"]])
def test_sentence_logits_do_not_depend_on_padding(model: list[str]) -> None:
    """A sentence alone gives the same logits as in a batch with longer sentences (eval mode)."""
    torch.manual_seed(0)
    module = classifier([*model, "model.encoder.hidden_size=5"] if model != ["model=cnn"]
                        else [*model, "model.encoder.num_filters=4"]).eval()
    alone = torch.tensor([[2, 3, 4]])
    batch = torch.tensor([[5, 6, 7, 8, 9, 2], [2, 3, 4, 0, 0, 0], [3, 0, 0, 0, 0, 0]])
    mask = batch != 0
    with torch.no_grad():
        single = module(alone, torch.ones_like(alone, dtype=torch.bool))
        batched = module(batch, mask)
        padded_alone = module(torch.tensor([[2, 3, 4, 0, 0]]), torch.tensor([[True] * 3 + [False] * 2]))
    torch.testing.assert_close(batched[1:2], single)
    torch.testing.assert_close(padded_alone, single)


def test_birnn_sentence_is_last_forward_and_first_backward_state() -> None:
    torch.manual_seed(0)
    module = classifier(["model=bilstm", "model.encoder.hidden_size=5"]).eval()
    tokens = torch.tensor([[2, 3, 4, 0], [5, 6, 7, 8]])
    encoded = module.encoder(module.embedder(tokens), tokens != 0)
    torch.testing.assert_close(encoded.sentence[0, :5], encoded.outputs[0, 2, :5])  # last real token
    torch.testing.assert_close(encoded.sentence[:, 5:], encoded.outputs[:, 0, 5:])  # first token


def test_cnn_max_pooling_ignores_padding() -> None:
    """Huge values at padding positions never win the max; short sentences still have windows."""
    torch.manual_seed(0)
    encoder = CNNEncoder(input_size=3, filter_widths=[2, 5], num_filters=4, activation="identity")
    x = torch.randn(2, 6, 3)
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    clean = encoder(x, mask).sentence
    x_noisy = x.clone()
    x_noisy[1, 2:] = 1e4
    torch.testing.assert_close(encoder(x_noisy, mask).sentence, clean)
    torch.testing.assert_close(encoder(x[1:, :2], mask[1:, :2]).sentence, clean[1:])
    # By hand: width 2, wide convolution of a 2-token sentence = windows [pad, t0], [t0, t1], [t1, pad].
    conv = encoder.convolutions[0]
    windows = torch.stack([torch.cat([torch.zeros(1, 3), x[1, :1]]), x[1, :2], torch.cat([x[1, 1:2], torch.zeros(1, 3)])])
    maps = torch.einsum("wki,fik->wf", windows, conv.weight) + conv.bias  # (3, F)
    torch.testing.assert_close(clean[1, :4], maps.max(dim=0).values)
    assert encoder.get_output_dim() == 8
    assert torch.equal(encoder(x, torch.zeros_like(mask)).sentence, torch.zeros(2, 8))  # empty sentences


def test_cnn_rejects_bad_hyperparameters() -> None:
    with pytest.raises(ValueError, match="filter_widths"):
        CNNEncoder(3, filter_widths=[0, 2])
    with pytest.raises(ValueError, match="activation"):
        CNNEncoder(3, activation="gelu")


# ----------------------------------------------------------------- data
def test_mr_loads_with_cp1252_and_fails_clearly_without(tmp_path: Path) -> None:
    root = write_mr(tmp_path)
    module = mr_datamodule(root)
    module.setup()
    assert module.labels.items == ["neg", "pos"]
    assert sum(len(d) for d in module.datasets.values()) == 4 * (len(MR_POS) + len(MR_NEG))
    assert "café" in module.vocab and "…" in module.vocab
    with pytest.raises(DataError, match=r"rt-polarity\.(neg|pos):\d+: cannot decode .*encoding=cp1252"):
        mr_datamodule(root, encoding="utf-8").setup()


def test_seeded_split_is_deterministic_and_folds_partition_the_data() -> None:
    def split(**options) -> dict[str, list[int]]:
        return {name: positions.tolist() for name, positions in split_indices(23, **options).items()}

    first = split(seed=3)
    assert first == split(seed=3) and first != split(seed=4)
    assert sorted(i for part in first.values() for i in part) == list(range(23))
    assert all(part == sorted(part) for part in first.values())  # each split keeps the examples' order
    assert [len(first[s]) for s in ("train", "validation", "test")] == [19, 2, 2]
    folds = [split(seed=3, num_folds=5, fold=k) for k in range(5)]
    assert sorted(i for part in folds for i in part["test"]) == list(range(23))  # each in exactly one test fold
    for part in folds:
        assert not set(part["test"]) & set(part["train"] + part["validation"])
        assert len(part["train"]) + len(part["validation"]) + len(part["test"]) == 23
    with pytest.raises(ValueError, match="fold"):
        split_indices(23, num_folds=5, fold=5)


def test_mr_folds_through_the_datamodule(tmp_path: Path) -> None:
    root = write_mr(tmp_path)
    tests = []
    for fold in range(3):
        module = mr_datamodule(root, num_folds=3, fold=fold)
        module.setup()
        tests += module.datasets["test"]["input_ids"]
    assert len(tests) == 4 * (len(MR_POS) + len(MR_NEG))


def test_train_and_test_files_only_hold_out_validation_from_train(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"t": f"w{i} x", "y": i % 2}) + "\n" for i in range(20)))
    (tmp_path / "b.jsonl").write_text('{"t": "x y", "y": 1}\n\n{"t": "z", "y": 0}\n')
    module = ClassificationDataModule(name="x", subdir="", format="jsonl", text_column="t", label_column="y",
                                      files={"train": str(tmp_path / "a.jsonl"), "validation": None,
                                             "test": str(tmp_path / "b.jsonl")}, dev_fraction=0.25)
    module.setup()
    assert [len(module.datasets[s]) for s in ("train", "validation", "test")] == [15, 5, 2]
    assert module.labels.items == ["0", "1"]


def test_tsv_and_csv_with_header_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('label,text\npos,"good, really"\n\n   \nneg,bad\n')
    assert list(read_labelled(path, "csv", text_column="text", label_column="label", header=True)) == [
        {"text": "good, really", "label": "pos", "where": f"{path}:2"},
        {"text": "bad", "label": "neg", "where": f"{path}:5"}]
    path = tmp_path / "x.tsv"
    path.write_text("good film\tpos\r\nbad\tneg\r\n")
    assert [e["label"] for e in read_labelled(path, "tsv", text_column=0, label_column=1)] == ["pos", "neg"]


def test_label_outside_declared_classes_names_file_and_line(tmp_path: Path) -> None:
    root = write_sst(tmp_path, lines=[*SST_LINES[:3], "2 neutral at best", *SST_LINES[3:]])
    cfg = compose_train(["task=classify", "data=sst2", f"paths.data_dir={root}"], tmp_path)
    with pytest.raises(DataError, match=r"stsa\.binary\.train:4: label '2' is not one of the classes \['0', '1'\]"):
        build(cfg)


def test_label_unseen_in_train_without_declared_classes(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("0\ta\n1\tb\n")
    (tmp_path / "test.tsv").write_text("0\ta\n7\tb\n")
    module = ClassificationDataModule(name="x", subdir="", format="tsv", text_column=1, label_column=0,
                                      files={"train": str(tmp_path / "train.tsv"), "test": str(tmp_path / "test.tsv")})
    with pytest.raises(DataError, match=r"test\.tsv:2: label '7' .* never occurs in train; declare .*data\.labels"):
        module.setup()


def test_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train\.tsv:3: expected 2 tsv columns like the first line, found 3"):
        labelled(tmp_path, "0\tfine\n1\tgood\n1\tgood\textra\n").setup()
    with pytest.raises(DataError, match=r"train\.csv:2: expected 2 csv columns"):
        labelled(tmp_path, "0,fine\n1\n", name="train.csv", format="csv").setup()


def test_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train\.tsv:2: the example has no text"):
        labelled(tmp_path, "0\tfine\n1\t  \n").setup()
    with pytest.raises(DataError, match=r"x\.jsonl:2: not a JSON object"):
        labelled(tmp_path, '{"text": "a", "label": 1}\n{"text": \n', name="x.jsonl", format="jsonl",
                 text_column="text", label_column="label").setup()
    with pytest.raises(DataError, match=r"x\.jsonl:1: field\(s\) \['label'\] missing"):
        labelled(tmp_path, '{"text": "a"}\n', name="x.jsonl", format="jsonl", text_column="text",
                 label_column="label").setup()
    with pytest.raises(DataError, match=r"x\.csv:1: column 'txt' of data\.text_column not found"):
        labelled(tmp_path, "label,text\n1,a\n", name="x.csv", format="csv", header=True, text_column="txt",
                 label_column="label").setup()
    with pytest.raises(DataError, match=r"train\.tsv:1: .*\[2, 0\] need more than the 2 tsv columns"):
        labelled(tmp_path, "1\tgood\n0\tbad\n", labels=["0", "1"], format="tsv", text_column=2).setup()


def test_non_utf8_file_suggests_encoding_option(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_bytes("1\tcaf\xe9\n".encode("cp1252"))
    module = ClassificationDataModule(name="x", subdir="", format="tsv", files={"train": str(tmp_path / "train.tsv")})
    with pytest.raises(DataError, match=r"train\.tsv:1: cannot decode the file as utf-8.*encoding="):
        module.setup()


def test_missing_sst_without_hub_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(path: str) -> None:
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub")

    monkeypatch.setattr("rnnlab.data.classification.datasets.load_dataset", unreachable)
    cfg = compose_train(["task=classify", "data=sst5", f"paths.data_dir={tmp_path / 'nowhere'}"], tmp_path)
    with pytest.raises(DataError, match=r"sst5.*SetFit/sst5 from the Hub failed.*RNNLAB_DATA_DIR"):
        build(cfg)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "sst2").is_dir(), reason="shared SST-2 copy absent")
def test_real_sst2_and_mr_counts() -> None:
    cfg = compose_train(["task=classify", "data=sst2", f"paths.data_dir={SHARED_DATA}"], Path("/tmp"))
    datamodule, _ = build(cfg)
    assert [len(datamodule.datasets[s]) for s in ("train", "validation", "test")] == [6920, 872, 1821]
    if (SHARED_DATA / "mr").is_dir():
        mr = mr_datamodule(SHARED_DATA)
        mr.setup()
        assert sum(len(d) for d in mr.datasets.values()) == 10662


def test_max_pooling_takes_the_max_over_real_tokens_only() -> None:
    torch.manual_seed(0)
    module = classifier(["model=bilstm", "model.pooling=max", "model.encoder.hidden_size=5"]).eval()
    tokens, mask = torch.tensor([[2, 3, 4, 0]]), torch.tensor([[True, True, True, False]])
    with torch.no_grad():
        outputs = module.encoder(module.embedder(tokens), mask).outputs  # (1, 4, 10)
        torch.testing.assert_close(module(tokens, mask), module.head(outputs[:, :3].amax(1)))
    with pytest.raises(ValueError, match="model.pooling must be one of"):
        classifier(["model=bilstm", "model.pooling=mean"])
