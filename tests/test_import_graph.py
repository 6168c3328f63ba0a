"""The packages' import graph: no module imports another that (directly or not) imports it back — counting
imports inside functions too, which otherwise hide a cycle — and the floors hold: ``dags`` → ``usersync_airflow``
→ ``usersync``, never upwards; inside the domain every import points down ``DOMAIN_LAYERS``."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.repo import REPO

PLUGINS = REPO / "plugins"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PLUGINS).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module → the project modules it imports (anywhere in the file; ``from pkg import sub`` names ``pkg.sub``)."""
    files = {_module_name(p): p for root in ("usersync", "usersync_airflow") for p in (PLUGINS / root).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_domain_never_imports_the_airflow_adapters():
    upward = {(m, t) for m, targets in import_graph().items() if m.startswith("usersync.") or m == "usersync"
              for t in targets if t.startswith("usersync_airflow")}
    assert upward == set()


#: The domain's layers, lowest first: a module may import its own layer and those below it, never one above.
#: ``core`` is the ground floor (users-table definition, the rules sections' base, run folders, progress);
#: sources and their writer contract know nothing of rules files; rules validate each source's own spec; plan
#: decides from rules and records; store writes (and reads) the users database by a plan; explain renders what
#: a run decided; run chains the steps; the command line sits on top.
DOMAIN_LAYERS = ("core", "sources", "rules", "plan", "store", "explain", "run", "cli")


def layer_of(module: str) -> str:
    """``usersync.plan.diff`` → ``plan``; the package itself and ``__main__`` are the command line's."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "cli"
    return parts[1]


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    rank = {name: i for i, name in enumerate(DOMAIN_LAYERS)}
    return {(module, target) for module, targets in graph.items() if module.split(".")[0] == "usersync"
            for target in targets if target.split(".")[0] == "usersync"
            and rank[layer_of(target)] > rank[layer_of(module)]}


def test_every_domain_package_has_a_layer():
    packages = {layer_of(m) for m in import_graph() if m.split(".")[0] == "usersync"}
    assert packages <= set(DOMAIN_LAYERS), f"place {sorted(packages - set(DOMAIN_LAYERS))} in DOMAIN_LAYERS"


def test_every_domain_import_points_down_the_layers():
    assert upward_imports(import_graph()) == set()


def test_the_layer_check_finds_an_upward_import():
    graph = {"usersync.plan.diff": {"usersync.store.apply", "usersync.rules.fields"},
             "usersync.store.apply": {"usersync.plan.diff"}, "usersync.rules.fields": set()}
    assert upward_imports(graph) == {("usersync.plan.diff", "usersync.store.apply")}
