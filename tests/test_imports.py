"""The package's import graph has no cycle: every import counts, at module level, inside a
function or under ``TYPE_CHECKING`` (a cycle there is still two modules that need each other).
``server/`` is its own front end and is left out."""

from __future__ import annotations

import ast
from pathlib import Path

import ossframe_native

PACKAGE = Path(ossframe_native.__file__).parent
NAME = "ossframe_native"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules ``module``'s code imports anywhere in it (``from . import x``
    counts ``x`` where it is a module, else the package it comes from)."""
    here = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            target = node.module or ""
            if node.level:
                target = f"{base}.{target}" if target else base
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if child in known else target)
    return {_owner(name, known) for name in found if name.split(".")[0] == NAME} - {module}


def _owner(name: str, known: set[str]) -> str:
    """The longest known module ``name`` is in (a name imported from a module is that one)."""
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, for every module outside ``server/``."""
    paths = [p for p in PACKAGE.rglob("*.py") if "server" not in p.relative_to(PACKAGE).parts]
    modules = {_module_name(p): p for p in paths}
    compiled = {f"{NAME}.{p.name.split('.')[0]}" for p in PACKAGE.glob("*.so")}  # _native
    known = set(modules) | compiled
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        imported = _imported(tree, module, path.name == "__init__.py", known)
        graph[module] = {m for m in imported if m in known}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in order:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], order[successor])
        if low[node] == order[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return found


def test_the_check_finds_a_cycle() -> None:
    """The check itself: a drawn cycle is found, a chain is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    tree = ast.parse("def f():\n    from .ml import device_of\n")
    known = {f"{NAME}.loader", f"{NAME}.ml"}
    assert _imported(tree, f"{NAME}.loader", False, known) == {f"{NAME}.ml"}


def test_the_package_imports_without_cycles() -> None:
    """No two modules import each other, directly or through others (the package's
    ``__init__`` included: it imports its public names' modules on first use)."""
    graph = import_graph()
    assert f"{NAME}.modes" in graph[f"{NAME}.pipeline"]  # module-level imports are seen
    assert f"{NAME}.torch_ops" in graph[f"{NAME}.pipeline"]  # and those inside functions
    assert f"{NAME}._native" in graph[f"{NAME}.kernels"]  # and the compiled kernels
    assert cycles(graph) == []
