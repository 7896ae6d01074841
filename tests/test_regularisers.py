"""The AWD-LSTM regularisers: locked dropout, word-type dropout, weight drop, AR and TAR; defaults unchanged."""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from conftest import compose_train
from rnnlab.cells import LSTMCell
from rnnlab.cells.gru import GRUCell
from rnnlab.cells.min_gru import MinGRUCell
from rnnlab.data.lm import SPECIALS
from rnnlab.data.vocab import Vocabulary
from rnnlab.dropout import LockedDropout, make_dropout
from rnnlab.encoders import RNNEncoder, build_sentence_encoder
from rnnlab.encoders.engine import force_layout
from rnnlab.models.builder import build_word_model
from rnnlab.models.embeddings import WordEmbedder
from rnnlab.run.pipeline import train
from rnnlab.tasks.base import lexicon
from rnnlab.tasks.lm import LanguageModelModule
from test_lm import SMALL, write_ptb

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ate", "a"]
TAGGER_WORDS = lexicon(Vocabulary([*SPECIALS, *WORDS]))


def model_config(**changes) -> dict:
    config = {"embedding_dim": 6, "embedding_dropout": 0.2, "word_dropout": 0.1, "head_hidden": 4,
              "head_activation": "tanh", "dropout": 0.3, "tie_weights": False, "chars": None,
              "cell": {"_target_": "rnnlab.cells.LSTMCell", "_partial_": True},
              "encoder": {"_target_": "rnnlab.encoders.RNNEncoder", "_partial_": True, "hidden_size": 5,
                          "num_layers": 2, "dropout": 0.3}}
    return {**config, **changes}


def lm_batch() -> dict:
    tokens = torch.randint(4, 12, (3, 5))
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 3:] = False
    return {"tokens": tokens, "mask": mask, "targets": torch.randint(4, 12, (3, 5)).masked_fill(~mask, -100)}


def lm(**changes) -> LanguageModelModule:
    module_options = {key: changes.pop(key) for key in ("ar", "tar") if key in changes}
    return LanguageModelModule(model_config(**changes), {"items": [*SPECIALS, *WORDS], "unk": "<unk>"},
                               **module_options)


# ----------------------------------------------------------------------------------------------- defaults
def test_default_dropouts_give_the_numbers_of_the_code_before_them() -> None:
    # Values computed with the code before dropout_kind, word_type_dropout, weight_drop, ar and tar existed.
    torch.manual_seed(0)
    module = lm().train()
    batch = lm_batch()
    loss = module._window("train", batch)[0].mean()
    assert loss.item() == pytest.approx(2.4940185546875, abs=1e-6)
    torch.manual_seed(1)
    encoder = {"_target_": "rnnlab.encoders.RNNEncoder", "_partial_": True, "hidden_size": 5, "num_layers": 2,
               "dropout": 0.3, "bidirectional": True}
    tagger = build_word_model(model_config(encoder=encoder), TAGGER_WORDS, num_outputs=3)
    scores = tagger.head(tagger.encoder(tagger.embedder(batch["tokens"]), batch["mask"]).outputs)
    assert scores.sum().item() == pytest.approx(15.430458068847656, abs=1e-5)
    assert scores.pow(2).sum().item() == pytest.approx(6.961645126342773, abs=1e-5)


# ----------------------------------------------------------------------------------------------- locked
def test_locked_mask_is_one_per_sentence() -> None:
    torch.manual_seed(0)
    dropout = LockedDropout(0.5).train()
    out = dropout(torch.ones(8, 6, 10))
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same at every step
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert not all(torch.equal(out[0], out[b]) for b in range(1, 8))  # a different mask per sentence


def test_locked_dropout_keeps_the_expectation_and_is_identity_in_eval() -> None:
    torch.manual_seed(0)
    dropout = LockedDropout(0.3).train()
    x = torch.randn(1, 3, 4)
    mean = torch.stack([dropout(x) for _ in range(20000)]).mean(0)
    assert torch.allclose(mean, x, atol=0.05)
    assert dropout.eval()(x) is x
    assert LockedDropout(0.0).train()(x) is x
    flat = LockedDropout(0.5).train()(torch.ones(50, 40))  # 2-D: a mask per element
    assert not torch.equal(flat, flat[:1].expand_as(flat))


def test_make_dropout_refuses_an_unknown_kind() -> None:
    assert type(make_dropout(0.1)) is torch.nn.Dropout
    with pytest.raises(ValueError, match="model.dropout_kind"):
        make_dropout(0.1, "variational")


