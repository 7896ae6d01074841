"""rnnlab installed (not editable) finds its cells, kernels and configs: ``pip install .``, then ``train.py`` run
from a copy of the repository root without ``src/``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from rnnlab.cells.discovery import cell_names
from rnnlab.kernels import KERNELS

PROBE = """import rnnlab
from rnnlab.cells.discovery import cell_factory, cell_names
from rnnlab.kernels import KERNELS
print(rnnlab.__file__)
print(",".join(cell_names()))
print(",".join(sorted(KERNELS)))
print(type(cell_factory("peephole")(3, 4)).__name__)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rnnlab built from a copy of the sources and installed into a folder of its own, without dependencies."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    shutil.copytree(ROOT / "src", source / "src", symlinks=True,  # src/rnnlab/conf stays a link to conf/
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "conf", source / "conf")
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    return target


def run_installed(installed: Path, command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_installed_package_finds_cells_kernels_and_configs(installed: Path, tmp_path: Path) -> None:
    result = run_installed(installed, ["-c", PROBE], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    module, cells, kernels, peephole = result.stdout.splitlines()
    assert Path(module).is_relative_to(installed)  # the installed copy, not the source tree
    assert cells.split(",") == cell_names() and kernels.split(",") == sorted(KERNELS)
    assert peephole == "PeepholeLSTMCell"


def test_train_runs_from_a_copy_of_the_root_without_src(installed: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(ROOT / "conf", root / "conf")
    shutil.copy(ROOT / "train.py", root / "train.py")
    result = run_installed(installed, ["train.py", "task=recall", "model=lstm", "debug=fast", "data.distance=5",
                                       "data.num_train=32", "data.num_val=16", "data.num_test=16",
                                       "model.encoder.hidden_size=8", "model.embedding_dim=8",
                                       f"hydra.run.dir={tmp_path / 'run'}"], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.json").exists()
