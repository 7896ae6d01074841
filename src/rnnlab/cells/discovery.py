"""The cells the framework knows: one YAML file each in ``conf/model/cell/``, read as Hydra composes them.

The tests, the benchmark and the sweeps iterate over this list, so a cell added as one Python file and one YAML
file is tested, benchmarked and swept with no other edit.
"""

from __future__ import annotations

from typing import Any, Callable

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from rnnlab.cells.base import RecurrentCell
from rnnlab.config import CONF


def cell_names() -> list[str]:
    """The names ``model/cell=`` accepts, sorted."""
    return sorted(path.stem for path in (CONF / "model" / "cell").glob("*.yaml"))


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
