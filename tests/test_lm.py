"""Language modeling: data layout, perplexity, what each model sees, TBPTT state, sampling, errors, training."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torchmetrics.text import Perplexity as ReferencePerplexity

from conftest import SHARED_DATA, compose_train
from rnnlab.data.errors import DataError
from rnnlab.data.lm import SPECIALS, BPTTWindows, LMDataModule, read_text
from rnnlab.data.special import BOS, EOS, IGNORE_INDEX
from rnnlab.metrics import Perplexity
from rnnlab.run.pipeline import build, train
from rnnlab.tasks.lm import LanguageModelModule

PTB_LIKE = " the cat sat on the mat \n the dog ate the cat \n a dog sat on a mat \n"
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ate", "a"]
SMALL = ["model.embedding_dim=8", "model.encoder.hidden_size=8", "model.head_hidden=0", "data.batch_size=2",
         "data.eval_batch_size=3", "data.bptt=4"]


def write_ptb(root: Path, text: str = PTB_LIKE) -> Path:
    """A ``ptb_mikolov`` folder like the real one (gzipped, one sentence a line); returns ``root``."""
    folder = root / "ptb_mikolov"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        with gzip.open(folder / f"ptb.{split}.txt.gz", "wt", encoding="utf-8") as handle:
            handle.write(text)
    return root


def lm_module(architecture: str = "rnn", vocab: list[str] | None = None, **model) -> LanguageModelModule:
    items = [*SPECIALS, *(vocab or WORDS)]
    config = {"architecture": architecture, "embedding_dim": 6, "embedding_dropout": 0.0, "word_dropout": 0.0,
              "head_hidden": 0, "head_activation": "tanh", "dropout": 0.0, "tie_weights": False, "order": 3,
              "cell": {"_target_": "rnnlab.cells.LSTMCell", "_partial_": True},
              "encoder": {"_target_": "rnnlab.encoders.RNNEncoder", "_partial_": True, "hidden_size": 5}}
    if architecture == "ngram_mlp":
        config.update(head_hidden=7, head_activation="sigmoid")
    return LanguageModelModule({**config, **model}, {"items": items, "unk": "<unk>"})


# ----------------------------------------------------------------------------------------------- data
def test_text_reader_skips_empty_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(" a b \n\n   \r\nc\n")
    assert read_text(path) == [{"tokens": ["a", "b"]}, {"tokens": ["c"]}]


def test_windows_predict_every_token_once_and_never_bos() -> None:
    stream = torch.tensor([2, 10, 11, 3, 2, 12, 3], dtype=torch.int32)  # <bos> a b <eos> <bos> c <eos>
    windows = BPTTWindows(stream, num_columns=4, rows=range(4), bptt=2, pad_id=0, bos_id=2)
    assert len(windows) == 1
    (window,) = windows
    assert window["tokens"].shape == window["targets"].shape == (4, 2)
    assert window["tokens"].flatten().tolist() == [2, 10, 11, 3, 2, 12, 0, 0]
    assert window["targets"].flatten().tolist() == [10, 11, 3, IGNORE_INDEX, 12, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert window["mask"].flatten().tolist() == [True] * 6 + [False] * 2


def test_windows_are_contiguous_columns(tmp_path: Path) -> None:
    dm = LMDataModule("ptb", "ptb_mikolov", {"train": "ptb.train.txt.gz", "validation": "ptb.valid.txt.gz",
                                              "test": "ptb.test.txt.gz"},
                      data_dir=str(write_ptb(tmp_path)), batch_size=2, eval_batch_size=3, bptt=4,
                      cache_dir=str(tmp_path / "cache"))
    dm.setup()
    assert dm.vocab.items[:4] == list(SPECIALS) and len(dm.vocab) == 4 + len(WORDS)
    windows = dm.windows("test", 3)
    rows = torch.cat([w["targets"] for w in windows], dim=1)  # (3, L): each row one stretch of the stream
    targets = [dm.vocab.items[i] for i in rows.flatten().tolist() if i != IGNORE_INDEX]
    assert targets == " ".join(f"{line.strip()} {EOS}" for line in PTB_LIKE.splitlines()).split()
    assert dm.num_targets("test") == len(targets) == 20
    assert all(w["tokens"].shape[0] == 3 and w["tokens"].shape[1] <= 4 for w in windows)


# ------------------------------------------------------------------------------------------ perplexity
def test_perplexity_of_known_probabilities_is_exp_of_total_nll_over_tokens() -> None:
    probabilities = [[0.5, 0.25], [0.1, 0.2, 0.4, 0.8]]  # the model's probability of each target, two batches
    metric = Perplexity()
    for batch in probabilities:
        metric.update(-torch.tensor(batch, dtype=torch.float64).log())
    tokens = [p for batch in probabilities for p in batch]
    expected = math.prod(tokens) ** (-1 / len(tokens))
    assert metric.compute().item() == pytest.approx(expected, rel=1e-12)
    mean_of_batches = sum(math.prod(b) ** (-1 / len(b)) for b in probabilities) / 2
    assert abs(expected - mean_of_batches) > 0.1  # the wrong definition would be caught


def test_perplexity_matches_torchmetrics_on_logits() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 5, 11), torch.randint(0, 11, (3, 5))
    targets[0, :2] = IGNORE_INDEX
    ours = Perplexity()
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none",
                                            ignore_index=IGNORE_INDEX)
    ours.update(nll[targets.flatten() != IGNORE_INDEX])
    reference = ReferencePerplexity(ignore_index=IGNORE_INDEX)
    reference.update(logits, targets)
    assert ours.compute().item() == pytest.approx(reference.compute().item(), rel=1e-5)


def test_uniform_model_has_the_vocabulary_size_as_test_perplexity(tmp_path: Path) -> None:
    """End to end through the test loop: windows, padding, state and the metric count every token once."""
    cfg = compose_train(["task=lm", "model=lstm", *SMALL, f"paths.data_dir={write_ptb(tmp_path / 'data')}"],
                        tmp_path)
    datamodule, module = build(cfg)
    output = module.net.head.layers[-1]
    torch.nn.init.zeros_(output.weight), torch.nn.init.zeros_(output.bias)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (result,) = trainer.test(module, datamodule=datamodule)
    assert result["test/ppl"] == pytest.approx(len(datamodule.vocab), rel=1e-5)


# ------------------------------------------------------------------------------------- what each model sees
def test_ngram_mlp_sees_only_the_previous_n_minus_1_words() -> None:
    torch.manual_seed(0)
    module = lm_module("ngram_mlp", order=3).eval()
    tokens = torch.tensor([[4, 5, 6, 7, 8, 9, 10, 11]])
    changed = tokens.clone()
    changed[0, 2] = 5
    mask = torch.ones_like(tokens, dtype=torch.bool)
    before, after = module(tokens, mask)[0], module(changed, mask)[0]  # (1, T, V)
    assert not torch.allclose(before[0, 2:4], after[0, 2:4])  # y_3 and y_4 read the changed word...
    torch.testing.assert_close(before[0, 4:], after[0, 4:])  # ...later positions never do
    torch.testing.assert_close(before[0, :2], after[0, :2])


def test_rnn_lm_sees_every_earlier_word() -> None:
    torch.manual_seed(0)
    module = lm_module("rnn").eval()
    tokens = torch.tensor([[4, 5, 6, 7, 8, 9, 10, 11]])
    changed = tokens.clone()
    changed[0, 0] = 5
    mask = torch.ones_like(tokens, dtype=torch.bool)
    before, after = module(tokens, mask)[0], module(changed, mask)[0]
    assert not torch.allclose(before[0, -1], after[0, -1])


@pytest.mark.parametrize("architecture", ["rnn", "ngram_mlp"])
def test_state_is_carried_across_windows_and_detached(architecture: str) -> None:
    """Two windows with the carried state give the scores of one long window; no gradient crosses them."""
    torch.manual_seed(0)
    module = lm_module(architecture).eval()
    tokens = torch.randint(4, 12, (2, 10))
    targets = torch.randint(4, 12, (2, 10))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    whole, _ = module(tokens, mask)
    module.on_validation_epoch_start()
    nll = [module._window("val", {"tokens": tokens[:, s], "targets": targets[:, s], "mask": mask[:, s]})[0]
           for s in (slice(0, 6), slice(6, 10))]
    expected = torch.nn.functional.cross_entropy(whole.flatten(0, 1), targets.flatten(), reduction="none")
    torch.testing.assert_close(torch.cat([n.view(2, -1) for n in nll], dim=1).flatten(), expected)

    module.train()
    module.on_train_epoch_start()
    assert "train" not in module.states  # a new epoch starts from a fresh state
    module.training_step({"tokens": tokens, "targets": targets, "mask": mask}, 0)
    state = module.states["train"]
    flat = [s for layer in state for direction in layer for s in direction] if architecture == "rnn" else [state]
    assert all(s.grad_fn is None and not s.requires_grad for s in flat)


# ----------------------------------------------------------------------------------------------- errors
def test_bidirectional_or_reversed_encoder_is_refused(tmp_path: Path) -> None:
    root = write_ptb(tmp_path / "data")
    for overrides in (["model=bilstm"], ["model=lstm", "model.encoder.reverse=true"]):
        cfg = compose_train(["task=lm", *overrides, f"paths.data_dir={root}"], tmp_path)
        with pytest.raises(ValueError, match="unidirectional"):
            build(cfg)


def test_weight_tying_needs_equal_sizes() -> None:
    with pytest.raises(ValueError, match="model.tie_weights.*head_hidden=6"):
        lm_module("rnn", tie_weights=True)
    module = lm_module("rnn", tie_weights=True, head_hidden=6)
    assert module.net.head.layers[-1].weight is module.net.embedder.embedding.weight


def test_bad_ngram_order() -> None:
    with pytest.raises(ValueError, match="order"):
        lm_module("ngram_mlp", order=1)


def test_non_utf8_text_names_file_and_encoding_option(tmp_path: Path) -> None:
    paths = {}
    for split in ("train", "validation", "test"):
        paths[split] = tmp_path / f"{split}.txt"
        paths[split].write_bytes("le café est là\n".encode("latin-1"))
    files = [f"data.files.{split}={path}" for split, path in paths.items()]
    with pytest.raises(DataError, match=r"train\.txt:1: .*encoding"):
        build(compose_train(["task=lm", "model=lstm", "data=text", *files], tmp_path))
    datamodule, _ = build(compose_train(["task=lm", "model=lstm", "data=text", "data.encoding=latin-1", *files],
                                        tmp_path))
    assert "café" in datamodule.vocab


def test_missing_text_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("a b\n")
    files = [f"data.files.train={tmp_path / 'train.txt'}", f"data.files.validation={tmp_path / 'nope.txt'}",
             f"data.files.test={tmp_path / 'train.txt'}"]
    with pytest.raises(DataError, match="nope.txt"):
        build(compose_train(["task=lm", "data=text", *files], tmp_path))


def test_split_without_words_is_refused(tmp_path: Path) -> None:
    root = write_ptb(tmp_path / "data")
    with gzip.open(root / "ptb_mikolov" / "ptb.valid.txt.gz", "wt") as handle:
        handle.write("\n  \n")
    with pytest.raises(DataError, match="validation split"):
        build(compose_train(["task=lm", f"paths.data_dir={root}"], tmp_path))


def test_wikitext2_offline_gives_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1: the Hub fails at once and the message says what to do."""
    import datasets
    import huggingface_hub

    # The libraries read HF_HUB_OFFLINE when imported, before the autouse fixture sets it.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"Salesforce/wikitext.*RNNLAB_DATA_DIR"):
        build(compose_train(["task=lm", "data=wikitext2", f"paths.data_dir={tmp_path}"], tmp_path))


