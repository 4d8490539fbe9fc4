"""No import circles in payops: the graph of its modules' imports — at module level and inside functions
alike (a deferred import is still a circle, only hidden) — has no cycle. Imports under ``TYPE_CHECKING``
are annotations, not imports, and are left out. Dependencies point down: core ← families ← the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import payops

LIB = Path(payops.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in LIB.rglob("*.py"):
        parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                targets.update(_resolve(a.name, modules) or "" for a in child.names if a.name.startswith("payops"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package
                    for _ in range(child.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                if base.startswith("payops"):
                    for alias in child.names:  # `from payops import runner` imports the module payops.runner
                        full = f"{base}.{alias.name}"
                        targets.add(full if full in modules else _resolve(base, modules) or "")
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {t for t in targets if t and t != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_payops_has_no_import_cycle() -> None:
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    cycles = _cycles(graph)
    detail = "; ".join(" ↔ ".join(c) + " (" + ", ".join(f"{a}→{b}" for a in c for b in sorted(graph[a]) if b in c)
                       + ")" for c in cycles)
    assert cycles == [], f"import circles: {detail}"


def test_the_graph_sees_deferred_imports() -> None:
    """The checker itself: a function-level import is an edge (else the test above could not fail)."""
    modules = _modules()
    edges = _imports("payops.manual", modules["payops.manual"], modules)
    assert {"payops.runner", "payops.runstate", "payops.db"} <= edges
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    cli_edges = _imports("payops.cli", modules["payops.cli"], modules)
    assert "payops.manual" in cli_edges  # imported inside the commands' functions
