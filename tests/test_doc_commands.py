"""Every ``python train.py ...`` command written in README.md and docs/ composes: a renamed or moved config choice
would leave a reader's copied command broken (placeholders such as ``<recipe>``, ``...`` and ``my_cell`` are skipped; in a
multirun each comma list stands for its first value)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"python train\.py (.*?)(?:\s+# |`|$)")  # up to a shell comment or the inline code's end


def doc_commands() -> list[tuple[str, str]]:
    """``(page:line, arguments)`` of each ``python train.py`` command, shell continuations joined."""
    commands = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            following = iter(lines[number:])
            while line.rstrip().endswith("\\"):
                line = line.rstrip()[:-1] + " " + next(following, "").strip()
            for match in COMMAND.finditer(line):
                arguments = match.group(1).strip()
                if arguments and not any(mark in arguments for mark in ("<", "...", "my_")):
                    commands.append((f"{page.name}:{number}", arguments))
    return commands


def as_overrides(arguments: str) -> tuple[Path, str, list[str]]:
    """The config folder, config name and overrides a command line composes (a multirun's first job)."""
    words = shlex.split(arguments)
    config_dir, config_name, overrides = CONF, "train", []
    while words:
        word = words.pop(0)
        if word == "--config-dir":
            config_dir = ROOT / words.pop(0)
        elif word == "--config-name":
            config_name = words.pop(0)
        elif word != "-m" and "=" in word:
            key, value = word.split("=", 1)
            brackets = value.startswith("[")
            overrides.append(f"{key}={value if brackets else value.split(',')[0]}")
    if config_dir != CONF:
        overrides.insert(0, f"hydra.searchpath=[file://{CONF}]")
    return config_dir, config_name, overrides


@pytest.mark.parametrize(("where", "arguments"), doc_commands(), ids=lambda value: value)
def test_a_documented_command_composes(where: str, arguments: str) -> None:
    config_dir, config_name, overrides = as_overrides(arguments)
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    assert cfg.task.name and cfg.model, f"{where}: python train.py {arguments}"


def test_the_commands_are_found() -> None:
    found = dict(doc_commands())
    assert found["README.md:4"] == "task=ner model=bilstm"
    assert any("--config-name cells" in arguments for arguments in found.values())
    assert len(found) > 80
