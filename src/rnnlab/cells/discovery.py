"""The cells the framework knows: the classes registered in ``CELLS``, each with its YAML file in
``conf/model/cell/`` (Hydra's ``model/cell=`` option, which builds it as a training run does).

The tests, the benchmark and the sweeps iterate over this list, so a cell added as one Python file and one YAML
file is tested, benchmarked and swept with no other edit; one of the two without the other is an error naming the
missing file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from rnnlab.cells.base import CELLS, RecurrentCell
from rnnlab.config import CONF
from rnnlab.errors import UserError
from rnnlab.registry import Registry, class_path


def _target(config: Path) -> type | None:
    """The class a cell YAML's ``_target_`` names; None where it names none that imports."""
    target = OmegaConf.load(config).get("_target_")
    try:
        return get_class(target) if target else None
    except (ImportError, ValueError):  # a wrong path, or not a class: the caller says what to fix
        return None


def cell_problems(cells: Registry, folder: Path) -> list[str]:
    """What keeps each registered cell and each YAML file of ``folder`` from being a pair, one line each.

    Args:
        cells: the registry of cell classes (``CELLS``).
        folder: the YAML files of ``model/cell=`` (``conf/model/cell``).
    """
    configs = {path.stem: path for path in sorted(folder.glob("*.yaml"))}
    problems = [f"cell {name!r} ({class_path(cells[name])}) is registered but has no {folder / name}.yaml; add it with "
                f"'_target_: {class_path(cells[name])}', '_partial_: true' and the cell's options"
                for name in cells if name not in configs]
    for name, config in configs.items():
        target = _target(config)
        if name not in cells:
            problems.append(f"{config} names no registered cell; register its class with @CELLS.register({name!r}) "
                            f"(from rnnlab.cells import CELLS) in its module in src/rnnlab/cells/")
        elif target is not cells[name]:
            problems.append(f"{config} builds {OmegaConf.load(config).get('_target_')}, but the cell registered as "
                            f"{name!r} is {class_path(cells[name])}; point its _target_ at the registered class")
    return problems


def cell_names() -> list[str]:
    """The names ``model/cell=`` accepts, sorted.

    Raises:
        UserError: a registered cell without its YAML file, or a YAML file without its registered cell.
    """
    problems = cell_problems(CELLS, CONF / "model" / "cell")
    if problems:
        raise UserError("; ".join(problems))
    return list(CELLS.names())


def cell_factory(name: str, **options: Any) -> Callable[[int, int], RecurrentCell]:
    """``(input_size, hidden_size) -> cell`` for ``model/cell=<name>``, as a training run would build it.

    Args:
        name: one of ``cell_names()``.
        options: overrides of the cell's YAML keys (e.g. ``peephole="full"``).
    """
    overrides = ["model=lstm", f"model/cell={name}", *(f"model.cell.{key}={value}" for key, value in options.items())]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config = compose("train", overrides=overrides)
    return instantiate(config.model.cell)
