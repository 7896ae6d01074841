"""Streamed tagging and classification setup: the vocabularies, splits, rows and batches of the list-based path;
errors name file:line; and (slow) benchmarks/large_files.py's memory bound."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import pytest

from conftest import CONLL_TRAIN, ROOT, write_conll
from rnnlab.data.classification import ClassificationDataModule
from rnnlab.data.errors import DataError
from rnnlab.data.readers import read_conll, read_conllu
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.data.tagging import TaggingDataModule
from rnnlab.data.vocab import Vocabulary

SCRIPT = ROOT / "benchmarks" / "large_files.py"
spec = importlib.util.spec_from_file_location("large_files_benchmark", SCRIPT)
large_files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(large_files)

SPLITS = ("train", "validation", "test")


def reference_setup(data: TaggingDataModule, splits: dict[str, list[dict]]) -> tuple[Vocabulary, ...]:
    """The vocabularies and tables as setup built them from whole lists before it streamed."""
    words = {split: [[data._normalise(w) for w in ex["tokens"]] for ex in splits[split]] for split in SPLITS}
    vocab = Vocabulary.build(words["train"], min_freq=data.min_freq)
    chars = Vocabulary.build(w for ex in splits["train"] for w in ex["tokens"]) if data.max_word_length else None
    train_tags = Vocabulary.build((ex["tags"] for ex in splits["train"]), specials=())
    unseen = {split: Counter(t for ex in splits[split] for t in ex["tags"] if t not in train_tags)
              for split in SPLITS[1:]}
    tags = Vocabulary([*train_tags.items, *sorted(set().union(*unseen.values()))], unk=None)
    unseen_counts = {split: counts for split, counts in unseen.items() if counts}
    return vocab, chars, tags, unseen_counts


def reference_table(data: TaggingDataModule, examples: list[dict]) -> datasets.Dataset:
    table = datasets.Dataset.from_list(examples)
    return table.map(data.encoder(), batched=True, remove_columns=table.column_names)


def check_same_as_lists(data: TaggingDataModule, splits: dict[str, list[dict]]) -> None:
    data.setup()
    vocab, chars, tags, unseen = reference_setup(data, splits)
    assert data.vocab.items == vocab.items and data.tags.items == tags.items
    assert (data.chars.items if data.chars else None) == (chars.items if chars else None)
    assert data.unseen_tag_counts == unseen
    assert list(map(dict.items, data.unseen_tag_counts.values())) == list(map(dict.items, unseen.values()))
    for split in SPLITS:
        expected = reference_table(data, splits[split])
        assert data.datasets[split].features == expected.features
        assert data.datasets[split].to_list() == expected.to_list()
    collate = data.collate_fn()
    sampler = BucketBatchSampler(expected_lengths := reference_table(data, splits["train"])["length"],
                                 data.batch_size, shuffle=True, seed=data.seed)
    rows = reference_table(data, splits["train"])
    expected_batches = [collate([rows[i] for i in batch]) for batch in sampler]
    batches = list(data.train_dataloader())
    assert len(batches) == len(expected_batches) and len(expected_lengths) == len(rows)
    for batch, expected in zip(batches, expected_batches):
        assert batch.keys() == expected.keys()
        assert all((batch[key] == expected[key]).all() for key in batch)


@pytest.mark.parametrize("options", [{}, {"lowercase": True, "min_freq": 2, "max_word_length": 6}])
def test_streamed_conll_setup_matches_the_list_based_path(tmp_path: Path, options: dict) -> None:
    root = tmp_path / "data"
    root.mkdir()
    for seed, (split, count) in enumerate({"train": 300, "validation": 40, "test": 40}.items()):
        large_files.write_conll(root / f"{split}.txt", count, seed)
    # A tag train never has: its gold spans must still be counted, and tagged after the train tags.
    with open(root / "test.txt", "a", encoding="utf-8") as handle:
        handle.write("\nw1 NN B-NP B-EVENT\nw2 NN I-NP I-EVENT\n")
    files = {split: str(root / f"{split}.txt") for split in SPLITS}
    data = TaggingDataModule("synthetic", "", files, batch_size=8, seed=3, **options)
    check_same_as_lists(data, {split: list(read_conll(files[split], 0, -1)) for split in SPLITS})
    assert "B-EVENT" in data.tags and "test" in data.unseen_tag_counts


def test_streamed_conllu_setup_matches_the_list_based_path(tmp_path: Path) -> None:
    from conftest import write_conllu

    root = write_conllu(tmp_path)
    files = {"train": "en_ewt-ud-train.conllu.gz", "validation": "en_ewt-ud-dev.conllu.gz",
             "test": "en_ewt-ud-test.conllu.gz"}
    data = TaggingDataModule("ud", "ud_english_ewt", files, format="conllu", tag_column=3, data_dir=str(root),
                             batch_size=1, max_word_length=4)
    splits = {split: list(read_conllu(root / "ud_english_ewt" / name)) for split, name in files.items()}
    check_same_as_lists(data, splits)


@pytest.mark.parametrize("split_file", ["eng.train", "eng.testb"])
def test_a_bad_line_anywhere_stops_setup_naming_file_and_line(tmp_path: Path, split_file: str) -> None:
    bad = CONLL_TRAIN + "\nstray\n"  # one column, after three good sentences
    root = write_conll(tmp_path, train=bad if split_file == "eng.train" else CONLL_TRAIN,
                       test=bad if split_file == "eng.testb" else None)
    data = TaggingDataModule("conll2003", "conll2003", {"train": "eng.train", "validation": "eng.testa",
                                                        "test": "eng.testb"}, tag_column=3, data_dir=str(tmp_path))
    line = bad.splitlines().index("stray") + 1
    with pytest.raises(DataError, match=rf"{split_file}:{line}: expected 4 whitespace-separated columns"):
        data.setup()


def test_an_empty_split_is_named_before_anything_is_read(tmp_path: Path) -> None:
    root = write_conll(tmp_path, dev="-DOCSTART- -X- -X- O\n\n")
    data = TaggingDataModule("conll2003", "conll2003", {"train": "eng.train", "validation": "eng.testa",
                                                        "test": "eng.testb"}, tag_column=3, data_dir=str(root))
    with pytest.raises(DataError, match="the validation split .eng.testa. holds no example"):
        data.setup()


@pytest.mark.slow
def test_setup_of_500k_sentences_holds_at_most_twice_the_encoded_data(tmp_path: Path) -> None:
    output = subprocess.run([sys.executable, str(SCRIPT), "--sentences", "500000", "--work", str(tmp_path)],
                            check=True, capture_output=True, text=True).stdout
    report = json.loads(output)
    assert report["sentences"]["train"] == 500_000
    assert report["peak_minus_baseline_over_encoded"] <= 2


# ----------------------------------------------------------------- classification
def reference_split(count: int, seed: int, dev_fraction: float, test_fraction: float, num_folds: int | None,
                    fold: int) -> dict[str, list[int]]:
    """The positions of each split as the seeded split of a whole list gave them before it streamed."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    if num_folds is not None:
        bounds = [len(order) * k // num_folds for k in range(num_folds + 1)]
        test, rest = order[bounds[fold]:bounds[fold + 1]], order[:bounds[fold]] + order[bounds[fold + 1]:]
    else:
        cut = len(order) - round(test_fraction * len(order))
        test, rest = order[cut:], order[:cut]
    dev_size = round(dev_fraction * len(rest))
    return {"train": sorted(rest[dev_size:]), "validation": sorted(rest[:dev_size]), "test": sorted(test)}


def reference_splits(data: ClassificationDataModule) -> dict[str, list[dict]]:
    """The splits as lists, read whole and split as before the files streamed."""
    read = {key: [{**ex, "label": key} if data.format == "lines" else ex for ex in data.read(path)]
            for key, path in data.files.items()}
    options = data.split_options
    if options["num_folds"] is None and set(read) == set(SPLITS):
        return read
    if options["num_folds"] is None and set(read) == {"train", "test"}:
        parts = reference_split(len(read["train"]), **{**options, "test_fraction": 0.0})
        return {"train": [read["train"][i] for i in parts["train"]],
                "validation": [read["train"][i] for i in parts["validation"]], "test": read["test"]}
    pooled = [example for key in data.files for example in read[key]]
    return {split: [pooled[i] for i in positions]
            for split, positions in reference_split(len(pooled), **options).items()}


def labelled_files(root: Path, case: str) -> dict[str, str]:
    """Synthetic files: ``LABEL sentence`` by split (all three, or train and test), or bare sentences by label."""
    sizes = {"pooled": {"neg": 170, "pos": 130}, "train_test": {"train": 250, "test": 30}}.get(
        case, {"train": 250, "validation": 30, "test": 30})
    for seed, (key, count) in enumerate(sizes.items()):
        large_files.write_labelled(root / key, count, seed, None if case == "pooled" else large_files.LABELS)
    return {key: str(root / key) for key in sizes}


@pytest.mark.parametrize("case, options", [
    ("splits", {}), ("splits", {"lowercase": True, "min_freq": 2, "labels": None}), ("train_test", {}),
    ("pooled", {}), ("pooled", {"num_folds": 3, "fold": 1, "split_seed": 5}), ("pooled", {"test_fraction": 0.0}),
])
def test_streamed_classification_setup_matches_the_list_based_path(tmp_path: Path, case: str,
                                                                   options: dict) -> None:
    files = labelled_files(tmp_path, case)
    data = ClassificationDataModule(
        "synthetic", "", files, format="lines" if case == "pooled" else "label_text", dev_fraction=0.2,
        **{"labels": list(files) if case == "pooled" else large_files.LABELS, **options})
    data.setup()
    splits = reference_splits(data)
    assert data.read_splits() == splits  # the same examples in each split, in the same order
    vocab = Vocabulary.build(([data._tokens(ex["text"]) for ex in splits["train"]]), min_freq=data.min_freq)
    assert data.vocab.items == vocab.items
    assert data.labels.items == (data.declared or sorted({ex["label"] for ex in splits["train"]}))
    for split in SPLITS:
        expected = reference_table(data, splits[split])
        assert data.datasets[split].features == expected.features
        assert data.datasets[split].to_list() == expected.to_list()


def test_a_bad_label_in_a_streamed_split_names_file_and_line(tmp_path: Path) -> None:
    files = labelled_files(tmp_path, "splits")
    with open(files["test"], "a", encoding="utf-8") as handle:
        handle.write("7 w1 w2\n")
    data = ClassificationDataModule("synthetic", "", files, labels=large_files.LABELS)
    with pytest.raises(DataError, match=rf"{files['test']}:31: label '7' is not one of the classes"):
        data.setup()


@pytest.mark.slow
def test_setup_of_1m_pooled_sentences_holds_at_most_twice_the_encoded_data(tmp_path: Path) -> None:
    # MR's layout: the DataModule pools and splits the files, the path that held every example before streaming.
    output = subprocess.run([sys.executable, str(SCRIPT), "--kind", "pooled", "--sentences", "1000000", "--work",
                             str(tmp_path)], check=True, capture_output=True, text=True).stdout
    report = json.loads(output)
    assert sum(report["sentences"].values()) == 1_000_000
    assert report["peak_minus_baseline_over_encoded"] <= 2