# ---------------------------------------------------------------------------------------------- sampling
def test_sampling_is_reproducible_and_stops_at_eos() -> None:
    torch.manual_seed(0)
    module = lm_module("rnn")
    first = module.sample("the cat", max_length=20, temperature=1.5, top_k=5, seed=3)
    assert first == module.sample("the cat", max_length=20, temperature=1.5, top_k=5, seed=3)
    assert 1 <= len(first) <= 20 and BOS not in first and "<pad>" not in first
    assert EOS not in first[:-1]
    output = module.net.head.layers[-1]
    with torch.no_grad():
        output.bias[module.vocab[EOS]] = 100.0  # the model now always ends the sentence
    assert module.sample("the", max_length=20, seed=0) == [EOS]
    with torch.no_grad():
        output.bias[module.vocab[EOS]] = -100.0  # ... and now never does
    assert len(module.sample("the", max_length=7, seed=0)) == 7


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("overrides", [
    ["experiment=lm_ptb", *SMALL],
    ["experiment=lm_ptb_tied", *SMALL],
    ["experiment=lm_ptb_ngram", "model.embedding_dim=8", "model.head_hidden=8"],
    ["task=lm", "model=cifg", *SMALL, "model.embedding_dim=8", "model.tie_weights=true", "model.encoder.num_layers=2"],
])
def test_fast_dev_run(overrides: list[str], tmp_path: Path) -> None:
    cfg = compose_train([*overrides, "debug=fast", f"paths.data_dir={write_ptb(tmp_path / 'data')}"], tmp_path)
    metrics = train(cfg)
    assert 1.0 < metrics["test/ppl"] < 100 and metrics["train/loss"] > 0
    assert {BOS, EOS} <= set((tmp_path / "vocab.json").read_text().replace('"', " ").split())


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "ptb_mikolov").is_dir(), reason="no ../shared/data/ptb_mikolov")
def test_real_ptb_counts(tmp_path: Path) -> None:
    datamodule, _ = build(compose_train(["experiment=lm_ptb", f"paths.data_dir={SHARED_DATA}"], tmp_path))
    assert len(datamodule.vocab) == 10_002  # 10k words with <unk> and <eos>, plus <pad> and <bos>
    counts = {split: datamodule.num_targets(split) for split in ("train", "validation", "test")}
    assert counts == {"train": 929_589, "validation": 73_760, "test": 82_430}
