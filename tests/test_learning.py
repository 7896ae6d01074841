"""Does it learn? One tiny, learnable fixture per task family, trained through the real pipeline.

Each case writes a fixture whose answer is a simple function of the input (the long-range lab generates its
own data), trains on it with ``rnnlab.run.pipeline.train`` on a config composed as ``train.py`` composes it, and
requires the test split, drawn apart from the training split (the language model's one sentence aside), to
reach a level:

=====================  ============================================  ================  ==========================
case                   fixture                                       level             a model that never learned
=====================  ============================================  ================  ==========================
ner                    each word has one entity tag (IOB1)           test/f1 >= 0.9    about 0
pos                    each word has one UPOS tag                    test/acc >= 0.95  about 1/5
classify               a keyword anywhere in the sentence decides    test/acc >= 0.95  about 1/2
lm                     the same sentence on every line               test/ppl <= 1.5   about the vocabulary, 13
translation            the target is the source reversed             test/bleu >= 50   about 0
translation_attention  the same, with attention, in 5 epochs         test/bleu >= 50   about 0
recall                 the long-range lab's key recall, distance 20  test/acc >= 0.95  about 1/8
=====================  ============================================  ================  ==========================

Why these levels: a working run reaches about 1.0 (ppl below 1.2, BLEU near 90 or above) in a few epochs
and seconds, so the levels leave room for other seeds and library versions; a model that did not learn
stays near the last column, so the levels tell the two apart. ``test_levels_need_optimizer_steps`` checks
that second half: with optimiser steps that change nothing, no case reaches its level.

What a level cannot see: a loss that also scores padding positions still learns these fixtures, so
``test_padding_leaves_the_training_loss_unchanged`` checks directly that padding never changes a loss.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from omegaconf import DictConfig
from torch import Tensor

from conftest import compose_train
from rnnlab.data.special import IGNORE_INDEX
from rnnlab.run.pipeline import build, train

NER_LEXICON = {"O": ["the", "met", "in", "visited", "said", "and", "from", "today"],
               "I-PER": ["anna", "boris", "chen"], "I-LOC": ["paris", "lima", "oslo"],
               "I-ORG": ["unesco", "fifa", "nato"]}
POS_LEXICON = {"DET": ["the", "a", "every"], "NOUN": ["dog", "cat", "idea", "river"],
               "VERB": ["runs", "sees", "likes"], "ADJ": ["red", "old", "quiet"], "ADP": ["on", "with", "under"]}
FILLER = ["the", "film", "was", "a", "story", "about", "two", "friends", "and", "it", "felt", "long"]
KEYWORDS = {"pos": "wonderful", "neg": "dreadful"}
SENTENCE = "the cat sat on the mat and the dog ate the cat"
SYMBOLS = ["a", "b", "c", "d", "e", "f", "g", "h"]

# Small models without regularisation: every fixture is noise-free, and a run takes seconds.
SMALL = ["model.embedding_dim=16", "model.encoder.hidden_size=16", "model.head_hidden=0", "model.dropout=0",
         "model.embedding_dropout=0", "model.word_dropout=0", "logger=[]"]
FAST = [*SMALL, "data.batch_size=10", "task.optimizer.lr=0.02", "trainer.max_epochs=3"]

# What a padding step holds, per batch key of the file-based tasks; word id 0 is <pad> in every vocabulary.
PADDING = {"tokens": 0, "mask": False, "tags": IGNORE_INDEX, "targets": IGNORE_INDEX, "source": 0,
           "source_mask": False, "target": 0, "target_mask": False}

Example = Callable[[random.Random], dict[str, str]]  # one example: the text of each file suffix


def tagged(rng: random.Random, lexicon: dict[str, list[str]]) -> list[tuple[str, str]]:
    """A sentence of 3 to 8 ``(word, tag)`` pairs; the word decides the tag."""
    tags = [rng.choice(list(lexicon)) for _ in range(rng.randint(3, 8))]
    return [(rng.choice(lexicon[tag]), tag) for tag in tags]


def conll_sentence(rng: random.Random) -> dict[str, str]:
    return {"": "".join(f"{word} {tag}\n" for word, tag in tagged(rng, NER_LEXICON))}


def conllu_sentence(rng: random.Random) -> dict[str, str]:
    return {"": "".join(f"{i}\t{word}\t{word}\t{tag}\t_\t_\t0\t_\t_\t_\n"
                        for i, (word, tag) in enumerate(tagged(rng, POS_LEXICON), 1))}


def keyword_sentence(rng: random.Random) -> dict[str, str]:
    """``label<TAB>sentence``: filler words and the label's keyword at a random place."""
    label = rng.choice(list(KEYWORDS))
    words = rng.choices(FILLER, k=rng.randint(2, 8))
    words.insert(rng.randint(0, len(words)), KEYWORDS[label])
    return {"": f"{label}\t{' '.join(words)}"}


def reversal_pair(rng: random.Random) -> dict[str, str]:
    """A source of 3 to 6 symbols (``.de``) and its reversal (``.en``)."""
    source = rng.choices(SYMBOLS, k=rng.randint(3, 6))
    return {".de": " ".join(source), ".en": " ".join(reversed(source))}


