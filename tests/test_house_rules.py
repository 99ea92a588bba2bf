"""House rules of the code: the orchestrator names no method, nothing imports in a circle,
``methods/`` never imports Ray, no module of ``orchestrator/`` grows past ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

from methods.registry import OBJECTIVES, PARAMETERIZATIONS, PREREQUISITES

REPO = Path(__file__).resolve().parent.parent
ORCHESTRATOR = sorted((REPO / "orchestrator").rglob("*.py"))
METHODS = sorted((REPO / "methods").rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    """Ids of the string constants that are docstrings (prose may name an example)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _code_names(path: Path) -> set[str]:
    """Every identifier, attribute, keyword and string literal of a module's code (not its docstrings)."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            names.add(node.value)
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.arg)):
            names.add(getattr(node, "name", None) or getattr(node, "arg", ""))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = getattr(node, "module", None) or ""
            names.update(part for alias in node.names for part in (alias.name, *alias.name.split(".")))
            names.update(module.split("."))
    return names


def test_the_orchestrator_names_no_registered_objective_parameterization_or_prerequisite() -> None:
    """What a method needs it declares (its entry, its options); the orchestrator runs whatever is
    registered, so no name of one appears in its code — not as a string, an identifier or an import."""
    registered = {*OBJECTIVES.names(), *PARAMETERIZATIONS.names(), *PREREQUISITES.names()}
    found = {str(p.relative_to(REPO)): sorted(registered & _code_names(p)) for p in ORCHESTRATOR}
    assert {p: n for p, n in found.items() if n} == {}


def _imports(path: Path, package_root: Path) -> set[str]:
    """The modules of this repository ``path`` imports (anywhere in it, lazily included)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_module_imports_another_in_a_circle() -> None:
    """The import graph of methods/ and orchestrator/ (module files; lazy imports and type-only
    imports included) has no cycle."""
    files = {_module_name(p): p for p in [*METHODS, *ORCHESTRATOR]}
    graph = {m: {i for i in _imports(p, REPO) if i in files and i != m} for m, p in files.items()}
    # a package's __init__ is entered by importing any of its modules: not an edge of the file graph
    packages = {m for m, p in files.items() if p.name == "__init__.py"}
    graph = {m: {i for i in deps if i not in packages} for m, deps in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_methods_never_import_ray() -> None:
    offenders = [str(p.relative_to(REPO)) for p in METHODS if {"ray"} & {i.split(".")[0] for i in _imports(p, REPO)}]
    assert offenders == []


def test_no_orchestrator_module_is_longer_than_400_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in ORCHESTRATOR if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
