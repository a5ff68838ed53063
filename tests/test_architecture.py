"""The architecture's rules, checked from the source: one way for imports, no cycles, small modules, no engine
named in a branch outside its own class."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"backends": "captioneer.backends", "desktop": "captioneer.desktop"}
MAX_LINES = 500
ENGINE_NAMES = {"gguf", "transformers", "ollama", "openai"}
ENGINE_LIBRARIES = {
    "llama_cpp", "torch", "torchvision", "transformers", "accelerate", "bitsandbytes", "ollama", "openai",
}


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by its installed name."""
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


@cache
def tree(module: str) -> ast.Module:
    return ast.parse(modules()[module].read_text(encoding="utf-8"))


def imported_names(module: str) -> Iterator[str]:
    """Every name an import statement anywhere in the module (lazy imports in functions included) names."""
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module → the package modules it imports."""
    names = modules()
    return {m: frozenset(n for n in imported_names(m) if n in names and n != m) for m in names}


def cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle_and_only_cycles() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"}),
             "e": frozenset()}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_no_import_cycles() -> None:
    """Lazy imports count too: a cycle hidden in a function is still two modules that need each other."""
    assert cycles(graph()) == []


def test_backends_import_nothing_from_desktop() -> None:
    offenders = {m: sorted(n for n in g if n.startswith("captioneer.desktop"))
                 for m, g in graph().items() if m.startswith("captioneer.backends")}
    assert {m: n for m, n in offenders.items() if n} == {}


@pytest.mark.parametrize(
    "layer",
    [
        "captioneer.desktop.core",
        "captioneer.desktop.library",
        "captioneer.desktop.evaluation",
        "captioneer.desktop.server",
    ],
)
def test_core_and_library_never_import_qt(layer: str) -> None:
    offenders = sorted(m for m in modules() if m.startswith(layer)
                       and any(n.split(".")[0] in {"PySide6", "shiboken6"} for n in imported_names(m)))
    assert offenders == []


def test_only_backends_import_engine_libraries() -> None:
    offenders = sorted(m for m in modules() if not m.startswith("captioneer.backends")
                       and any(n.split(".")[0] in ENGINE_LIBRARIES for n in imported_names(m)))
    assert offenders == []


def test_modules_stay_small() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in modules().items()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def names_an_engine(node: ast.expr) -> bool:
    values = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return any(isinstance(v, ast.Constant) and v.value in ENGINE_NAMES for v in values)


def test_no_branch_on_an_engine_name() -> None:
    """Call sites read capability flags and methods: ``engine == "gguf"`` spreads one engine over many
    files."""
    branches = []
    for module in modules():
        for node in ast.walk(tree(module)):
            if not isinstance(node, ast.Compare):
                continue
            subject = node.left
            named = subject.attr if isinstance(subject, ast.Attribute) else getattr(subject, "id", "")
            if named == "engine" and any(names_an_engine(c) for c in node.comparators):
                branches.append(f"{module}:{node.lineno}")
    assert branches == []


CATALOG = "captioneer.desktop.library.catalog"
SQL_CALLS = {"execute", "executemany", "executescript"}


def test_all_sql_goes_through_the_catalog() -> None:
    """Only the catalog package runs SQL, so one module owns each query and one rule escapes search text."""
    calls = []
    for module in modules():
        if module == CATALOG or module.startswith(f"{CATALOG}."):
            continue
        for node in ast.walk(tree(module)):
            called = node.func if isinstance(node, ast.Call) else None
            if isinstance(called, ast.Attribute) and called.attr in SQL_CALLS:
                calls.append(f"{module}:{node.lineno}")
    assert calls == []
