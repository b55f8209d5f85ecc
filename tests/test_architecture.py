"""Layering of the package: no import cycle among ``sklearn_ood`` modules.

Every ``import`` and ``from ... import`` statement of every module, at module
level and inside functions alike, is an edge from the importing module to the
module it names (``from .x import name`` is an edge to ``x.name`` when that is
a module, else to ``x``). A cycle is a strongly connected component of more
than one module, found with Tarjan's algorithm; a package's ``__init__``
counts as the package module, so a submodule importing its own package's
``__init__`` (which imports the submodule) is a cycle too.
"""

import ast
from pathlib import Path

import sklearn_ood

ROOT = Path(sklearn_ood.__file__).parent


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = ["sklearn_ood", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _targets(mods, name, node):
    """Modules of ``sklearn_ood`` that the import statement ``node`` of module
    ``name`` names."""
    package = name if mods[name].name == "__init__.py" else name.rsplit(".", 1)[0]
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        named = []
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            named.append(sub if sub in mods else target)
    return {t for t in named if t in mods and t != name}


def import_graph():
    mods = _modules()
    graph = {name: set() for name in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name] |= _targets(mods, name, node)
    return graph


def cycles(graph):
    """Strongly connected components of more than one node (iterative Tarjan)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
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


def test_cycle_finder_on_a_hand_made_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_is_seen_and_relative_imports_resolve():
    graph = import_graph()
    assert "sklearn_ood._mahalanobis" in graph and "sklearn_ood.utils._threads" in graph
    # `from .base import BaseDetector` in _mahalanobis names sklearn_ood.base
    assert "sklearn_ood.base" in graph["sklearn_ood._mahalanobis"]
    # `from ..utils._threads import single_blas_thread` two packages up
    assert "sklearn_ood.utils._threads" in graph["sklearn_ood._gaussian._estimate"]


def test_no_import_cycle_among_package_modules():
    assert cycles(import_graph()) == []
