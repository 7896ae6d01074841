"""The package is strictly layered: a subpackage imports only from the layers below its own, never from a sibling
of its layer or from above, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "src" / "rnnlab"
# Bottom to top, the one place the order is written: each subpackage (or root module) of rnnlab may import from
# the layers below its own only.
LAYERS = [
    {"atomic", "errors"},
    {"config", "registry"},
    {"kernels"},
    {"cells", "dropout"},
    {"encoders"},
    {"heads", "metrics"},
    {"data", "models"},  # siblings: a model takes its vocabularies as plain data (models.embeddings.Lexicon)
    {"tasks"},
    {"run"},
    {"analysis", "diagnostics"},
    {"cli"},  # the entry points: a tuned study reports through rnnlab.analysis
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    """``rnnlab/kernels/scan.py`` -> ``rnnlab.kernels.scan``; a package's ``__init__.py`` -> the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str) -> list[tuple[int, str, bool]]:
    """``(line, imported rnnlab module, runs at import time)`` for every import of rnnlab in a module's source;
    imports inside functions or under ``if TYPE_CHECKING:`` do not run at import time."""
    found: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name, at_import) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.extend((child.lineno, target, at_import) for target in from_targets(child))
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
            else:
                visit(child, at_import and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(source), True)
    return [(line, target, at_import) for line, target, at_import in found if target.split(".")[0] == "rnnlab"]


def from_targets(node: ast.ImportFrom) -> list[str]:
    """``from a.b import c``: the module ``a.b.c`` where ``c`` is one, else ``a.b``."""
    names = [f"{node.module}.{alias.name}" for alias in node.names]
    modules = [name for name in names if is_module(name)]
    return modules if len(modules) == len(names) else [node.module]


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer(module: str) -> str | None:
    """The subpackage or root module of rnnlab that ``module`` belongs to (None for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def package_sources() -> dict[str, str]:
    """Module name -> source, for every module of rnnlab."""
    return {module_name(path): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def upward_imports(sources: dict[str, str]) -> list[str]:
    """Every import of a sibling or a higher layer, as ``module:line: message``."""
    problems = []
    for module, source in sources.items():
        here = layer(module)
        for line, target, _ in imports(source):
            there = layer(target)
            if here is None or there is None or there == here:
                continue
            if here not in LAYER_OF or there not in LAYER_OF:
                problems.append(f"{module}:{line}: {here} or {there} has no layer; add it to LAYERS")
            elif LAYER_OF[there] >= LAYER_OF[here]:
                below = sorted(name for name, level in LAYER_OF.items() if level < LAYER_OF[here])
                problems.append(f"{module}:{line}: {here} imports {target}; it may import only from {below}")
    return problems


def import_cycle(sources: dict[str, str]) -> list[str]:
    """A circle of modules importing each other at import time, or ``[]``."""
    graph = {module: {target for _, target, at_import in imports(source) if at_import}
             for module, source in sources.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return list(error.args[1])
    return []


def test_no_package_imports_a_sibling_or_a_layer_above() -> None:
    assert upward_imports(package_sources()) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert import_cycle(package_sources()) == []


def test_every_package_has_a_layer() -> None:
    assert {layer(module) for module in package_sources()} - {None} == set(LAYER_OF)


def test_upward_imports_and_circles_are_caught() -> None:
    """The checks themselves: a kernel importing the run layer (at import time or for type checking only),
    sibling imports (a model reading the data layer's vocabulary among them), and two modules importing each
    other."""
    sources = package_sources()
    sources["rnnlab.kernels.registry"] += "\nfrom rnnlab.run.precision import choose_precision\n"
    sources["rnnlab.kernels.scan"] += "\nif TYPE_CHECKING:\n    from rnnlab.encoders.rnn import RNNEncoder\n"
    sources["rnnlab.heads.mlp"] += "\nfrom rnnlab.metrics import Perplexity\n"
    sources["rnnlab.models.builder"] += "\nfrom rnnlab.data.vocab import Vocabulary\n"
    problems = upward_imports(sources)
    assert len(problems) == 4
    assert any(problem.startswith("rnnlab.kernels.registry:") and problem.endswith(
        "kernels imports rnnlab.run.precision; it may import only from ['atomic', 'config', 'errors', 'registry']")
        for problem in problems)
    assert any(problem.startswith("rnnlab.kernels.scan:") and "imports rnnlab.encoders.rnn" in problem
               for problem in problems)
    assert any(problem.startswith("rnnlab.heads.mlp:") and "imports rnnlab.metrics" in problem for problem in problems)
    assert any(problem.startswith("rnnlab.models.builder:") and "imports rnnlab.data.vocab" in problem
               for problem in problems)
    assert import_cycle(sources) == []
    sources["rnnlab.cells.gates"] += "\nfrom rnnlab.cells.base import RecurrentCell\n"
    assert set(import_cycle(sources)) == {"rnnlab.cells.base", "rnnlab.cells.gates"}
