"""imaging_io's modules import each other without a loop.

The graph is read with ``ast`` from every ``imaging_io/*.py``, counting every import of a
sibling module: at the top, inside functions and under ``TYPE_CHECKING``. A loop is named
module by module (with the line of each import), so the message says what to cut.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "imaging_io"
NAME = PACKAGE.name


def _sibling_imports(path: Path, modules: set[str]) -> dict[str, int]:
    """The sibling modules ``path`` imports, each with the line of its first import."""
    found: dict[str, int] = {}

    def add(module: str, line: int) -> None:
        found.setdefault(module, line)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == NAME and len(parts) > 1:
                    add(parts[1], node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split(".")[0] == NAME:
                parts = node.module.split(".")
            elif node.level == 1:
                parts = [NAME, *(node.module.split(".") if node.module else [])]
            else:
                continue
            if len(parts) > 1:
                add(parts[1], node.lineno)
            else:  # from imaging_io import measure / from . import measure
                for alias in node.names:
                    add(alias.name if alias.name in modules else "__init__", node.lineno)
    found.pop(path.stem, None)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported sibling module: line}."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {p.stem: _sibling_imports(p, modules) for p in sorted(PACKAGE.glob("*.py"))}


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import loop as ``[a, b, …, a]``, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_graph_sees_function_level_and_type_checking_imports():
    graph = import_graph()
    assert "segmentation" in graph["measure"]  # top level
    assert "rtstruct" in graph["segmentation"]  # inside read_segmentation
    assert "measure" in graph["study"]  # under TYPE_CHECKING and inside a function


def test_the_cycle_finder_names_a_loop():
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7}, "d": {"a": 1}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert loops(graph) == [{"a", "b", "c"}]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None
    assert loops({"a": {"b": 1}, "b": {}}) == []


def loops(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """The modules caught in import loops: strongly connected components of 2+ modules."""
    reach = {m: _reachable(graph, m) for m in graph}
    groups: list[set[str]] = []
    for m in sorted(graph):
        group = {n for n in reach[m] if m in reach.get(n, set())}
        if len(group) > 1 and group not in groups:
            groups.append(group)
    return groups


def _reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), {}):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_imaging_io_has_no_import_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle is not None:
        steps = [f"  {a}.py:{graph[a][b]} imports {b}" for a, b in itertools.pairwise(cycle)]
        tangled = "; ".join(", ".join(sorted(group)) for group in loops(graph))
        raise AssertionError(
            f"imaging_io import loop: {' → '.join(cycle)}\n"
            + "\n".join(steps)
            + f"\nmodules in loops: {tangled}"
        )
