"""Readers and the tagging DataModule on tiny files, including the bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import COLUMNS_TRAIN, CONLL_TRAIN, CONLLU_TRAIN, write_conll
from rnnlab.data.classification import read_labelled
from rnnlab.data.errors import DataError
from rnnlab.data.lm import read_text
from rnnlab.data.readers import read_conll, read_conllu
from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.data.tagging import TaggingDataModule
from rnnlab.data.vocab import Vocabulary

CONLL_FILES = {"train": "eng.train", "validation": "eng.testa", "test": "eng.testb"}


def conll_datamodule(root: Path, token_column: int = 0, tag_column: int = 3, **kwargs) -> TaggingDataModule:
    return TaggingDataModule(name="conll2003", subdir="conll2003", files=CONLL_FILES, token_column=token_column,
                             tag_column=tag_column, data_dir=str(root), batch_size=2, **kwargs)


def test_conll_reader_skips_docstart_and_splits_sentences(tmp_path: Path) -> None:
    path = tmp_path / "x.conll"
    path.write_text(CONLL_TRAIN)
    sentences = list(read_conll(path, 0, 3))
    assert [len(s["tokens"]) for s in sentences] == [5, 6, 6]
    assert sentences[1]["tags"][:2] == ["I-PER", "I-PER"]


def test_conll_reader_accepts_crlf_and_whitespace_only_separators(tmp_path: Path) -> None:
    path = tmp_path / "x.conll"
    path.write_bytes(b"a\tO\r\nb\tB-X\r\n\t \r\nc\tO\r\n")
    assert list(read_conll(path, 0, 1)) == [{"tokens": ["a", "b"], "tags": ["O", "B-X"]},
                                      {"tokens": ["c"], "tags": ["O"]}]


@pytest.mark.parametrize("read, text, count", [
    (lambda path: list(read_conll(path, 0, 3)), CONLL_TRAIN.replace("\n\nAnna", "\n\t\nAnna"), 3),
    (read_conllu, CONLLU_TRAIN.replace("\n\n# sent_id = 2", "\n\t\n# sent_id = 2"), 2),
    (lambda path: read_labelled(path, "label_text"), "1 a good film\n\t\n0 a bad one\n", 2),
    (read_text, "a b\n\t\nc d\n", 2),
], ids=["conll", "conllu", "label_text", "text"])
def test_every_reader_reads_crlf_as_lf_and_tab_only_lines_as_blank(read, text: str, count: int,
                                                                    tmp_path: Path) -> None:
    unix, windows = tmp_path / "unix.txt", tmp_path / "windows.txt"
    unix.write_bytes(text.encode())
    windows.write_bytes(text.replace("\n", "\r\n").encode())

    def content(path: Path) -> list[dict]:  # without "where" (file:line), which names the file
        return [{key: value for key, value in example.items() if key != "where"} for example in read(path)]

    assert len(content(unix)) == count and content(windows) == content(unix)


def test_malformed_conll_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.conll"
    path.write_text("UNESCO NNP B-NP I-ORG\npraises VBZ\n")
    with pytest.raises(DataError, match=r"bad\.conll:2: expected 4 .* columns, found 2"):
        list(read_conll(path, 0, 3))


def test_tab_columns_with_ids_comments_and_spaces_in_tokens(tmp_path: Path) -> None:
    path = tmp_path / "x.iob2"
    path.write_text(COLUMNS_TRAIN)
    sentences = list(read_conll(path, 1, 2, delimiter="tab", comment_prefix="#"))
    assert [s["tokens"] for s in sentences] == [["UNESCO", "praises", "Danish", "call", "."],
                                                ["Anna", "Korhonen", "lives", "in", "New York", "."],
                                                ["#", "The", "World", "Bank"]]
    assert sentences[1]["tags"] == ["I-PER", "I-PER", "O", "O", "I-LOC", "O"]


def test_hash_lines_are_tokens_without_a_comment_prefix(tmp_path: Path) -> None:
    path = tmp_path / "x.conll"
    path.write_text("# SYM O\ncall NN O\n")  # a "#" token, as CoNLL-style files hold them
    assert list(read_conll(path, 0, 2)) == [{"tokens": ["#", "call"], "tags": ["O", "O"]}]
    path.write_text("#NFL\tO\nwins\tO\n")  # a hashtag, as WNUT-17 holds them
    assert list(read_conll(path, 0, 1, delimiter="tab"))[0]["tokens"] == ["#NFL", "wins"]


@pytest.mark.parametrize("text, options, expected", [
    (COLUMNS_TRAIN, {"delimiter": "tab"}, r"x:1: expected at least 3 tab-separated columns, found 1 in "
                                          r"'# newdoc id = doc1'; set data.comment_prefix='#' to skip comment lines"),
    (COLUMNS_TRAIN, {"comment_prefix": "#"}, r"x:16: expected 3 whitespace-separated columns, found 4 in "
                                             r"'5\\tNew York\\tI-LOC'; set data.delimiter=tab if tokens contain"),
    (CONLL_TRAIN, {"delimiter": "tab"}, r"x:3: expected at least 3 tab-separated columns, found 1 .*; set "
                                        r"data.delimiter=whitespace if columns are separated by spaces"),
    ("1\t\tO\n", {"delimiter": "tab"}, r"x:1: empty token or tag field in '1\\t\\tO'; fix the line"),
    (COLUMNS_TRAIN, {"delimiter": "tabs"}, r"delimiter='tabs' is no column delimiter; set data.delimiter to one "
                                           r"of whitespace, tab"),
    (COLUMNS_TRAIN, {"comment_prefix": ""}, r"comment_prefix='' is not what comment lines start with; set "
                                            r"data.comment_prefix to a non-empty string"),
], ids=["comments-unset", "whitespace-delimiter", "tab-delimiter", "empty-field", "bad-delimiter", "empty-prefix"])
def test_column_options_errors_name_line_and_option(text: str, options: dict, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text(text)
    with pytest.raises(DataError, match=expected):
        list(read_conll(path, 1, 2, **options))


def test_datamodule_reads_tab_columns_with_comments(tmp_path: Path) -> None:
    root = write_conll(tmp_path, train=COLUMNS_TRAIN, dev=COLUMNS_TRAIN, test=COLUMNS_TRAIN)
    module = conll_datamodule(root, 1, 2, delimiter="tab", comment_prefix="#")
    module.setup()
    assert "New York" in module.vocab and len(module.datasets["train"]) == 3
    with pytest.raises(DataError, match="set data.delimiter to one of whitespace, tab"):
        conll_datamodule(root, delimiter="space")


def test_non_utf8_file_suggests_encoding_option(tmp_path: Path) -> None:
    path = tmp_path / "latin.conll"
    path.write_bytes("caf\xe9 O\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"latin\.conll:1: cannot decode.*encoding=cp1252"):
        list(read_conll(path, 0, 1))
    assert list(read_conll(path, 0, 1, encoding="cp1252"))[0]["tokens"] == ["café"]


def test_conllu_reader_skips_multiword_tokens_and_empty_nodes(data_dir: Path) -> None:
    sentences = list(read_conllu(data_dir / "ud_english_ewt" / "en_ewt-ud-train.conllu.gz"))
    assert sentences[0]["tags"] == ["PRON", "VERB", "DET", "NOUN", "PUNCT"]
    assert sentences[1]["tokens"] == ["do", "n't", "go"]


def test_malformed_conllu_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text("# c\n1\tThey\tthey\tPRON\n")
    with pytest.raises(DataError, match=r"bad\.conllu:2: a CoNLL-U word line has 10 tab-separated fields"):
        list(read_conllu(path))


def test_empty_split_is_a_clear_error(tmp_path: Path) -> None:
    root = write_conll(tmp_path, dev="-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(DataError, match=r"validation split \(eng\.testa\) holds no example"):
        conll_datamodule(root).setup()


def test_missing_data_and_no_hub_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def unreachable(path: str):  # what load_dataset raises without a network, without its retries
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    module = conll_datamodule(tmp_path, hub={"path": "lhoestq/conll2003", "tokens": "tokens", "tags": "ner_tags"})
    with pytest.raises(DataError) as error:
        module.setup()
    message = str(error.value)
    assert str(tmp_path / "conll2003") in message and "lhoestq/conll2003" in message
    assert "RNNLAB_DATA_DIR" in message


def test_tags_unseen_in_train_are_counted_not_fatal(tmp_path: Path) -> None:
    dev = "Paris NNP B-NP I-LOC\nrocks VBZ B-VP I-EVENT\n"
    module = conll_datamodule(write_conll(tmp_path, dev=dev))
    module.setup()
    assert module.unseen_tag_counts == {"validation": {"I-EVENT": 1}}
    assert module.tags.items[-1] == "I-EVENT"  # appended after the train tags
    batch = next(iter(module.val_dataloader()))
    assert batch["tags"].max().item() == module.tags["I-EVENT"]


def test_vocabulary_min_freq_and_unknown_words() -> None:
    vocab = Vocabulary.build([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert vocab.items == ["<pad>", "<unk>", "a", "b"]
    assert vocab.encode(["a", "zzz"]) == [2, 1]
    assert Vocabulary.from_dict(vocab.to_dict()).items == vocab.items


def test_bucket_sampler_covers_every_example_once_and_shards_by_rank() -> None:
    lengths = [(i * 7) % 23 + 1 for i in range(101)]
    batches = list(BucketBatchSampler(lengths, batch_size=8, seed=3))
    assert sorted(i for batch in batches for i in batch) == list(range(101))
    assert len(batches) == len(BucketBatchSampler(lengths, batch_size=8, seed=3))
    shards = [list(BucketBatchSampler(lengths[:96], 8, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])
    assert not {tuple(b) for b in shards[0]} & {tuple(b) for b in shards[1]}
    assert BucketBatchSampler(lengths, 8, seed=3).padding_fraction() < 0.2
    # Evaluation shards (13 batches over 2 ranks) cover every sentence exactly once.
    shards = [BucketBatchSampler(lengths, 8, shuffle=False, num_replicas=2, rank=r) for r in (0, 1)]
    assert [len(shard) for shard in shards] == [7, 6]
    assert sorted(i for shard in shards for batch in shard for i in batch) == list(range(101))


def test_hub_parquet_source_maps_class_labels_to_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub path, with ``load_dataset`` answered locally by a dataset of the Hub copy's schema."""
    import datasets

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    split = datasets.Dataset.from_dict({"tokens": [["Ann", "sails", "to", "Oslo"]], "ner_tags": [[1, 0, 0, 3]]},
                                       features=features)
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path: asked.append(path) or datasets.DatasetDict(
        {"train": split, "validation": split, "test": split}))
    module = conll_datamodule(tmp_path, hub={"path": "lhoestq/conll2003", "tokens": "tokens", "tags": "ner_tags"})
    module.setup()
    assert asked == ["lhoestq/conll2003"]
    assert module.tags.items == ["O", "B-LOC", "B-PER"]
    assert len(module.datasets["test"]) == 1


def test_hub_url_source_reads_downloaded_files(data_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The by-URL path, with the download answered by local files."""
    import datasets

    local = data_dir / "ud_english_ewt" / "en_ewt-ud-train.conllu.gz"
    monkeypatch.setattr(datasets.DownloadManager, "download", lambda self, urls: {k: str(local) for k in urls})
    files = {"train": "t.conllu", "validation": "d.conllu", "test": "e.conllu"}
    module = TaggingDataModule(name="ud", subdir="ud", files=files, format="conllu", tag_column=3,
                               data_dir=str(tmp_path), hub={"urls": {k: f"https://example.org/{v}" for k, v in
                                                                     files.items()}})
    module.setup()
    assert "PRON" in module.tags.items and len(module.datasets["train"]) == 2
