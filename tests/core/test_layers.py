"""Imports in the core run downward only (DESIGN.md, "Layers").

Foundation -> io, models -> priors -> manipulations (shutter, portrait, matting; never
each other) -> engines -> services (server, cluster, streaming, publish, install) ->
front ends (cli, demo, bench). Every `import priorfx...` in core/priorfx, at module level
or inside a function, is checked; there are no exceptions.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "core" / "priorfx"

LAYERS = {
    0: {"errors", "config", "atomic", "progress", "provenance", "cache", "hosts", "__init__"},
    1: {"io", "colour", "models", "samples"},
    2: {"priors"},
    3: {"shutter", "portrait", "matting"},
    4: {"engines"},
    5: {"server", "cluster", "streaming", "publish", "install"},
    6: {"cli", "demo", "bench", "scenes"},
}
LEVEL = {name: level for level, names in LAYERS.items() for name in names}
MANIPULATIONS = LAYERS[3]


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every priorfx module `path` imports (absolute or relative)."""
    unit = _unit(path)
    package = unit.split(".") if path.name == "__init__.py" else unit.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name[len("priorfx."):] for a in node.names if a.name.startswith("priorfx.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "priorfx" or node.module.startswith("priorfx.")):
                mod = node.module[len("priorfx."):] if node.module != "priorfx" else ""
            else:
                continue
            if mod:
                found.add(mod)
            else:   # `from priorfx import io` names modules
                found |= {a.name for a in node.names}
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def violations() -> set[tuple[str, str]]:
    bad = set()
    for path in PACKAGE.rglob("*.py"):
        here = _unit(path)
        top = _top(here)
        for target in _imports(path):
            other = _top(target)
            if other == top or other not in LEVEL:
                continue
            upward = LEVEL[other] > LEVEL.get(top, 0)
            across = top in MANIPULATIONS and other in MANIPULATIONS
            if upward or across:
                bad.add((here, target))
    return bad


def test_every_top_level_module_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert tops - set(LEVEL) == set(), "give each new module a layer in LAYERS (and in DESIGN.md)"


def test_no_new_upward_import():
    assert violations() == set(), "imports that run upward or across manipulations"
