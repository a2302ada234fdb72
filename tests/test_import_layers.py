"""The import graph of trainkit/: no cycle between modules, and no package imports one of a higher layer.

Run alone with `python -m pytest -q tests/test_import_layers.py` (static: reads the sources with ast, imports nothing).
Imports under `if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trainkit"

# Lowest first; a package may import only from its own layer or lower ones. Same-layer packages never import each
# other (checked too), so the order within a layer does not matter.
LAYERS: list[set[str]] = [
    {"errors", "loggers", "known_warnings"},
    {"hpc"},  # the doctor's preflight reads the SLURM layout the way hpc's topology check does
    {"augment", "losses", "metrics", "models", "optim", "doctor"},
    {"checkpoints"},  # the one weights-only checkpoint loader (tasks rebuilt from a file by the class it records)
    {"pretrained"},  # local pretrained weights into timm backbones, read through that loader
    {"runs"},
    {"saved_config"},
    {"reports"},  # tasks call their report writer at test end
    {"data"},
    {"tasks"},
    {"callbacks", "trackers", "checks", "tune", "help_parser"},  # a trial: a plain `trainkit fit` + tune's reporter
    {"cli"},
    {"commands"},
    {"console"},
    {"__main__"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """trainkit modules imported by `path`, at the top or inside functions, but not under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree)
               if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("trainkit"):
            # `from trainkit.optim import schedule_shapes` imports that module; `... import OptimizerConfig` the package
            found.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                         for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("trainkit"))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the trainkit modules it imports (names that are not modules, like classes, are dropped)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path, set(modules)) if m in modules and m != name}
            for name, path in modules.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer() -> None:
    layered = set().union(*LAYERS)
    missing = {_package(m) for m in import_graph()} - layered - {"__init__"}
    assert not missing, f"add these trainkit packages to LAYERS: {sorted(missing)}"


def test_no_import_from_a_higher_layer() -> None:
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items() for target in targets
        if _package(module) in layer and _package(target) in layer and _package(module) != _package(target)
        and layer[_package(target)] >= layer[_package(module)]
    )
    assert not wrong, "imports against the layer order (or between packages of one layer):\n" + "\n".join(wrong)


def test_no_cycle_between_packages_or_modules() -> None:
    graph = import_graph()
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        packages[_package(module)] |= {_package(t) for t in targets} - {_package(module)}
    for name, edges in (("package", packages), ("module", graph)):
        cycle = _find_cycle(edges)
        assert cycle is None, f"{name} import cycle: {' -> '.join(cycle)}"


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None
