"""One registration idiom: a name registered by a decorator is found, a wrong name is one error listing the right
ones, and a new implementation is one file, found with no list edited (checked on a copy of the package); a new
cell is one file and its YAML, a new sentence-pair task two files and two YAMLs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from random import Random

import pytest

from conftest import ROOT, write_conll
from rnnlab.data.formats import COLUMN_FORMATS
from rnnlab.data.synthetic import SYNTHETIC_TASKS
from rnnlab.errors import UserError
from rnnlab.kernels import KERNELS
from rnnlab.models.attention import SCORES
from rnnlab.models.lm import LM_NETWORKS
from rnnlab.registry import Registry
from test_lm import lm_module, write_ptb
from test_translation import write_multi30k


def test_a_registered_name_is_found_and_a_wrong_one_lists_the_names() -> None:
    shapes = Registry("shape", "model.shape")

    @shapes.register("square")
    class Square:
        pass

    assert shapes["square"] is Square and list(shapes) == ["square"] and "circle" not in shapes
    with pytest.raises(UserError, match=r"model.shape must be one of \['square'\], got 'circle'"):
        shapes["circle"]
    with pytest.raises(ValueError, match="a shape named 'square' is already registered"):
        shapes.register("square")(object)


def test_a_package_registry_imports_every_module_of_its_package(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "plugins"
    package.mkdir()
    (package / "__init__.py").write_text("from rnnlab.registry import Registry\n"
                                         "PLUGINS = Registry('plugin', 'plugin', package=__name__)\n")
    for name in ("first", "second"):
        (package / f"{name}.py").write_text(f"from plugins import PLUGINS\nPLUGINS.register('{name}')(len)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from plugins import PLUGINS

    assert PLUGINS.names() == ("first", "second")


def test_the_shipped_implementations_register_themselves() -> None:
    assert list(SCORES) == ["additive", "dot", "general"]
    assert list(COLUMN_FORMATS) == ["conll", "conllu"]
    assert list(SYNTHETIC_TASKS) == ["adding", "copy", "recall"]
    assert list(LM_NETWORKS) == ["ngram_mlp", "rnn"]
    assert list(KERNELS) == ["gru", "gru_sequence", "lstm", "min_gru", "min_lstm", "peephole_lstm", "rnn_relu",
                             "rnn_tanh"]


def test_a_wrong_language_model_network_is_the_registrys_error() -> None:
    with pytest.raises(UserError, match=r"model.architecture must be one of \['ngram_mlp', 'rnn'\], got 'rnm'"):
        lm_module("rnm")


# ------------------------------------------------- a newcomer's extension: one new file in a copy of the package
SCALED_DOT = '''"""A scaled dot product, h^T k / sqrt(D) (Vaswani et al. 2017)."""

from torch import Tensor

from rnnlab.models.attention import SCORES, Attention


@SCORES.register("scaled_dot")
class ScaledDotAttention(Attention):
    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        return query @ prepared.transpose(1, 2) / prepared.shape[-1] ** 0.5  # (B, T, S)
'''
SCALED_DOT_YAML = """# @package model.decoder.attention
kind: scaled_dot
size: null
input_feeding: false
"""
BIGRAM = '''"""A bigram LM: p(y_i | y_{i-1}) = softmax(U emb(y_{i-1}) + b), no state across windows."""

from torch import Tensor, nn

from rnnlab.dropout import make_dropout
from rnnlab.models.lm import LM_NETWORKS, output_layer, word_embedder


@LM_NETWORKS.register("bigram")
class BigramLanguageModel(nn.Module):
    def __init__(self, model: dict, lexicon):
        super().__init__()
        self.embedder = word_embedder(model, lexicon)
        self.dropout = make_dropout(model["dropout"])
        self.head = output_layer(model, self.embedder.embedding_dim, self.embedder)

    def hidden(self, tokens: Tensor, mask: Tensor, state: None = None) -> tuple[Tensor, None]:
        return self.embedder(tokens), None

    def forward(self, tokens: Tensor, mask: Tensor, state: None = None) -> tuple[Tensor, None]:
        hidden, state = self.hidden(tokens, mask, state)
        return self.head(self.dropout(hidden)), state

    @staticmethod
    def detach_state(state: None) -> None:
        return state
'''
SLASHED = '''"""One sentence a line, each token written word/TAG."""

from pathlib import Path

from rnnlab.data.formats import COLUMN_FORMATS, ColumnOptions
from rnnlab.data.readers import read_lines


@COLUMN_FORMATS.register("slashed")
def read(path: Path, options: ColumnOptions) -> list[dict]:
    pairs = [[token.rsplit("/", 1) for token in line.split()] for _, line in read_lines(path, options.encoding)]
    return [{"tokens": [w for w, _ in sentence], "tags": [t for _, t in sentence]} for sentence in pairs if sentence]
'''

MGU = '''"""The minimal gated unit (Zhou et al. 2016): a forget gate f, h = (1 - f) h + f tanh(W x + U (f h))."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import CELLS, RecurrentCell