@pytest.mark.parametrize("layout", ["packed", "padded"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_locked_library_stack_equals_the_step_loop_under_the_same_masks(layout: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    fast = RNNEncoder(partial(LSTMCell), 3, 4, num_layers=3, dropout=0.5, dropout_kind="locked",
                      bidirectional=bidirectional)
    loop = RNNEncoder(partial(LSTMCell), 3, 4, num_layers=3, dropout=0.5, dropout_kind="locked",
                      bidirectional=bidirectional, implementation="reference")
    loop.load_state_dict(fast.state_dict())
    x = torch.randn(4, 6, 3)
    mask = torch.arange(6) < torch.tensor([6, 3, 5, 6]).unsqueeze(1)  # (B, T)
    with force_layout(layout):
        torch.manual_seed(1)
        expected = loop(x, mask)
        torch.manual_seed(1)
        got = fast(x, mask)
        torch.manual_seed(1)
        full = fast(x, torch.ones_like(mask))  # no padding: the one-call-per-stack route
    assert torch.allclose(got.outputs, expected.outputs, atol=1e-6)
    assert torch.allclose(got.sentence, expected.sentence, atol=1e-6)
    torch.manual_seed(1)
    assert torch.allclose(full.outputs, loop(x, torch.ones_like(mask)).outputs, atol=1e-6)
    # The masks did act: the eval-mode outputs differ.
    assert not torch.allclose(fast.eval()(x, mask).outputs, got.outputs, atol=1e-3)


# ----------------------------------------------------------------------------------------------- word types
def test_word_type_dropout_drops_every_occurrence_of_a_type() -> None:
    torch.manual_seed(0)
    embedder = WordEmbedder(20, 4, pad_id=0, unk_id=1, word_type_dropout=0.5).train()
    tokens = torch.randint(2, 20, (6, 30))
    tokens[:, -3:] = 0  # padding
    out = embedder(tokens)  # (B, T, E)
    weight = embedder.embedding.weight
    dropped = (out == 0).all(-1)  # (B, T)
    for word in tokens.unique().tolist():
        where = tokens == word
        assert dropped[where].all() or not dropped[where].any(), word
        if word != 0 and not dropped[where].any():
            assert torch.allclose(out[where], (weight[word] * 2).expand(int(where.sum()), -1))
    assert dropped[tokens == 0].all()  # padding stays zero
    assert dropped[tokens != 0].any() and not dropped[tokens != 0].all()
    assert torch.equal(embedder.eval()(tokens), F.embedding(tokens, weight, 0))


# ----------------------------------------------------------------------------------------------- weight drop
def weight_dropped_encoder(implementation: str = "auto", p: float = 0.5) -> RNNEncoder:
    torch.manual_seed(0)
    return RNNEncoder(partial(LSTMCell), 3, 4, num_layers=2, weight_drop=p, implementation=implementation)


def test_weight_drop_masks_the_kernel_weights_in_training_only() -> None:
    cell = weight_dropped_encoder().layers[0][0].cell
    original = cell.parametrizations.weight_hh.original
    assert not torch.equal(cell.fused_kernel()[1][1], original)
    cell.eval()
    assert torch.equal(cell.fused_kernel()[1][1], original)


def test_weight_drop_uses_one_mask_for_every_step_of_a_forward() -> None:
    fast = weight_dropped_encoder()
    x, mask = torch.randn(2, 7, 3), torch.ones(2, 7, dtype=torch.bool)
    dropped = []
    with parametrize.cached():
        torch.manual_seed(3)
        for layer in fast.layers:
            dropped.append(layer[0].cell.weight_hh)  # what the forward below draws, in the same order
    torch.manual_seed(3)
    got = fast(x, mask).outputs
    # The step loop with each matrix fixed to the one dropped above.
    loop = RNNEncoder(partial(LSTMCell), 3, 4, num_layers=2, implementation="reference")
    state = {name.replace("parametrizations.weight_hh.original", "weight_hh"): value
             for name, value in fast.state_dict().items()}
    for k, weight in enumerate(dropped):
        state[f"layers.{k}.0.cell.weight_hh"] = weight.detach()
    loop.load_state_dict(state)
    assert torch.allclose(got, loop(x, mask).outputs, atol=1e-6)
    assert not torch.allclose(got, fast(x, mask).outputs)  # the next forward draws another mask


def test_weight_drop_steps_share_the_mask_on_the_step_loop() -> None:
    loop, fast = weight_dropped_encoder("reference"), weight_dropped_encoder()
    x, mask = torch.randn(2, 7, 3), torch.ones(2, 7, dtype=torch.bool)
    torch.manual_seed(5)
    expected = loop(x, mask).outputs
    torch.manual_seed(5)
    assert torch.allclose(fast(x, mask).outputs, expected, atol=1e-6)


def test_weight_drop_gradients_reach_the_parameter_and_checkpoints_round_trip() -> None:
    encoder = weight_dropped_encoder()
    x, mask = torch.randn(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)
    encoder(x, mask).outputs.sum().backward()
    original = encoder.layers[1][0].cell.parametrizations.weight_hh.original
    assert original.grad is not None and original.grad.abs().sum() > 0
    copied = copy.deepcopy(encoder)
    loaded = weight_dropped_encoder()
    with torch.no_grad():
        for parameter in loaded.parameters():
            parameter.zero_()
    loaded.load_state_dict(encoder.state_dict())
    for model in (encoder, copied, loaded):
        model.eval()
    assert torch.equal(loaded(x, mask).outputs, encoder(x, mask).outputs)
    assert torch.equal(copied(x, mask).outputs, encoder(x, mask).outputs)
    assert encoder.state_layout.cell == "LSTMCell"


def test_weight_drop_covers_every_matrix_cell_and_refuses_cells_without_one() -> None:
    encoder = RNNEncoder(partial(GRUCell), 3, 4, weight_drop=0.2)
    assert parametrize.is_parametrized(encoder.layers[0][0].cell, "weight_hh")
    with pytest.raises(ValueError, match="model.weight_drop.*MinGRUCell"):
        RNNEncoder(partial(MinGRUCell), 3, 4, weight_drop=0.2)
    RNNEncoder(partial(MinGRUCell), 3, 4, weight_drop=0.0)
    cnn = {"_target_": "rnnlab.encoders.cnn.CNNEncoder", "_partial_": True, "filter_widths": [2], "num_filters": 3}
    with pytest.raises(ValueError, match="model.weight_drop"):
        build_sentence_encoder({"encoder": cnn, "weight_drop": 0.2}, 4)


# ----------------------------------------------------------------------------------------------- AR / TAR
def test_ar_and_tar_add_their_hand_computed_terms() -> None:
    torch.manual_seed(0)
    module = lm(ar=2.0, tar=1.5).train()
    batch = lm_batch()
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    torch.manual_seed(7)
    loss = module.training_step(batch, 0)
    torch.manual_seed(7)
    module.states.clear()
    nll, hidden, features = module._window("train", batch)
    mask = batch["mask"]
    ar = sum(features[b, t].pow(2).sum() for b in range(3) for t in range(5) if mask[b, t]) / (int(mask.sum()) * 5)
    pairs = [(b, t) for b in range(3) for t in range(1, 5) if mask[b, t] and mask[b, t - 1]]
    tar = sum((hidden[b, t] - hidden[b, t - 1]).pow(2).sum() for b, t in pairs) / (len(pairs) * 5)
    assert logged["train/ar"].item() == pytest.approx(2.0 * ar.item(), rel=1e-5)
    assert logged["train/tar"].item() == pytest.approx(1.5 * tar.item(), rel=1e-5)
    assert loss.item() == pytest.approx((nll.mean() + 2.0 * ar + 1.5 * tar).item(), rel=1e-5)
    assert not torch.equal(features, hidden)  # AR read the dropped outputs


def test_ar_and_tar_are_absent_when_off() -> None:
    torch.manual_seed(0)
    module = lm().train()
    batch = lm_batch()
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    torch.manual_seed(7)
    loss = module.training_step(batch, 0)
    module.states.clear()
    torch.manual_seed(7)
    assert set(logged) == {"train/loss"}
    assert loss.item() == module._window("train", batch)[0].mean().item()


def test_locked_lm_and_tagger_train_and_weight_drop_reaches_the_lm() -> None:
    torch.manual_seed(0)
    module = lm(dropout_kind="locked", word_type_dropout=0.1, weight_drop=0.3, ar=1.0, tar=1.0).train()
    assert isinstance(module.net.dropout, LockedDropout)
    assert isinstance(module.net.embedder.dropout, LockedDropout)
    assert isinstance(module.net.encoder.dropout, LockedDropout)
    assert isinstance(module.net.head.layers[3], LockedDropout)  # the head's hidden layer
    module.log = lambda *args, **kwargs: None
    module.training_step(lm_batch(), 0).backward()
    cell = module.net.encoder.layers[0][0].cell
    assert cell.parametrizations.weight_hh.original.grad is not None
    tagger = build_word_model(model_config(dropout_kind="locked"), TAGGER_WORDS, num_outputs=3)
    assert isinstance(tagger.head.layers[0], LockedDropout) and isinstance(tagger.encoder.dropout, LockedDropout)


def test_ar_on_an_ngram_model_is_refused() -> None:
    with pytest.raises(ValueError, match="task.module.ar"):
        lm(architecture="ngram_mlp", order=3, ar=1.0)


def test_every_regulariser_trains_through_train_py(tmp_path: Path) -> None:
    overrides = ["task=lm", "model=lstm", *SMALL, "model.encoder.num_layers=2", "model.encoder.dropout=0.3",
                 "model.dropout_kind=locked", "model.word_type_dropout=0.1", "model.weight_drop=0.3",
                 "model.embedding_dim=8", "model.tie_weights=true", "task.module.ar=2.0", "task.module.tar=1.0"]
    cfg = compose_train([*overrides, "debug=fast", f"paths.data_dir={write_ptb(tmp_path / 'data')}"], tmp_path)
    metrics = train(cfg)
    assert metrics["train/ar"] > 0 and metrics["train/tar"] > 0 and 1.0 < metrics["test/ppl"] < 100
