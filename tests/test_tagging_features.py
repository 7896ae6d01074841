"""Tagger features: the CRF against brute force, character features, pretrained vectors, the recipes end to end."""

from __future__ import annotations

import gzip
import itertools
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import CONF, compose_train, skip_without_vectors
from rnnlab.cells import LSTMCell
from rnnlab.cli import inference
from rnnlab.data.pretrained import VectorFileError, load_vectors, read_pretrained
from rnnlab.data.vocab import Vocabulary
from rnnlab.encoders import RNNEncoder
from rnnlab.encoders.cnn import CNNEncoder
from rnnlab.heads import CRF
from rnnlab.models.chars import CharEncoder
from rnnlab.models.embeddings import WordEmbedder
from rnnlab.run.pipeline import build, train


# ----------------------------------------------------------------- CRF
def brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> tuple[torch.Tensor, list[int]]:
    """log Z and the best path of one sentence, by enumerating every tag sequence."""
    num_tags = emissions.shape[-1]
    paths = list(itertools.product(range(num_tags), repeat=length))
    scores = torch.stack([crf.start[p[0]] + sum(emissions[t, p[t]] for t in range(length))
                          + sum(crf.transitions[p[t - 1], p[t]] for t in range(1, length)) + crf.end[p[-1]]
                          for p in paths])
    return torch.logsumexp(scores, 0), list(paths[int(scores.argmax())])


@pytest.mark.parametrize("num_tags", [1, 2, 3])
def test_crf_matches_brute_force_on_a_padded_batch(num_tags: int) -> None:
    torch.manual_seed(num_tags)
    crf = CRF(num_tags)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()  # large enough that transitions change the best path
    lengths = [4, 1, 3, 2]
    emissions = torch.randn(len(lengths), 4, num_tags) * 2  # (B, T, C)
    mask = torch.arange(4) < torch.tensor(lengths).unsqueeze(1)
    tags = torch.randint(num_tags, (len(lengths), 4)).masked_fill(~mask, -100)
    log_z, best = crf.log_partition(emissions, mask), crf.viterbi(emissions, mask)
    nll = crf.nll(emissions, tags, mask)
    for b, n in enumerate(lengths):
        expected_z, expected_path = brute_force(crf, emissions[b], n)
        assert torch.allclose(log_z[b], expected_z, atol=1e-5)
        assert best[b, :n].tolist() == expected_path and not best[b, n:].any()
        gold = tags[b, :n].tolist()
        gold_score = (crf.start[gold[0]] + sum(emissions[b, t, gold[t]] for t in range(n))
                      + sum(crf.transitions[gold[t - 1], gold[t]] for t in range(1, n)) + crf.end[gold[-1]])
        assert torch.allclose(nll[b], expected_z - gold_score, atol=1e-5)
        # Alone in its own batch, without padding: the same values.
        assert torch.allclose(crf.log_partition(emissions[b:b + 1, :n], mask[b:b + 1, :n]), log_z[b:b + 1])


# ----------------------------------------------------------------- characters
CHARS = Vocabulary.build(["UNESCO", "praises", "a"])


@pytest.mark.parametrize("encoder", [
    CNNEncoder(8, filter_widths=[3], num_filters=5, activation="tanh"),
    RNNEncoder(partial(LSTMCell), 8, hidden_size=4, bidirectional=True),
], ids=["cnn", "bilstm"])
def test_a_words_char_feature_does_not_depend_on_padding_or_batch(encoder: nn.Module) -> None:
    torch.manual_seed(0)
    chars = CharEncoder(len(CHARS), CHARS.pad_id, 8, encoder).eval()
    words = ["UNESCO", "praises", "a"]
    ids = [CHARS.encode(w) for w in words]
    batch = torch.zeros(2, 3, 9, dtype=torch.long)  # (B, T, L), extra char padding
    mask = torch.tensor([[True, True, True], [True, False, False]])
    for t, word in enumerate(ids):
        batch[0, t, :len(word)] = torch.tensor(word)
    batch[1, 0, :len(ids[2])] = torch.tensor(ids[2])
    features = chars(batch, mask)  # (B, T, D)
    assert features.shape == (2, 3, chars.get_output_dim()) and not features[~mask].any()
    for t, word in enumerate(ids):
        alone = chars(torch.tensor([[word]]), torch.tensor([[True]]))  # (1, 1, D), no padding at all
        assert torch.allclose(features[0, t], alone[0, 0], atol=1e-6)
    assert torch.allclose(features[1, 0], features[0, 2], atol=1e-6)


