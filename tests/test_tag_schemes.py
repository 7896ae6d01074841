"""Tag schemes keep every entity; a tagger trains and is scored in the scheme it reads; the re-projection layer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from conftest import compose_train
from rnnlab.data.errors import DataError
from rnnlab.data.tag_schemes import retag
from rnnlab.data.tagging import TaggingDataModule
from rnnlab.metrics.span_f1 import extract_spans
from rnnlab.run.pipeline import build, train


def random_tags(rng: random.Random, length: int) -> list[str]:
    """Any mix of IOB1, IOB2 and BIOES prefixes, as files and predictions may hold."""
    return [rng.choice(["O", "O", *(f"{p}-{k}" for p in "BIES" for k in ("PER", "LOC"))]) for _ in range(length)]


@pytest.mark.parametrize("scheme", ["iob2", "bioes"])
def test_retagging_keeps_every_entity(scheme: str) -> None:
    rng = random.Random(0)
    for _ in range(2000):
        tags = random_tags(rng, rng.randint(0, 8))
        converted = retag(tags, scheme)
        assert extract_spans(converted) == extract_spans(tags), tags
        assert retag(converted, scheme) == converted  # written in the scheme already: unchanged
        used = {tag[0] for tag in converted}
        assert used <= ({"O", "B", "I"} if scheme == "iob2" else {"O", "B", "I", "E", "S"})


def test_iob1_to_bioes_by_hand() -> None:
    iob1 = "I-PER I-PER O I-LOC B-LOC I-ORG I-ORG I-ORG".split()
    assert retag(iob1, "bioes") == "B-PER E-PER O S-LOC S-LOC B-ORG I-ORG E-ORG".split()
    assert retag(iob1, "iob2") == "B-PER I-PER O B-LOC B-LOC B-ORG I-ORG I-ORG".split()


def test_pos_tags_have_no_scheme() -> None:
    with pytest.raises(ValueError, match="'NOUN' is no entity tag"):
        retag(["NOUN"], "bioes")


def test_the_data_option_is_checked_and_named() -> None:
    with pytest.raises(DataError, match="data.tag_scheme='bilou'.*iob2, bioes"):
        TaggingDataModule("conll2003", "conll2003", {"train": "a", "validation": "b", "test": "c"}, tag_scheme="bilou")


def test_a_bioes_tagger_learns_the_fixture_and_scores_the_same_entities(data_dir: Path, tmp_path: Path) -> None:
    overrides = ["task=ner", "experiment=ner_plain", f"paths.data_dir={data_dir}", "model.embedding_dim=8",
                 "model.encoder.hidden_size=16", "model.head_hidden=0", "trainer.max_epochs=25",
                 "task.optimizer.lr=0.05", "callbacks.early_stopping.patience=100", "model.dropout=0",
                 "model.embedding_dropout=0", "model.word_dropout=0", "test=false", "data.tag_scheme=bioes"]
    cfg = compose_train(overrides, tmp_path)
    datamodule, _ = build(cfg)
    assert {"S-MISC", "B-PER", "E-PER", "B-ORG", "E-ORG"} <= set(datamodule.tags.items)
    gold = [datamodule.tags.items[i] for i in datamodule.datasets["validation"][0]["tag_ids"]]
    plain, _ = build(compose_train(overrides[:-1], tmp_path / "plain"))
    as_read = [plain.tags.items[i] for i in plain.datasets["validation"][0]["tag_ids"]]
    assert extract_spans(gold) == extract_spans(as_read) and gold != as_read
    metrics = train(cfg)
    assert metrics["val/f1"] == 1.0  # val = train on the fixture: memorised, in BIOES


def test_reprojection_is_a_square_layer_drawn_after_the_other_parts(data_dir: Path, tmp_path: Path) -> None:
    overrides = ["task=ner", "model/chars=cnn", "model.crf=true", "model.embedding_dim=8", "seed=3",
                 f"paths.data_dir={data_dir}"]
    torch.manual_seed(3)
    _, plain = build(compose_train(overrides, tmp_path / "plain"))
    torch.manual_seed(3)
    _, reprojected = build(compose_train([*overrides, "model.reproject=true"], tmp_path / "reprojected"))
    features = 8 + plain.char_encoder.get_output_dim()
    assert plain.reproject is None
    assert reprojected.reproject.weight.shape == (features, features)
    before, after = plain.state_dict(), reprojected.state_dict()
    assert set(after) - set(before) == {"reproject.weight", "reproject.bias"}
    assert all(torch.equal(before[name], after[name]) for name in before)
    batch = {"tokens": torch.tensor([[2, 3]]), "mask": torch.tensor([[True, True]]),
             "chars": torch.ones(1, 2, 4, dtype=torch.long)}
    with torch.no_grad():
        reprojected.reproject.weight.copy_(torch.eye(features))
        reprojected.reproject.bias.zero_()
    plain.eval(), reprojected.eval()
    assert torch.allclose(plain(**batch), reprojected(**batch))  # the identity re-projection changes nothing