@CELLS.register("mgu")
class MinimalGatedUnit(RecurrentCell):
    recurrent_weights = ("weight_hh",)

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(2 * hidden_size, input_size))  # rows f, candidate
        self.weight_hh = nn.Parameter(torch.empty(2 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(2 * hidden_size))
        self.uniform_init()

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        (h,) = state
        x_f, x_c = F.linear(x_t, self.weight_ih, self.bias).chunk(2, dim=1)
        u_f, u_c = self.weight_hh.chunk(2, dim=0)
        f = torch.sigmoid(x_f + F.linear(h, u_f))
        h = (1 - f) * h + f * torch.tanh(x_c + F.linear(f * h, u_c))
        return h, (h,)
'''
MGU_YAML = """_target_: rnnlab.cells.mgu.MinimalGatedUnit
_partial_: true
"""
CELL_PROBE = """from rnnlab.cells.discovery import cell_names
from rnnlab.errors import UserError

try:
    print(cell_names())
except UserError as error:
    print(error)
"""

PAIRS_DATA = '''"""Sentence pairs with a label: one ``label<TAB>first sentence<TAB>second sentence`` line each."""

from functools import partial
from pathlib import Path

import torch

from rnnlab.data.batching import pad_sequences
from rnnlab.data.bucketed import BucketedDataModule
from rnnlab.data.readers import read_lines
from rnnlab.data.sources import load_with_fallback
from rnnlab.data.vocab import Vocabulary


def read_pairs(path: Path) -> list[dict]:
    rows = [line.split("\\t") for _, line in read_lines(path) if line.strip()]
    return [{"label": label, "first": first, "second": second} for label, first, second in rows]


def encode(vocab: Vocabulary, labels: Vocabulary, batch: dict) -> dict:
    first, second = ([vocab.encode(text.split()) for text in batch[key]] for key in ("first", "second"))
    return {"first": first, "second": second, "label": labels.encode(batch["label"]),
            "length": [len(a) + len(b) for a, b in zip(first, second)]}


def collate(pad_id: int, rows: list[dict]) -> dict:
    first, first_mask = pad_sequences([row["first"] for row in rows], pad_id)
    second, second_mask = pad_sequences([row["second"] for row in rows], pad_id)
    return {"first": first, "first_mask": first_mask, "second": second, "second_mask": second_mask,
            "labels": torch.tensor([row["label"] for row in rows])}


class SentencePairDataModule(BucketedDataModule):
    def __init__(self, name: str, files: dict, data_dir: str | None = None, subdir: str = "", batch_size: int = 16,
                 eval_batch_size: int = 64, num_workers: int = 0, seed: int = 0):
        super().__init__(batch_size, eval_batch_size, num_workers, seed)
        self.name, self.files, self.data_dir, self.subdir = name, dict(files), data_dir, subdir
        self.vocab = self.labels = None

    def setup(self, stage: str | None = None) -> None:
        if self.vocab is not None:
            return
        splits = load_with_fallback(self.name, self.data_dir, self.subdir, self.files, read_pairs, None, None)
        self.labels = Vocabulary(sorted({row["label"] for row in splits["train"]}), unk=None)
        self.vocab = Vocabulary.build(row[key].split() for row in splits["train"] for key in ("first", "second"))
        for split, rows in splits.items():
            self.add_split(split, rows)

    def model_kwargs(self) -> dict:
        return {"vocab": self.vocab.to_dict(), "labels": self.labels.to_dict()}

    def encoder(self):
        return partial(encode, self.vocab, self.labels)

    def collate_fn(self):
        return partial(collate, self.vocab.pad_id)
'''
PAIRS_TASK = '''"""Sentence-pair classification: one encoder reads both sentences, an MLP reads [u; v; |u - v|; u * v]
(Conneau et al. 2017)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from rnnlab.data.pairs import SentencePairDataModule
from rnnlab.data.vocab import Vocabulary
from rnnlab.heads import MLPHead
from rnnlab.models.builder import build_word_model
from rnnlab.tasks.base import SupervisedTask, lexicon


class SentencePairModule(SupervisedTask):
    main_metric = "acc"
    higher_is_better = True
    target_key = "labels"
    reads = SentencePairDataModule

    def __init__(self, model: dict, vocab: dict, labels: dict, optimizer: dict | None = None,
                 scheduler: dict | None = None):
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        parts = build_word_model(model, lexicon(Vocabulary.from_dict(vocab)), sentence=True)
        self.embedder, self.encoder = parts.embedder, parts.encoder
        classes = len(labels["items"])
        self.head = MLPHead(4 * self.encoder.get_output_dim(), classes, model["head_hidden"],
                            model["head_activation"], model["dropout"])
        self.metrics = nn.ModuleDict({stage: MulticlassAccuracy(classes, average="micro") for stage in ("val", "test")})

    def compute_loss(self, batch: dict) -> tuple[Tensor, Tensor]:
        u, v = (self.encoder(self.embedder(batch[key]), batch[f"{key}_mask"]).sentence for key in ("first", "second"))
        logits = self.head(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))
        return F.cross_entropy(logits, batch["labels"]), logits.argmax(-1)
'''
PAIRS_TASK_YAML = """# @package _global_
defaults:
  - override /data: pairs

task:
  name: pairs
  module:
    _target_: rnnlab.tasks.pairs.SentencePairModule
  optimizer:
    _target_: torch.optim.Adam
    _partial_: true
    lr: 0.01
  scheduler: null
  optimized_metric: val/acc
  mode: max
"""
PAIRS_DATA_YAML = """_target_: rnnlab.data.pairs.SentencePairDataModule
name: pairs
files:
  train: ???
  validation: ???
  test: ???
data_dir: ${paths.data_dir}
batch_size: 16
eval_batch_size: 64
num_workers: 0
seed: ${seed}
"""

KENDALL = '''"""Kendall's tau between predicted and gold rankings: higher is better, within [-1, 1]."""

from rnnlab.metrics.declared import declare

declare("tau", "max", -1.0, 1.0)
'''
METRIC_PROBE = """from rnnlab.analysis.stats import metric_range
from rnnlab.errors import UserError
from rnnlab.run.pipeline import check_metric_direction

check_metric_direction("val/tau", "max")
try:
    check_metric_direction("val/tau", "min")
except UserError as error:
    print(error)
print(metric_range("test/tau"))
"""


def package_copy(root: Path, files: dict[str, str]) -> Path:
    """``train.py``, ``conf/`` and ``src/rnnlab`` copied to ``root``, plus ``files`` (path -> text); nothing else
    is edited."""
    shutil.copytree(ROOT / "src" / "rnnlab", root / "src" / "rnnlab", symlinks=True,  # conf/ stays a link
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "conf", root / "conf")
    shutil.copy(ROOT / "train.py", root / "train.py")
    for path, text in files.items():
        (root / path).write_text(text)
    return root


def copy_env(root: Path) -> dict[str, str]:
    """The environment of a process that runs the copy of the package at ``root``."""
    return {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}


def train_copy(root: Path, overrides: list[str], run: Path, debug: str | None = "fast") -> None:
    """``train.py`` with ``overrides`` (and ``debug=<debug>`` unless None) on the copy of the package at ``root``."""
    debug_option = [f"debug={debug}"] if debug else []
    result = subprocess.run([sys.executable, "train.py", *overrides, *debug_option, f"hydra.run.dir={run}"],
                            cwd=root, env=copy_env(root), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "metrics.json").exists()


@pytest.mark.slow
def test_a_new_attention_score_is_one_module_and_one_yaml(tmp_path: Path) -> None:
    root = package_copy(tmp_path / "copy", {"src/rnnlab/models/attention/scaled_dot.py": SCALED_DOT,
                                            "conf/model/attention/scaled_dot.yaml": SCALED_DOT_YAML})
    data = write_multi30k(tmp_path / "data")
    train_copy(root, ["task=translation", "model=lstm", "model/attention=scaled_dot", f"paths.data_dir={data}",
                      "data.min_freq=1", "model.encoder.hidden_size=16", "model.embedding_dim=8"], tmp_path / "run")


@pytest.mark.slow
def test_a_new_language_model_network_is_one_module(tmp_path: Path) -> None:
    root = package_copy(tmp_path / "copy", {"src/rnnlab/models/lm/bigram.py": BIGRAM})
    train_copy(root, ["task=lm", "model=ngram_mlp", "model.architecture=bigram", "model.head_hidden=0",
                      "model.embedding_dim=8", "data.batch_size=2", "data.eval_batch_size=3", "data.bptt=4",
                      f"paths.data_dir={write_ptb(tmp_path / 'data')}"], tmp_path / "run")


@pytest.mark.slow
def test_a_new_column_format_is_one_module(tmp_path: Path) -> None:
    root = package_copy(tmp_path / "copy", {"src/rnnlab/data/formats/slashed.py": SLASHED})
    text = tmp_path / "slashed.txt"
    text.write_text("Anna/I-PER lives/O in/O London/I-LOC ./O\nThe/O World/I-ORG Bank/I-ORG said/O so/O\n")
    files = [f"data.files.{split}={text}" for split in ("train", "validation", "test")]
    train_copy(root, ["task=ner", "model=bilstm", "data.format=slashed", *files, "data.hub=null",
                      f"paths.data_dir={write_conll(tmp_path / 'data')}", "model.encoder.hidden_size=8",
                      "model.embedding_dim=8", "model.pretrained_vectors=null"], tmp_path / "run")


@pytest.mark.slow
def test_a_new_cell_is_one_module_and_one_yaml(tmp_path: Path) -> None:
    root = package_copy(tmp_path / "copy", {"src/rnnlab/cells/mgu.py": MGU, "conf/model/cell/mgu.yaml": MGU_YAML})
    train_copy(root, ["task=ner", "model=birnn", "model/cell=mgu", "model.encoder.hidden_size=8",
                      "model.embedding_dim=8", "model.pretrained_vectors=null",
                      f"paths.data_dir={write_conll(tmp_path / 'data')}"], tmp_path / "run")
    # The cell tests, the benchmark and the sweeps iterate over cell_names(): the new cell is in their lists.
    assert "'mgu'" in run_copy(root, CELL_PROBE)
    collected = run_copy(root, "import pytest; pytest.main(['--collect-only', '-q', 'tests/test_train.py'])", ROOT)
    assert "test_every_cell_trains_in_a_two_layer_independent_birnn[mgu]" in collected
    (root / "conf" / "model" / "cell" / "mgu.yaml").unlink()  # a cell without its YAML: an error naming the file
    assert run_copy(root, CELL_PROBE).startswith("cell 'mgu' (rnnlab.cells.mgu.MinimalGatedUnit) is registered but "
                                                 f"has no {root}/src/rnnlab/conf/model/cell/mgu.yaml")


def run_copy(root: Path, code: str, cwd: Path | None = None) -> str:
    """The standard output of ``code`` run (in ``cwd``, else ``root``) on the copy of the package at ``root``."""
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd or root, env=copy_env(root), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def write_pairs(folder: Path, seed: int = 0) -> dict[str, Path]:
    """An NLI-like fixture: two sentences of 2-3 words over 10, labelled whether they share a word; balanced."""
    random = Random(seed)
    words = [f"w{i}" for i in range(10)]
    folder.mkdir(parents=True)
    files = {}
    for split, size in (("train", 600), ("validation", 100), ("test", 100)):
        lines: list[str] = []
        while len(lines) < size:
            first, second = (random.sample(words, random.randint(2, 3)) for _ in range(2))
            label = "yes" if set(first) & set(second) else "no"
            if label == ("yes", "no")[len(lines) % 2]:  # alternate, so the classes are balanced
                lines.append(f"{label}\t{' '.join(first)}\t{' '.join(second)}")
        files[split] = folder / f"{split}.tsv"
        files[split].write_text("\n".join(lines) + "\n")
    return files


@pytest.mark.slow
def test_a_sentence_pair_task_is_two_modules_and_two_yamls(tmp_path: Path) -> None:
    root = package_copy(tmp_path / "copy", {"src/rnnlab/data/pairs.py": PAIRS_DATA,
                                            "src/rnnlab/tasks/pairs.py": PAIRS_TASK,
                                            "conf/task/pairs.yaml": PAIRS_TASK_YAML,
                                            "conf/data/pairs.yaml": PAIRS_DATA_YAML})
    files = [f"data.files.{split}={path}" for split, path in write_pairs(tmp_path / "data").items()]
    small = ["task=pairs", "model=bilstm", "model.pretrained_vectors=null", "model.embedding_dim=16",
             "model.encoder.hidden_size=32", "model.dropout=0", "model.embedding_dropout=0", "model.word_dropout=0",
             *files]
    train_copy(root, small, tmp_path / "fast")
    mismatch = subprocess.run([sys.executable, "train.py", "task=pairs", "data=sst2", f"hydra.run.dir={tmp_path}/no"],
                              cwd=root, env=copy_env(root), capture_output=True, text=True, timeout=300)
    assert mismatch.returncode == 2 and mismatch.stderr.splitlines() == [  # the new task fits its own data only
        "error: task=pairs trains on SentencePairDataModule data, but data=sst2 is ClassificationDataModule data; "
        "choose data= one of ['pairs'], or a task that reads it"]
    # 15 epochs reach a test accuracy of 0.91 (seed 42); an encoder of the first sentence alone, 0.60.
    train_copy(root, [*small, "trainer.max_epochs=15"], tmp_path / "learnt", debug=None)
    accuracy = json.loads((tmp_path / "learnt" / "metrics.json").read_text())["test/acc"]
    assert accuracy >= 0.8, f"test accuracy {accuracy:.2f}"  # balanced classes: chance is 0.5


def test_a_new_metric_with_its_direction_is_one_module(tmp_path: Path) -> None:
    root = package_copy(tmp_path / "copy", {"src/rnnlab/metrics/kendall.py": KENDALL})
    assert run_copy(root, METRIC_PROBE).splitlines() == [
        "task.optimized_metric=val/tau is better when higher, but task.mode=min; set task.mode=max", "(-1.0, 1.0)"]
