"""The WikiText-103 recipe: its layout read from a local folder, smoke-trained on a tiny copy, Hub advice offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import compose_train
from rnnlab.data.errors import DataError
from rnnlab.run.pipeline import build, train

# The official files' layout: " = Title = " headings, empty lines between paragraphs, <unk> in the text.
ARTICLE = """ 
 = Valkyria Chronicles = 
 
 The game began development in 2010 , carrying over a large portion of the work . 
 It met with positive sales in Japan , and was praised by both Japanese and western critics . 
 
 = = Gameplay = = 
 
 The game is a <unk> role @-@ playing game where players take control of a military unit . 
"""
TINY = ["model.embedding_dim=8", "model.encoder.hidden_size=8", "data.batch_size=2", "data.eval_batch_size=2",
        "data.bptt=5", "model.adaptive_softmax.cutoffs=[10,20]"]


def write_wikitext103(root: Path) -> Path:
    folder = root / "wikitext103"
    folder.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (folder / f"wiki.{split}.tokens").write_text(ARTICLE, encoding="utf-8")
    return root


def test_recipe_reads_the_local_layout_and_trains(tmp_path: Path) -> None:
    root = write_wikitext103(tmp_path / "data")
    overrides = ["experiment=lm_wt103", f"paths.data_dir={root}", f"data.cache_dir={tmp_path / 'cache'}"]
    recipe = compose_train(overrides, tmp_path)
    assert recipe.model.adaptive_softmax.cutoffs == [20_000, 40_000, 200_000] and not recipe.model.tie_weights
    datamodule, _ = build(compose_train([*overrides, *TINY], tmp_path))
    words = [word for line in ARTICLE.splitlines() for word in line.split()]
    assert datamodule.num_targets("test") == len(words) + 5  # one <eos> per non-empty line, headings included
    assert {"<unk>", "@-@", "="} <= set(datamodule.vocab.items)
    metrics = train(compose_train([*overrides, *TINY, "debug=fast"], tmp_path / "run"))
    assert 1.0 < metrics["test/ppl"] < len(datamodule.vocab) * 2


def test_recipe_cutoffs_beyond_a_small_vocabulary_are_named(tmp_path: Path) -> None:
    root = write_wikitext103(tmp_path / "data")
    with pytest.raises(ValueError, match=r"model.adaptive_softmax.cutoffs .*\[20000, 40000, 200000\]"):
        build(compose_train(["experiment=lm_wt103", f"paths.data_dir={root}", f"data.cache_dir={tmp_path / 'c'}"],
                            tmp_path))


def test_offline_without_local_files_gives_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"Salesforce/wikitext \(wikitext-103-v1\).*RNNLAB_DATA_DIR.*wikitext103/"):
        build(compose_train(["experiment=lm_wt103", f"paths.data_dir={tmp_path}",
                             f"data.cache_dir={tmp_path / 'cache'}"], tmp_path))
