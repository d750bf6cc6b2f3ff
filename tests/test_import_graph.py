"""Imports run one way: no cycle among the project's modules, counting imports inside functions
too (a deferred import still ties two modules together), read from the source without running it."""
from __future__ import annotations

import ast

from conftest import PROJECT_ROOT

PACKAGES = ("gz_experiments", "experiments")


def module_files() -> dict[str, object]:
    files = {}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = path
    return files


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (`from a import b` counts as a.b when b is a module)."""
    files = module_files()

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {resolve(f"{node.module}.{alias.name}") for alias in node.names}
        # a module importing its own package's __init__ is how Python loads it, not a dependency
        graph[module] = {m for m in found if m and m != module and not module.startswith(f"{m}.")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported] if imported in path else [module, imported]
            if imported not in state and (cycle := visit(imported, path + [imported])):
                return cycle
        state[module] = "done"
        return None

    return next((cycle for module in sorted(graph) if module not in state
                 for cycle in [visit(module, [module])] if cycle), None)


def test_the_project_has_no_import_cycle():
    graph = import_graph()
    assert {"gz_experiments.sweep.options", "gz_experiments.sweep.run"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_sweep_modules_import_in_one_direction():
    order = ["options", "claim", "study", "trial", "worker", "report", "run"]
    graph = import_graph()
    for position, name in enumerate(order):
        later = {f"gz_experiments.sweep.{m}" for m in order[position + 1:]} | {"gz_experiments.sweep"}
        assert not graph[f"gz_experiments.sweep.{name}"] & later, name


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_only_tracking_and_the_served_model_import_mlflow():
    """How a run looks in MLflow is decided in `tracking/`; the served model's modules are MLflow
    flavours. Everything else records through them (deferred imports counted too)."""
    owners = ("gz_experiments.tracking", "gz_experiments.served")
    importers = set()
    for module, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                importers.add(module)
    assert importers, "the scan found no MLflow import at all: it reads nothing"
    assert sorted(m for m in importers if not m.startswith(owners)) == []