@dataclass(frozen=True)
class Case:
    """A task family's run on its fixture and the level its test split must reach.

    Attributes:
        overrides: the run's config overrides, besides the data files.
        metric: the logged test metric the level applies to.
        level: the least (for ``test/ppl``, the most) the metric must reach.
        example: draws one example, as the text of each file suffix; None where the data module generates
            its own.
        train_size: training examples (validation and test take 40 each).
    """

    overrides: list[str]
    metric: str
    level: float
    example: Example | None = None
    train_size: int = 200

    def reached(self, value: float) -> bool:
        return value <= self.level if self.metric == "test/ppl" else value >= self.level


CASES = {
    "ner": Case(["experiment=ner_plain", "data.tag_column=1", *FAST], "test/f1", 0.9, conll_sentence),
    "pos": Case(["task=pos", *FAST], "test/acc", 0.95, conllu_sentence),
    "classify": Case(["task=classify", "data=labelled_text", *FAST], "test/acc", 0.95, keyword_sentence),
    # Later overrides win: one short stream needs small windows for a few dozen steps an epoch.
    "lm": Case(["task=lm", "data=text", "model=lstm", *FAST, "data.batch_size=4", "data.bptt=20"], "test/ppl", 1.5,
               lambda rng: {"": SENTENCE}),
    # Reversal generalises to unseen sources only from a few hundred pairs on.
    "translation": Case(["task=translation", "model=lstm", "data.suffix=", "data.min_freq=1", *SMALL,
                         "model.encoder.hidden_size=64", "data.batch_size=20", "task.optimizer.lr=0.01",
                         "trainer.max_epochs=12"], "test/bleu", 50.0, reversal_pair, train_size=800),
    # Attention reads each source symbol where it is needed: reversal is learnt in fewer epochs.
    "translation_attention": Case(["task=translation", "model=lstm", "model/attention=general", "data.suffix=",
                                   "data.min_freq=1", *SMALL, "model.encoder.hidden_size=64", "data.batch_size=20",
                                   "task.optimizer.lr=0.01", "trainer.max_epochs=5"], "test/bleu", 50.0,
                                  reversal_pair, train_size=800),
    "recall": Case(["experiment=long_range", "data.num_train=1000", "data.num_val=200", "data.num_test=200",
                    "model.embedding_dim=16", "model.encoder.hidden_size=32"], "test/acc", 0.95),
}


def write_splits(folder: Path, case: Case) -> list[str]:
    """Writes the case's examples, each split drawn from its own seed, to ``folder/<split><suffix>``; returns
    the ``data.files`` overrides naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    overrides = []
    for split, size in {"train": case.train_size, "validation": 40, "test": 40}.items():
        rng = random.Random(split)
        examples = [case.example(rng) for _ in range(size)]
        for suffix in examples[0]:
            (folder / f"{split}{suffix}").write_text("\n".join(example[suffix] for example in examples) + "\n")
        overrides.append(f"data.files.{split}={folder / split}")
    return overrides


def configure(name: str, tmp_path: Path) -> DictConfig:
    """Writes the named case's fixture and composes its run."""
    case = CASES[name]
    files = write_splits(tmp_path / "data", case) if case.example else []
    return compose_train([*case.overrides, *files], tmp_path / "run")


@pytest.mark.parametrize("name", CASES)
def test_reaches_its_level(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    value = train(configure(name, tmp_path))[case.metric]
    assert case.reached(value), f"{case.metric} = {value:.4g}, level {case.level}"


@pytest.mark.parametrize("name", CASES)
def test_levels_need_optimizer_steps(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Adam's step a no-op (gradients computed, weights never changed), no case reaches its level."""
    case, cfg = CASES[name], configure(name, tmp_path)
    assert cfg.task.optimizer._target_ == "torch.optim.Adam"  # the optimiser whose step is disabled
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: closure() if closure else None)
    value = train(cfg)[case.metric]
    assert not case.reached(value), f"{case.metric} = {value:.4g} without a single step, level {case.level}"


def padded(batch: dict, steps: int = 3) -> dict:
    """The batch with ``steps`` more padding steps after every sequence."""
    def pad(value: Tensor, fill: int | bool) -> Tensor:
        return torch.cat([value, value.new_full((value.shape[0], steps), fill)], dim=1)

    return {key: pad(value, PADDING[key]) if key in PADDING else value for key, value in batch.items()}


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")  # the step logs; no trainer here
@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.example])
def test_padding_leaves_the_training_loss_unchanged(name: str, tmp_path: Path) -> None:
    """Padding steps after every sequence change no training loss. The learning runs cannot tell: a loss that
    also scores padding (as the first tag, as ``<pad>`` words) or a classifier that reads it reaches every
    level."""
    datamodule, module = build(configure(name, tmp_path))
    batch = next(iter(datamodule.train_dataloader()))
    losses = []
    for version in (batch, padded(batch)):
        module.on_train_epoch_start()  # the language model starts each epoch from a fresh state
        losses.append(module.training_step(version, 0))
    torch.testing.assert_close(losses[1], losses[0])
