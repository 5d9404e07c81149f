"""No import circle between modules (issue 21, point 5): not across stages (test_architecture checks
that) and not inside one subpackage either, lazy imports inside functions included.

The package's own modules and the benchmark harness (``bench/``) are read with ``ast`` and the graph
of "module imports module" is searched for a cycle; the test names one when it finds it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit.test_architecture import ROOT, imported_modules, module_name

REPO = ROOT.parent


def _runtime_source(source: str) -> str:
    """``source`` without its ``if TYPE_CHECKING:`` blocks: imports for type hints only run no code."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [
                child
                for child in body
                if not (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            ] or [ast.Pass()]
    return ast.unparse(tree)


def _graph(root: Path, name_of) -> dict[str, set[str]]:
    """``module -> modules of the same tree it imports`` (submodule imports resolved to the module)."""
    paths = sorted(root.rglob("*.py"))
    names = {name_of(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        targets = set()
        for _, target in imported_modules(_runtime_source(path.read_text()), name, path.name == "__init__.py"):
            while target and target not in names:  # `from .x import name` -> module x
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):  # a package's own __init__
                targets.add(target)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _package_graph() -> dict[str, set[str]]:
    graph = _graph(ROOT, module_name)
    # the top-level __init__ re-exports everything: it imports every stage, none imports it back
    graph.pop("induction_nnsight", None)
    return {name: {t for t in targets if t != "induction_nnsight"} for name, targets in graph.items()}


def _bench_graph() -> dict[str, set[str]]:
    bench = REPO / "bench"
    if not bench.is_dir():
        pytest.skip("no bench/ folder next to the package")
    return _graph(bench, lambda p: "bench." + ".".join(p.relative_to(bench).with_suffix("").parts))


@pytest.mark.parametrize("graph", [_package_graph, _bench_graph], ids=["package", "bench"])
def test_no_import_cycle(graph):
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_type_checking_imports_are_not_runtime_imports():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nfrom .c import C\n"
    assert "from .b" not in _runtime_source(source) and "from .c import C" in _runtime_source(source)


def test_the_cycle_finder_finds_one():
    """Self-test on a hand-made graph: a -> b -> c -> a is found, a tree is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
