"""The package layout holds its lines: who may import Redis, FastAPI and LiteLLM, and no cycles.

Read from the source (the import statements), so a new module that crosses a line fails
here before it ships. Imports under ``if TYPE_CHECKING:`` are for annotations only and
do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("router", "classifier")

# What each outside library may be imported by (module-name prefixes).
ALLOWED_IMPORTERS = {
    "redis": ("router.state",),
    "fastapi": ("router.http", "router.upstream.simulator"),
    "starlette": ("router.http", "router.upstream.simulator"),
    "litellm": ("router.upstream",),
    "aiohttp": ("router.upstream",),
}
# Modules that decide or learn, and so may not reach any of the above, even indirectly.
PURE = ("router.policy", "classifier")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def runtime_imports(tree: ast.AST, package: str) -> Iterator[str]:
    """Every module name imported outside ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if is_type_checking_block(child):
                stack.extend(child.orelse)  # type: ignore[attr-defined]
                continue
            if isinstance(child, ast.Import):
                yield from (alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from the module's own package, level - 1 up
                    parent = package.rsplit(".", child.level - 1)[0]
                    base = f"{parent}.{base}" if base else parent
                yield base
                # `from router.state import cache` imports the module router.state.cache
                yield from (f"{base}.{alias.name}" for alias in child.names)
            stack.append(child)


def sources() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = module_name(path)
            home = name if path.name == "__init__.py" else name.rpartition(".")[0]
            found[name] = sorted(set(runtime_imports(ast.parse(path.read_text()), home)))
    return found


MODULES = sources()


def internal_edges(name: str) -> set[str]:
    return {imported for imported in MODULES[name] if imported in MODULES and imported != name}


def test_the_layout_is_what_the_scan_reads() -> None:
    assert {"router.proxy", "router.policy", "router.http.server", "router.state.store",
            "router.upstream.dispatch", "router.observe.metrics"} <= MODULES.keys()  # fmt: skip


@pytest.mark.parametrize("library", sorted(ALLOWED_IMPORTERS))
def test_only_its_layer_imports(library: str) -> None:
    allowed = ALLOWED_IMPORTERS[library]
    crossing = [
        name
        for name, imports in MODULES.items()
        if any(i == library or i.startswith(f"{library}.") for i in imports)
        and not any(name == a or name.startswith(f"{a}.") for a in allowed)
    ]
    assert crossing == [], f"{library} is imported outside {allowed}: {crossing}"


def reachable(start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in internal_edges(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("pure", PURE)
def test_decisions_and_learning_reach_no_io_library(pure: str) -> None:
    starts = [name for name in MODULES if name == pure or name.startswith(f"{pure}.")]
    reached = set().union(*(reachable(start) for start in starts))
    libraries = tuple(ALLOWED_IMPORTERS)
    leaks = sorted(
        f"{name} -> {i}" for name in reached for i in MODULES[name] if i.split(".")[0] in libraries
    )
    assert leaks == []


def test_no_import_cycle_inside_the_packages() -> None:
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for nxt in internal_edges(name):
            if nxt not in index:
                visit(nxt)
                low[name] = min(low[name], low[nxt])
            elif nxt in on_stack:
                low[name] = min(low[name], index[nxt])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in MODULES:
        if name not in index:
            visit(name)
    assert cycles == []
