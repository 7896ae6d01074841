"""Streamed tagging setup: the vocabularies, rows and batches of the list-based path; errors name file:line;
and (slow) benchmarks/large_files.py's memory bound."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import pytest

from conftest import CONLL_TRAIN, ROOT, write_conll
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