# ----------------------------------------------------------------- pretrained vectors
WORDS = ["<pad>", "<unk>", "the", "Paris", "zebra"]


def test_glove_file_exact_form_first_then_lowercase(tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text("paris 1 1 1\nthe 0.5 -0.5 2\nParis 2 2 2\nThe 9 9 9\n")
    ids, vectors = read_pretrained(str(path), WORDS, 3)
    assert ids.tolist() == [2, 3]
    assert vectors.tolist() == [[0.5, -0.5, 2.0], [2.0, 2.0, 2.0]]  # "Paris" exact wins over "paris"


def test_word2vec_header_gzip_and_lowercase_fallback(tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("2 2\nparis 1 2\nwho 3 4\n")
    ids, vectors = read_pretrained(str(path), WORDS, 2)
    assert ids.tolist() == [3] and vectors.tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("content, line", [("the 1 2 3\n", 1), ("3 3\nthe 1 2 3\n", 1)])
def test_vector_size_mismatch_names_file_line_and_option(tmp_path: Path, content: str, line: int) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text(content)
    with pytest.raises(VectorFileError, match=rf"vectors.txt:{line}: vectors of size 3, but model.embedding_dim is 4"):
        read_pretrained(str(path), WORDS, 4)


@pytest.mark.parametrize("bad", ["the 1 2", "the 1 x 3"])
def test_malformed_line_names_file_and_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text(f"zebra 1 2 3\n{bad}\n")
    with pytest.raises(VectorFileError, match=r"vectors.txt:2: malformed line"):
        read_pretrained(str(path), WORDS, 3)


def test_embedder_loads_found_words_and_freezes(tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text("zebra 1 2 3\n")
    embedder = WordEmbedder(len(WORDS), 3, 0, 1, pretrained_vectors=str(path), words=WORDS, freeze=True)
    before = embedder.embedding.weight.clone()
    assert load_vectors(embedder.embedding, embedder.pretrained_vectors, embedder.words) == 1
    assert embedder.embedding.weight[4].tolist() == [1.0, 2.0, 3.0]
    assert torch.equal(embedder.embedding.weight[:4], before[:4]) and not embedder.embedding.weight.requires_grad


# ----------------------------------------------------------------- gold tags the model lacks
@pytest.mark.parametrize("task, crf", [("ner", False), ("ner", True), ("pos", False)])
def test_gold_tags_the_model_lacks_are_scored_as_misses(task: str, crf: bool, data_dir: Path,
                                                        tmp_path: Path) -> None:
    """Evaluation data may hold a tag the model never saw (id C): the loss leaves it out, the metric misses it."""
    cfg = compose_train([f"task={task}", f"model.crf={crf}", "~model/chars", "model.embedding_dim=8",
                         "model.encoder.hidden_size=8", f"paths.data_dir={data_dir}"], tmp_path)
    module = build(cfg)[1].eval()  # no dropout: the same batch, the same loss
    new = "B-EVENT" if task == "ner" else "INTJ"
    module.set_gold_tags([*module.tags.items, new])
    lacking, other = len(module.tags), module.tags.items[1]
    batch = {"tokens": torch.tensor([[2, 3, 4], [2, 3, 0]]), "mask": torch.tensor([[True] * 3, [True, True, False]]),
             "tags": torch.tensor([[0, lacking, 0], [0, 1, -100]])}  # (B, T)
    loss, _ = module.compute_loss(batch)
    known = {**batch, "tags": batch["tags"][1:], "tokens": batch["tokens"][1:], "mask": batch["mask"][1:]}
    if not crf:  # the first sentence's known tokens still count
        known = {**batch, "tags": batch["tags"].masked_fill(batch["tags"] == lacking, -100)}
    assert torch.allclose(loss, module.compute_loss(known)[0])
    nothing_known = {key: value[:1, 1:2] for key, value in batch.items()}
    assert module.compute_loss(nothing_known)[0].item() == 0.0  # not NaN
    metric = module.metrics["test"]
    metric.update(torch.tensor([[0, 0, 0], [0, 1, 0]]), batch["tags"])  # the lacking tag's token predicted O
    result = metric.compute()
    if task == "pos":
        assert result.item() == pytest.approx(4 / 5)
    else:  # gold: B-EVENT and the other tag's entity; predicted: the other one
        assert result["recall"].item() == 0.5 and result["precision"].item() == 1.0
        assert result["f1_EVENT"].item() == 0.0 and result[f"f1_{other[2:]}"].item() == 1.0


# ----------------------------------------------------------------- end to end
@pytest.mark.parametrize("chars", ["cnn", "bilstm"])
def test_char_crf_tagger_learns_the_fixture(chars: str, data_dir: Path, tmp_path: Path) -> None:
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("london 1 0 0 0 0 0 0 0\nsaid 0 1 0 0 0 0 0 0\n")
    cfg = compose_train(["task=ner", "model=bilstm", f"model/chars={chars}", "model.crf=true",
                         f"model.pretrained_vectors={vectors}", "model.embedding_dim=8",
                         "model.encoder.hidden_size=16", "model.head_hidden=0", f"paths.data_dir={data_dir}",
                         "trainer.max_epochs=25", "task.optimizer.lr=0.05", "callbacks.early_stopping.patience=100",
                         "model.dropout=0", "model.embedding_dropout=0", "model.word_dropout=0",
                         "model.chars.dropout=0", "test=false"], tmp_path)
    datamodule, module = build(cfg)
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["chars"].shape[:2] == batch["tokens"].shape and module.crf is not None
    metrics = train(cfg)
    assert metrics["val/f1"] == 1.0  # val = train on the fixture: memorised
    assert metrics["train/loss"] < 0.1


def test_checkpoint_loads_without_the_vectors_file(data_dir: Path, tmp_path: Path) -> None:
    from rnnlab.tasks.tagging import TaggingModule

    vectors = tmp_path / "vectors.txt"
    vectors.write_text("london " + " ".join(["0.5"] * 100) + "\n")
    cfg = compose_train(["task=ner", "model/chars=cnn", "model.crf=true", f"model.pretrained_vectors={vectors}",
                         "model.embedding_dim=100", "debug=smoke", f"paths.data_dir={data_dir}"], tmp_path / "run")
    train(cfg)
    vectors.unlink()
    module = TaggingModule.load_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").eval()
    london = module.embedder.embedding.weight[module.vocab["London"]]  # found by its lowercased form
    assert (london - 0.5).abs().max() < 0.1  # the file's vector, a few small steps later
    datamodule = inference.datamodule(inference.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt"))
    datamodule.add_split("test", datamodule.read_splits(("test",))["test"])
    batch = next(iter(datamodule.ordered_dataloader("test")))
    predicted = module.decode(batch)  # (B, T)
    assert predicted.shape == batch["tokens"].shape and predicted.dtype == torch.long
    assert module(batch["tokens"], batch["mask"], batch["chars"]).shape == (*batch["tokens"].shape, len(module.tags))


def test_reduce_on_plateau_watches_the_validation_metric_with_mode_max(data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train(["task=pos", "+task.scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau",
                         "+task.scheduler._partial_=true", "+task.scheduler.mode=max",
                         "+task.scheduler.patience=0", "+task.scheduler.factor=0.5", "debug=smoke",
                         f"paths.data_dir={data_dir}", "test=false"], tmp_path)
    _, module = build(cfg)
    scheduler = module.configure_optimizers()["lr_scheduler"]
    assert scheduler["monitor"] == "val/acc" and scheduler["scheduler"].mode == "max"
    train(cfg)  # two epochs: the scheduler stepped on val/acc


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")
                                                if p.stem.split("_")[0] in ("ner", "pos")))
def test_tagging_recipes_run(experiment: str, data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train([f"experiment={experiment}", "debug=fast", f"paths.data_dir={data_dir}"], tmp_path)
    skip_without_vectors(cfg)
    assert bool(cfg.model.get("chars")) == (experiment != "ner_plain") == (cfg.data.max_word_length > 0)
    assert 0.0 <= train(cfg)[f"test/{'f1' if cfg.task.name == 'ner' else 'acc'}"] <= 1.0
