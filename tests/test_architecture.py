"""The package's shape, checked from its source with ``ast``: imports go down the layers, no
module imports itself round a cycle, module file names are unique, every module says what it
is for. A failure names the module and the import (file and line)."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

import gdscope
from gdscope._moved import MOVED

SRC = Path(gdscope.__file__).parent

# The layers, lowest first. A module may import from its own unit and from any row below its
# own; units that share a row are siblings and import neither each other nor anything above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("base",),
    ("problem",),
    ("optim",),
    ("engines",),
    ("studies", "nets"),
    ("render",),
    ("jobs",),
    ("server",),
    ("cli", "integrations"),
)
BASE = frozenset({"errors", "files", "version", "_moved", "interrupts", "examples", "raypool",
                  "devices", "modules"})  # fmt: skip
"""The top-level modules and subpackages that make up the ``base`` unit."""
FACADE = frozenset({"gdscope", "gdscope.__main__"})
"""The package's own ``__init__``/``__main__``: they gather the layers, so they are exempt."""
SHARED_FILE_NAMES = frozenset({"__init__", "landscape", "studies", "hessian", "connect", "board"})
"""File names that recur in different subpackages deliberately: a command group in ``cli/`` is
named after the job it runs (``cli/studies.py`` → ``jobs/studies.py``)."""

RANK = {unit: rank for rank, row in enumerate(LAYERS) for unit in row}


@dataclass(frozen=True)
class Import:
    """One import statement's target inside gdscope, where it was written."""

    source: str
    target: str
    line: int
    text: str

    def where(self) -> str:
        return f"{self.source} (line {self.line}: {self.text})"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def canonical(name: str) -> str:
    """An old flat path (``gdscope.plots``) is the module it aliases (``_moved.MOVED``)."""
    package, _, rest = name.partition(".")
    head, _, tail = rest.partition(".")
    if package == "gdscope" and head in MOVED:
        return ".".join(filter(None, ("gdscope", MOVED[head], tail)))
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import under ``node``, at module level or in functions, except the body of an
    ``if TYPE_CHECKING:`` (those run only under the type checker)."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        return [s for child in node.orelse for s in _statements(child)]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [node]
    return [s for child in ast.iter_child_nodes(node) for s in _statements(child)]


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [canonical(alias.name) for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = ".".join(filter(None, (package, base)))
    base = canonical(base)
    # ``from pkg import name``: the submodule pkg.name if there is one, else pkg itself.
    found = [canonical(f"{base}.{alias.name}") for alias in node.names]
    return [name if name in MODULES else base for name in found]


def imports_of(module: str) -> list[Import]:
    source = MODULES[module].read_text()
    tree = ast.parse(source)
    found = []
    for node in _statements(tree):
        text = " ".join(ast.get_source_segment(source, node).split())
        for target in _targets(module, node):
            if target == "gdscope" or target.startswith("gdscope."):
                found.append(Import(module, target, node.lineno, text))
    return found


IMPORTS = {module: imports_of(module) for module in MODULES}


def unit_of(module: str) -> str:
    top = module.split(".")[1]
    return "base" if top in BASE else top


def test_every_subpackage_and_base_module_has_a_place_in_the_layer_table():
    units = {unit_of(m) for m in MODULES if m not in FACADE}
    assert units <= set(RANK), f"not in LAYERS: {sorted(units - set(RANK))}"


def layering_violations() -> list[str]:
    found = []
    for module, imports in IMPORTS.items():
        if module in FACADE:
            continue
        unit = unit_of(module)
        for imp in imports:
            if imp.target in FACADE:
                found.append(f"{imp.where()} imports the package facade")
                continue
            other = unit_of(imp.target)
            if other == unit or RANK.get(other, -1) < RANK[unit]:
                continue
            relation = "its sibling" if RANK.get(other) == RANK[unit] else "a layer above"
            found.append(f"{imp.where()} imports {other}, {relation} {unit}")
    return found


def test_imports_go_down_the_layers():
    found = layering_violations()
    if found:
        pytest.fail("\n".join(found), pytrace=False)


def import_cycles() -> list[list[Import]]:
    """One cycle per strongly connected group of modules (Tarjan), each as its imports."""
    edges: dict[str, dict[str, Import]] = defaultdict(dict)
    for module, imports in IMPORTS.items():
        for imp in imports:
            if imp.target != module and imp.target in MODULES:
                edges[module].setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    return [_cycle_through(sorted(group)[0], group, edges) for group in groups]


def _cycle_through(
    start: str, group: set[str], edges: dict[str, dict[str, Import]]
) -> list[Import]:
    """A shortest path of imports from ``start`` back to itself, inside its group."""
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt, imp in edges[node].items():
                if nxt == start:
                    return [*paths[node], imp]
                if nxt in group and nxt not in paths:
                    paths[nxt] = [*paths[node], imp]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")


def test_no_import_cycles():
    cycles = import_cycles()
    described = [
        " → ".join([cycle[0].source, *(imp.target for imp in cycle)])
        + "".join(f"\n    {imp.where()}" for imp in cycle)
        for cycle in cycles
    ]
    if described:
        pytest.fail("\n".join(described), pytrace=False)


def test_module_file_names_are_unique():
    places = defaultdict(list)
    for path in MODULES.values():
        places[path.stem].append(str(path.relative_to(SRC)))
    repeated = {
        name: where
        for name, where in places.items()
        if len(where) > 1 and name not in SHARED_FILE_NAMES
    }
    if repeated:
        pytest.fail("\n".join(f"{n}: {', '.join(w)}" for n, w in repeated.items()), pytrace=False)


def test_every_module_has_a_docstring():
    missing = [
        str(path.relative_to(SRC.parent))
        for path in MODULES.values()
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    if missing:
        pytest.fail("no docstring: " + ", ".join(missing), pytrace=False)
