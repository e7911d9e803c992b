"""The layers of docs/architecture.md: every import inside spinefe goes down (or stays within its
own subpackage), no module imports itself back through a cycle, and `dosimetry` imports nothing
from spinefe. Read from the source (ast), so imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Lowest first; a module may import from its own subpackage and from any lower layer. `mechanics`
#: and `dose` share a level and do not import each other.
LAYERS = {
    "common": 0,
    "config": 1,
    "geometry": 2,
    "mechanics": 3,
    "dose": 3,
    "planning": 4,
    "report": 5,
    "study": 6,
    "cli": 7,
}


def _source(module: str) -> Path:
    return (ROOT / Path(*module.split("."))).with_suffix(".py")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Modules of spinefe/dosimetry that `path` imports (absolute names, functions included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from spinefe.geometry import mesh` imports the module spinefe.geometry.mesh
            found |= {f"{module}.{a.name}" for a in node.names
                      if _source(f"{module}.{a.name}").exists()}
    return {m for m in found if m.split(".")[0] in ("spinefe", "dosimetry")}


def _graph(package: str) -> dict[str, set[str]]:
    files = sorted((ROOT / package).rglob("*.py"))
    names = {_module_name(f) for f in files}
    return {_module_name(f): {m for m in _imports(f) if m in names and m != _module_name(f)}
            for f in files}


def _layer(module: str) -> int | None:
    """The layer of a module of spinefe; None for spinefe itself and spinefe.__main__."""
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in (ROOT / "spinefe").iterdir()
                   if p.is_dir() and (p / "__init__.py").exists()}
    assert subpackages == set(LAYERS)


def test_imports_go_down():
    upward = []
    for module, deps in _graph("spinefe").items():
        mine = _layer(module)
        for dep in deps:
            theirs = _layer(dep)
            if mine is None or theirs is None:  # spinefe/__init__, __main__
                continue
            if module.split(".")[1] == dep.split(".")[1]:
                continue
            if theirs >= mine:
                upward.append(f"{module} -> {dep}")
    assert not upward, "imports from a layer above or beside:\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize("package", ["spinefe", "dosimetry"])
def test_no_cycles(package):
    graph = _graph(package)
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_dosimetry_imports_nothing_from_spinefe():
    offending = {f"{_module_name(f)} -> {m}" for f in (ROOT / "dosimetry").rglob("*.py")
                 for m in _imports(f) if m.startswith("spinefe")}
    assert not offending
