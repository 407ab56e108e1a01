"""The core's layers, read from its import statements: one direction, no cycle, no method.

Every ``import`` in ``harness/`` counts, deferred ones inside functions too: a cycle hidden in a
function body is still a module that needs something from above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

CORE = REPO_ROOT / "harness"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(CORE.rglob("*.py"))}


def imported(name: str) -> set[str]:
    """Every module `name` imports (absolute names, relative ones resolved)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found


GRAPH = {name: {target for target in imported(name) if target in MODULES and target != name} for name in MODULES}


def cycles() -> list[list[str]]:
    """The import graph's strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
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

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_the_core_has_no_import_cycle():
    assert cycles() == []


def test_the_core_imports_no_method():
    offenders = {name: sorted(t for t in imported(name) if t.split(".")[0] in ("baselines", "plugins")) for name in MODULES}
    assert {name: targets for name, targets in offenders.items() if targets} == {}


def imports_of(prefix: str) -> dict[str, set[str]]:
    """harness modules imported by the modules of package `prefix`."""
    return {name: targets for name, targets in GRAPH.items() if name == prefix or name.startswith(prefix + ".")}


@pytest.mark.parametrize(
    "layer, allowed",
    [
        ("harness.config", ("harness.config", "harness.errors")),
        ("harness.training", ("harness.training", "harness.config", "harness.errors", "harness.embeddings", "harness.capabilities",
                              "harness.progress", "harness.interfaces", "harness.pixels", "harness.atomic")),  # resume points
        ("harness.job", ("harness.job", "harness.config", "harness.registry", "harness.training", "harness.evaluation", "harness.features",
                         "harness.image_files", "harness.interfaces", "harness.capabilities", "harness.errors", "harness.atomic",
                         "harness.plugin_manager", "harness.progress", "harness")),  # a data-parallel job's other ranks reload the plugins, quietly
        ("harness.executors", ("harness.executors", "harness.job", "harness.tracking", "harness.features", "harness.plugin_manager",
                               "harness.registry", "harness.hookspecs", "harness.errors", "harness.atomic",
                               "harness.training.threads",  # each job's share of the cores as torch threads
                               "harness.termination",  # a worker closes its run KILLED on SIGTERM
                               "harness.lease", "harness.tracking_retry")),  # a cell held elsewhere, a store gone
    ],
)
def test_a_layer_imports_only_what_lies_below_it(layer, allowed):
    """config at the bottom; training and the job layer above it; executors only dispatch jobs
    (they never reach up into the experiment driver or the command line)."""

    def permitted(target: str) -> bool:
        return any(target == prefix or target.startswith(prefix + ".") for prefix in allowed if prefix != "harness") or target == "harness"

    above = {name: sorted(t for t in targets if not permitted(t)) for name, targets in imports_of(layer).items()}
    assert {name: targets for name, targets in above.items() if targets} == {}


def test_the_graph_sees_deferred_imports():
    """A guard on the test itself: an import inside a function body is an edge too."""
    assert "harness.job.run" in GRAPH["harness.executors.worker"]
