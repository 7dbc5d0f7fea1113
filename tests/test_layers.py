"""The layers of docs/architecture.md, held: which package may import which, and no cycles.

Imports are read from the source (module level and inside functions alike), so a lazy import
that crosses a layer is caught too; ``if TYPE_CHECKING:`` blocks are left out, since they
never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cc_collect_async"

#: Top-level parts of the package, and the other parts each may import. The client layer is
#: the flat modules; ``sim`` is a separate program that shares only signing and the codec.
CLIENT = "(client layer)"
ALLOWED: dict[str, set[str]] = {
    CLIENT: {CLIENT},
    "harvest": {CLIENT, "harvest"},
    "database": {CLIENT, "harvest", "database"},
    "metrics": {CLIENT, "metrics"},
    "sim": {"sim", "thqs", "json_codec"},
    "cli": {CLIENT, "harvest", "database", "sim", "cli"},
}
#: Flat modules the simulator may import (by module name, not layer).
SIM_MAY_IMPORT = {"thqs", "json_codec"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.dump(node.test)


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _imports(child)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        base = module.split(".")
        if path.name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    yield target
    yield from (f"{target}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = set()
        for node in _imports(tree):
            found.update(t for t in _targets(module, path, node) if t in modules and t != module)
        graph[module] = found
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] == "__main__":  # ``python -m cc_collect_async`` is the command line
        return "cli"
    return parts[1] if parts[1] in ALLOWED else CLIENT


def _name(module: str) -> str:
    return module.split(".")[1] if "." in module else module


GRAPH = _graph()


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) != "package"))
def test_module_imports_only_from_its_layer_and_below(module: str) -> None:
    layer = _layer(module)
    for target in sorted(GRAPH[module]):
        if _layer(target) == "package":
            continue  # the flat public namespace: only reached through its names
        if layer == "sim":
            assert _layer(target) == "sim" or _name(target) in SIM_MAY_IMPORT, (module, target)
        else:
            assert _layer(target) in ALLOWED[layer], f"{module} imports {target}"


def test_no_import_cycle_at_module_level() -> None:
    modules = _modules()
    top: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update(
                    t for t in _targets(module, path, node) if t in modules and t != module
                )
        top[module] = found - {"cc_collect_async"}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(top[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(top):
        if module not in state:
            visit(module, [])
    assert cycles == []
