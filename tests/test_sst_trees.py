"""Phrase-level SST: the tree reader (every node's label, binary mapping, malformed trees) and its DataModule."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED_DATA, compose_train
from rnnlab.data.classification import SentimentTreeDataModule, read_labelled
from rnnlab.data.errors import DataError
from rnnlab.data.trees import parse_tree, read_tree_examples
from rnnlab.run.pipeline import train

GREAT = "(3 (2 It) (4 (3 (2 is) (4 great)) (2 .)))"
DULL = "(1 (2 A) (0 (1 dull) (2 film)))"
NEUTRAL = "(2 (2 It) (2 (2 is) (2 film)))"  # "It", "is" and "film" repeat phrases of the trees above
TREES = [GREAT, DULL, "", NEUTRAL]  # a blank line is skipped
FILES = {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"}


def write_trees(root: Path, lines: list[str] = TREES) -> Path:
    """Writes an ``sst_trees`` folder (the same trees in every split) and returns ``root``."""
    (root / "sst_trees").mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        (root / "sst_trees" / name).write_text("\n".join(lines) + "\n")
    return root


def trees_datamodule(root: Path, **options) -> SentimentTreeDataModule:
    return SentimentTreeDataModule("sst_trees", "sst_trees", FILES, data_dir=str(root), **options)


def pairs(examples: list[dict]) -> list[tuple[str, str]]:
    return [(example["text"], example["label"]) for example in examples]


# ----------------------------------------------------------------- reader
def test_every_node_has_its_span_and_label_children_first() -> None:
    words, spans = parse_tree(GREAT)
    assert words == ["It", "is", "great", "."]
    assert spans == [(0, 1, "2"), (1, 2, "2"), (2, 3, "4"), (1, 3, "3"), (3, 4, "2"), (1, 4, "4"), (0, 4, "3")]
    assert parse_tree("(4 Wow)") == (["Wow"], [(0, 1, "4")])
    assert parse_tree("(2 (2 8\xa01\\/2))")[0] == ["8\xa01\\/2"]  # a no-break space inside a word (train.txt)


def test_phrases_of_every_node_and_sentences(tmp_path: Path) -> None:
    path = write_trees(tmp_path) / "sst_trees" / "train.txt"
    phrases = list(read_tree_examples(path, phrases=True))
    assert pairs(phrases[:7]) == [("It", "2"), ("is", "2"), ("great", "4"), ("is great", "3"), (".", "2"),
                                  ("is great .", "4"), ("It is great .", "3")]
    assert len(phrases) == 17 and [e["sentence"] for e in phrases].count(True) == 3
    assert phrases[-1]["where"] == f"{path}:4" and phrases[0]["where"] == f"{path}:1"
    assert pairs(read_tree_examples(path)) == [("It is great .", "3"), ("A dull film", "1"), ("It is film", "2")]
    assert pairs(read_labelled(path, "sst_tree")) == pairs(read_tree_examples(path))  # the format of any data


def test_binary_drops_neutral_and_maps_0_1_to_0_and_3_4_to_1(tmp_path: Path) -> None:
    path = write_trees(tmp_path) / "sst_trees" / "train.txt"
    assert pairs(read_tree_examples(path, granularity="binary", phrases=True)) == [
        ("great", "1"), ("is great", "1"), ("is great .", "1"), ("It is great .", "1"),
        ("dull", "0"), ("dull film", "0"), ("A dull film", "0")]
    assert pairs(read_tree_examples(path, granularity="binary")) == [("It is great .", "1"), ("A dull film", "0")]


@pytest.mark.parametrize("line, problem", [
    ("(3 (2 a) (2 b)", "the line ends inside a node: 1 ')' missing"),
    ("(3 (2 a) (2 b)))", "text after the end of the tree at character 16"),
    ("(5 (2 a) (2 b))", "a label 0-4 must follow '(', found '5' at character 2"),
    ("( (2 a))", "a label 0-4 must follow '(', found '(' at character 3"),
    ("(3 a b)", "a node holds one word or child nodes, so 'b' at character 6 is one too many"),
    ("(3 (2 a) b)", "a node holds one word or child nodes, so 'b' at character 10 is one too many"),
    ("(3 a (2 b))", "a node holds one word or child nodes, not both, at character 6"),
    ("(3)", "a node without a word or child nodes ends at character 3"),
    ("3 (2 a)", "a tree starts with '(', found '3' at character 1"),
])
def test_malformed_tree_names_file_line_and_character(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "trees.txt"
    path.write_text(f"{GREAT}\n{line}\n")
    with pytest.raises(DataError) as error:
        list(read_tree_examples(path))
    assert str(error.value).startswith(f"{path}:2: malformed tree: {problem}; each line holds one tree")


# ----------------------------------------------------------------- DataModule
def test_trains_on_phrases_evaluates_on_sentences(tmp_path: Path) -> None:
    splits = trees_datamodule(write_trees(tmp_path)).read_splits()
    assert len(splits["train"]) == 17
    assert pairs(splits["test"]) == pairs(splits["validation"]) == [
        ("It is great .", "3"), ("A dull film", "1"), ("It is film", "2")]


def test_deduplicate_keeps_each_phrase_and_label_once_in_file_order(tmp_path: Path) -> None:
    train = trees_datamodule(write_trees(tmp_path), deduplicate=True).read_splits()["train"]
    assert len(train) == 14  # "It", "is" and "film" (all neutral) are read twice
    assert pairs(train)[:2] == [("It", "2"), ("is", "2")] and train[0]["where"].endswith(":1")
    binary = trees_datamodule(tmp_path, granularity="binary", deduplicate=True).read_splits()
    assert len(binary["train"]) == 7 and pairs(binary["test"]) == [("It is great .", "1"), ("A dull film", "0")]


def test_sentences_only(tmp_path: Path) -> None:
    data = trees_datamodule(write_trees(tmp_path), sentences_only=True, granularity="binary")
    assert pairs(data.read_splits()["train"]) == [("It is great .", "1"), ("A dull film", "0")]


def test_read_file_gives_sentences_and_options_are_checked(tmp_path: Path) -> None:
    root = write_trees(tmp_path)
    assert len(trees_datamodule(root).read_file(root / "sst_trees" / "dev.txt")) == 3
    with pytest.raises(ValueError, match="data.granularity must be one of"):
        trees_datamodule(root, granularity="ternary")


@pytest.mark.parametrize("model", ["bilstm", "cnn"])
def test_phrase_level_training_runs(model: str, tmp_path: Path) -> None:
    data = write_trees(tmp_path / "data")
    cfg = compose_train(["task=classify", "data=sst2", "data=sst_trees", "data.granularity=binary", f"model={model}",
                         "model.embedding_dim=8", "debug=fast", f"paths.data_dir={data}"], tmp_path)
    assert 0.0 <= train(cfg)["test/acc"] <= 1.0


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "sst_trees").is_dir(), reason="no local sst_trees copy")
@pytest.mark.parametrize("granularity, counts", [
    ("fine", {"phrases": 318_582, "distinct": 159_274, "sentences": (8_544, 1_101, 2_210)}),
    ("binary", {"phrases": 98_794, "distinct": 77_616, "sentences": (6_920, 872, 1_821)}),
])
def test_real_sst_trees_counts(granularity: str, counts: dict) -> None:
    def train_size(**options) -> int:
        return len(trees_datamodule(SHARED_DATA, granularity=granularity, **options).read_splits(("train",))["train"])

    assert train_size() == counts["phrases"] and train_size(deduplicate=True) == counts["distinct"]
    splits = trees_datamodule(SHARED_DATA, granularity=granularity, sentences_only=True).read_splits()
    assert tuple(len(splits[split]) for split in FILES) == counts["sentences"]
