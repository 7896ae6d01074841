"""LM token streams on disk: the same ids as reading the text into lists, the cache's key, corruption."""

from __future__ import annotations

import gzip
import json
import logging
import math
from itertools import chain
from pathlib import Path

import pytest
import torch

from rnnlab.data import token_streams
from rnnlab.data.errors import DataError
from rnnlab.data.lm import SPECIALS, LMDataModule, read_text
from rnnlab.data.special import BOS, EOS, IGNORE_INDEX
from rnnlab.data.vocab import Vocabulary

# Ties in frequency, words spelt like the specials, tabs, Windows line endings, empty and blank lines.
TEXT = ("the cat sat on the mat\r\n\n  \t \nthe <unk> ate\tthe cat <eos>\n"
        "a dog sat on a mat\nzebra Zebra éclair\nb b c\n")
SPLIT_FILES = {"train": "train.txt.gz", "validation": "valid.txt", "test": "test.txt"}


def write_corpus(root: Path, train: str = TEXT, other: str = "the cat\n\nan unseen word\n") -> Path:
    folder = root / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / SPLIT_FILES["train"], "wt", encoding="utf-8", newline="") as handle:
        handle.write(train)
    (folder / SPLIT_FILES["validation"]).write_text(other, encoding="utf-8")
    (folder / SPLIT_FILES["test"]).write_text(train + other, encoding="utf-8")
    return root


def datamodule(root: Path, **options) -> LMDataModule:
    return LMDataModule("corpus", "corpus", SPLIT_FILES, data_dir=str(root), cache_dir=str(root / "cache"),
                        batch_size=3, eval_batch_size=2, bptt=4, **options)


def reference(folder: Path, min_freq: int = 1, max_size: int | None = None) -> tuple[Vocabulary, dict]:
    """What the data module did before the streams moved to disk: Python lists, then one int64 tensor."""
    sentences = {split: read_text(folder / name) for split, name in SPLIT_FILES.items()}
    vocab = Vocabulary.build((s["tokens"] for s in sentences["train"]), min_freq=min_freq, specials=SPECIALS,
                             max_size=max_size)
    streams = {split: torch.tensor(list(chain.from_iterable([vocab[BOS], *vocab.encode(s["tokens"]), vocab[EOS]]
                                                            for s in split_sentences)))
               for split, split_sentences in sentences.items()}
    return vocab, streams


def reference_layout(stream: torch.Tensor, num_columns: int, pad_id: int, bos_id: int):
    """The column layout as it was computed before windows were cut lazily: ``(B, L)`` inputs and targets."""
    inputs, targets = stream[:-1], stream[1:].masked_fill(stream[1:] == bos_id, IGNORE_INDEX)
    length = math.ceil(inputs.numel() / num_columns)
    padding = length * num_columns - inputs.numel()
    inputs = torch.cat([inputs, inputs.new_full((padding,), pad_id)])
    targets = torch.cat([targets, targets.new_full((padding,), IGNORE_INDEX)])
    return inputs.view(num_columns, length), targets.view(num_columns, length)


def opened(dm: LMDataModule) -> tuple[list[str], dict[str, list[int]]]:
    dm.setup()
    return dm.vocab.items, {split: dm.streams[split].tolist() for split in ("train", "validation", "test")}


@pytest.mark.parametrize("min_freq, max_size", [(1, None), (2, None), (1, 9)])
def test_stream_and_vocabulary_equal_the_list_reading(tmp_path: Path, min_freq: int, max_size: int | None) -> None:
    root = write_corpus(tmp_path)
    dm = datamodule(root, min_freq=min_freq, max_size=max_size)
    items, streams = opened(dm)
    vocab, expected = reference(root / "corpus", min_freq, max_size)
    assert items == vocab.items
    assert streams == {split: stream.tolist() for split, stream in expected.items()}
    for split, batch_size in (("train", 3), ("test", 2), ("validation", 5)):
        inputs, targets = reference_layout(expected[split], batch_size, vocab.pad_id, vocab[BOS])
        windows = list(dm.windows(split, batch_size))
        assert torch.equal(torch.cat([w["tokens"] for w in windows], dim=1), inputs)
        assert torch.equal(torch.cat([w["targets"] for w in windows], dim=1), targets)


def test_vocabulary_caps_by_count_and_size(tmp_path: Path) -> None:
    root = write_corpus(tmp_path)
    by_count, _ = opened(datamodule(root, min_freq=2))
    assert by_count == [*SPECIALS, "the", "a", "b", "cat", "mat", "on", "sat"]  # seen twice or more; ties by name
    by_size, _ = opened(datamodule(root, max_size=6))
    assert by_size == [*SPECIALS, "the", "a"]


