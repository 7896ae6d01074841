"""Adaptive softmax LM output: a distribution over the whole vocabulary, its perplexity exact, its options."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import compose_train
from rnnlab.data.special import IGNORE_INDEX
from rnnlab.models.lm import AdaptiveSoftmaxHead
from rnnlab.run.pipeline import build, train
from test_lm import SMALL, lm_module, write_ptb

ADAPTIVE = ["+model.adaptive_softmax.cutoffs=[6]"]


@pytest.mark.parametrize("architecture, head_hidden", [("rnn", 0), ("rnn", 7), ("ngram_mlp", 7)])
def test_adaptive_scores_are_log_probabilities_and_the_loss_reads_them(architecture: str, head_hidden: int) -> None:
    torch.manual_seed(0)
    module = lm_module(architecture, head_hidden=head_hidden, adaptive_softmax={"cutoffs": [5, 8], "div_value": 2.0})
    assert isinstance(module.net.head, AdaptiveSoftmaxHead)
    module.eval()
    tokens = torch.randint(4, 12, (2, 6))
    targets = torch.randint(3, 12, (2, 6))
    targets[0, :2] = IGNORE_INDEX
    mask = torch.ones_like(tokens, dtype=torch.bool)
    scores, _ = module(tokens, mask)  # (B, T, V)
    torch.testing.assert_close(scores.exp().sum(-1), torch.ones(2, 6))  # a distribution over all 12 words
    module.on_validation_epoch_start()
    nll = module._window("val", {"tokens": tokens, "targets": targets, "mask": mask})[0]
    kept = targets.flatten() != IGNORE_INDEX
    expected = -scores.flatten(0, 1)[kept].gather(1, targets.flatten()[kept, None]).squeeze(1)
    torch.testing.assert_close(nll, expected)


def test_uniform_adaptive_model_has_the_hand_computed_test_perplexity(tmp_path: Path) -> None:
    """All weights zero: the head softmax is uniform over its 6 words and 1 cluster, the cluster over its 6."""
    cfg = compose_train(["task=lm", "model=lstm", *SMALL, *ADAPTIVE, f"paths.data_dir={write_ptb(tmp_path / 'data')}",
                         f"data.cache_dir={tmp_path / 'cache'}"], tmp_path)
    datamodule, module = build(cfg)
    for parameter in module.net.head.parameters():
        torch.nn.init.zeros_(parameter)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (result,) = trainer.test(module, datamodule=datamodule)
    targets = torch.cat([w["targets"].flatten() for w in datamodule.test_dataloader()])
    targets = targets[targets != IGNORE_INDEX]
    in_head = int((targets < 6).sum())  # <eos>, the and a
    assert in_head == 3 + 4 + 2
    total = in_head * math.log(7) + (targets.numel() - in_head) * math.log(7 * 6)
    assert result["test/ppl"] == pytest.approx(math.exp(total / targets.numel()), rel=1e-5)
    assert datamodule.vocab.items[4:6] == ["the", "a"]  # the most frequent words are in the head


def test_bad_cutoffs_and_tied_weights_are_refused() -> None:
    for cutoffs in ([], [8, 5], [5, 5], [0], [12]):
        with pytest.raises(ValueError, match=r"model.adaptive_softmax.cutoffs .*\(0, 12\)"):
            lm_module("rnn", adaptive_softmax={"cutoffs": cutoffs})
    with pytest.raises(ValueError, match="model.tie_weights=false"):
        lm_module("rnn", head_hidden=6, tie_weights=True, adaptive_softmax={"cutoffs": [5]})


def test_fast_dev_run_and_sampling_with_adaptive_softmax(tmp_path: Path) -> None:
    cfg = compose_train(["experiment=lm_ptb", *SMALL, *ADAPTIVE, "debug=fast", f"data.cache_dir={tmp_path / 'cache'}",
                         f"paths.data_dir={write_ptb(tmp_path / 'data')}"], tmp_path)
    metrics = train(cfg)
    assert 1.0 < metrics["test/ppl"] < 100 and metrics["train/loss"] > 0
    module = lm_module("rnn", adaptive_softmax={"cutoffs": [6]})
    words = module.sample("the cat", max_length=10, seed=0)
    assert words == module.sample("the cat", max_length=10, seed=0) and 1 <= len(words) <= 10
    assert "<pad>" not in words and "<bos>" not in words
