"""Shared fixtures: tiny data files written by the tests, and config composition as train.py does it."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile

# Hugging Face libraries read these once, at import: set them before anything imports them, so no test
# waits on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The language models' token-stream cache of the test runs (train.py subprocesses inherit it), not the user's.
if "RNNLAB_CACHE_DIR" not in os.environ:
    os.environ["RNNLAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnlab-test-cache-")
    atexit.register(shutil.rmtree, os.environ["RNNLAB_CACHE_DIR"], ignore_errors=True)

from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

CONLL_TRAIN = """-DOCSTART- -X- -X- O

UNESCO NNP B-NP I-ORG
praises VBZ B-VP O
Danish JJ B-NP I-MISC
call NN I-NP O
. . O O

Anna NNP B-NP I-PER
Korhonen NNP I-NP I-PER
lives VBZ B-VP O
in IN B-PP O
London NNP B-NP I-LOC
. . O O

The DT B-NP O
World NNP I-NP I-ORG
Bank NNP I-NP I-ORG
said VBD B-VP O
on IN B-PP O
Monday NNP B-NP O
"""

# Columns as Universal NER releases them: comment lines, then TAB-separated ID FORM TAG; a token may hold a space,
# and a "#" token is no comment (its line starts with the ID). The sentences and tags of CONLL_TRAIN, in part.
COLUMNS_TRAIN = """# newdoc id = doc1
# sent_id = 1
# text = UNESCO praises Danish call.
1\tUNESCO\tI-ORG
2\tpraises\tO
3\tDanish\tI-MISC
4\tcall\tO
5\t.\tO

# sent_id = 2
# text = Anna Korhonen lives in New York.
1\tAnna\tI-PER
2\tKorhonen\tI-PER
3\tlives\tO
4\tin\tO
5\tNew York\tI-LOC
6\t.\tO

# sent_id = 3
# text = # The World Bank
1\t#\tO
2\tThe\tO
3\tWorld\tI-ORG
4\tBank\tI-ORG
"""
COLUMNS_OPTIONS = ["data.token_column=1", "data.tag_column=2", "data.delimiter=tab", "data.comment_prefix='#'"]

CONLLU_TRAIN = """# sent_id = 1
# text = They walk the dog.
1\tThey\tthey\tPRON\tPRP\t_\t2\tnsubj\t_\t_
2\twalk\twalk\tVERB\tVBP\t_\t0\troot\t_\t_
3\tthe\tthe\tDET\tDT\t_\t4\tdet\t_\t_
4\tdog\tdog\tNOUN\tNN\t_\t2\tobj\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

# sent_id = 2
1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
2.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t0:root\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_

"""


def write_conll(folder: Path, train: str = CONLL_TRAIN, dev: str | None = None, test: str | None = None) -> Path:
    """Writes a CoNLL-2003-style dataset folder ``folder/conll2003`` and returns ``folder``."""
    target = folder / "conll2003"
    target.mkdir(parents=True, exist_ok=True)
    (target / "eng.train").write_text(train)
    (target / "eng.testa").write_text(dev if dev is not None else train)
    (target / "eng.testb").write_text(test if test is not None else train)
    return folder


def write_conllu(folder: Path) -> Path:
    """Writes a gzipped UD-EWT-style dataset folder ``folder/ud_english_ewt`` and returns ``folder``."""
    import gzip

    target = folder / "ud_english_ewt"
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        with gzip.open(target / f"en_ewt-ud-{split}.conllu.gz", "wt", encoding="utf-8") as handle:
            handle.write(CONLLU_TRAIN)
    return folder


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config ``train.py`` would run with these overrides, writing into ``output_dir``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def skip_without_vectors(cfg: DictConfig) -> None:
    """Skips the test when ``model.pretrained_vectors`` names packaged vectors that are not installed."""
    from rnnlab.data.pretrained import REGISTRY

    source = REGISTRY.get(cfg.model.get("pretrained_vectors"))
    if source is not None and importlib.util.find_spec(source.module) is None:
        pytest.skip(f"{source.distribution} is not installed (rnnlab's {source.extra} extra)")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data root holding tiny CoNLL-2003 and UD EWT copies."""
    root = tmp_path / "data"
    write_conll(root)
    write_conllu(root)
    return root


@pytest.fixture(autouse=True, scope="session")
def default_vectors_absent() -> Iterator[None]:
    """The NER default's ``${if_installed:glove-6b-50d}`` answers null in-process, as without the glove extra: the
    tiny fixtures need no 400k vectors (2-3 s a read) and keep their small embedding sizes. Session-wide, so that
    module-scoped fixtures see it too; tests of the default itself patch it back; explicit names are untouched."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("rnnlab.data.pretrained.if_installed", lambda name: None)
        yield


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test waits on the network: Hub access fails at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("RNNLAB_DATA_DIR", raising=False)