def test_second_setup_reads_the_cache_and_equals_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_corpus(tmp_path)
    first = opened(datamodule(root))
    monkeypatch.setattr(token_streams, "build_streams", lambda *args: pytest.fail("the cache was rebuilt"))
    assert opened(datamodule(root)) == first
    (entry,) = (root / "cache").iterdir()
    assert sorted(path.name for path in entry.iterdir()) == ["manifest.json", "test.int32", "train.int32",
                                                             "validation.int32", "vocab.json"]


def test_cache_is_rebuilt_when_a_file_or_an_option_changes(tmp_path: Path) -> None:
    root = write_corpus(tmp_path)
    items, streams = opened(datamodule(root))
    (root / "corpus" / SPLIT_FILES["validation"]).write_text("the dog\n")
    changed_file = opened(datamodule(root))
    assert changed_file[1]["validation"] == [items.index(w) for w in (BOS, "the", "dog", EOS)]
    assert opened(datamodule(root, min_freq=2))[0] != items
    assert opened(datamodule(root, max_size=6))[0] != items
    assert len(list((root / "cache").iterdir())) == 4  # one entry per content and options


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest"])
def test_corrupt_cache_is_rebuilt_with_a_warning_never_read(tmp_path: Path, damage: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    root = write_corpus(tmp_path)
    expected = opened(datamodule(root))
    (entry,) = (root / "cache").iterdir()
    train = entry / "train.int32"
    data = bytearray(train.read_bytes())
    if damage == "truncate":
        train.write_bytes(data[:-4])
    elif damage == "flip":
        data[4] ^= 1  # one id changes; the size does not
        train.write_bytes(bytes(data))
    else:
        (entry / "manifest.json").write_text('{"files": ')
    with caplog.at_level(logging.WARNING, logger="rnnlab.data.token_streams"):
        assert opened(datamodule(root)) == expected
    assert "corrupt" in caplog.text and "rebuilding" in caplog.text
    assert token_streams.open_streams(entry).counts["train"]["tokens"] == len(expected[1]["train"])


def test_interrupted_build_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_corpus(tmp_path)

    def interrupted(words, vocab, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(token_streams, "write_ids", interrupted)
    with pytest.raises(KeyboardInterrupt):
        datamodule(root).setup()
    assert list((root / "cache").iterdir()) == []  # nothing left under the entry's name, nor half-built
    monkeypatch.undo()
    assert opened(datamodule(root)) == opened(datamodule(root))


def test_counts_in_the_manifest(tmp_path: Path) -> None:
    root = write_corpus(tmp_path)
    dm = datamodule(root)
    dm.setup()
    (entry,) = (root / "cache").iterdir()
    counts = json.loads((entry / "manifest.json").read_text())["counts"]
    assert counts["train"] == {"sentences": 5, "tokens": 5 * 2 + 24, "targets": 5 + 24, "unk": 1}
    assert all(counts[split]["targets"] == dm.num_targets(split) for split in counts)


def test_empty_split_and_bad_encoding_are_named(tmp_path: Path) -> None:
    root = write_corpus(tmp_path, other="\n  \n")
    with pytest.raises(DataError, match=r"validation split .* data.files.validation"):
        datamodule(root).setup()
    (root / "corpus" / SPLIT_FILES["validation"]).write_bytes("le café\nok\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"valid\.txt:1: .*encoding"):
        datamodule(root).setup()
    assert "éclair".encode().decode("latin-1") in opened(datamodule(root, encoding="latin-1"))[0]  # a new key



def hub_datamodule(cache: Path) -> LMDataModule:
    return LMDataModule("corpus", "corpus", SPLIT_FILES, data_dir=None, cache_dir=str(cache),
                        hub={"path": "someone/corpus", "name": "v1", "text": "line"})


def test_hub_splits_give_the_same_streams_as_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub path, with ``load_dataset`` answering from memory: its text column read, its fingerprints keyed."""
    import datasets

    root = write_corpus(tmp_path)
    expected = opened(datamodule(root))
    folder = root / "corpus"
    texts = {"train": gzip.open(folder / SPLIT_FILES["train"], "rt", newline="").read(),
             "validation": (folder / SPLIT_FILES["validation"]).read_text(),
             "test": (folder / SPLIT_FILES["test"]).read_text()}
    hub = datasets.DatasetDict({split: datasets.Dataset.from_dict({"id": list(range(len(lines))), "line": lines})
                                for split, lines in ((split, text.splitlines()) for split, text in texts.items())})
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None: hub)
    assert opened(hub_datamodule(tmp_path / "hub-cache")) == expected
    hub["validation"] = datasets.Dataset.from_dict({"line": ["the dog"]})
    validation = opened(hub_datamodule(tmp_path / "hub-cache"))[1]["validation"]
    assert validation == [expected[0].index(word) for word in (BOS, "the", "dog", EOS)]  # a new fingerprint
