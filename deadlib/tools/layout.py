"""The package's import graph, and the check that it points one way.

Subpackages are layered so the tree reads like the paper's pipeline::

    core → data → synth | sources → model | audio2expr → train | sync → eval | dub → reenact | studio → tools

A module may import its own subpackage and any layer to its left; ``model`` (the renderer) and
``audio2expr``, ``train`` and ``sync`` (the project's lip-sync expert), and ``eval`` and ``dub``
sit side by side and do not import each other. Every import counts — module level, inside functions and
under ``TYPE_CHECKING`` — because a function-level import is still a dependency (it is how the
``dub`` stage reaches ``train.mixing`` through adapt-now). ``dvc.yaml``'s stage dependencies are
checked against the same graph (tests/unit/test_pipeline.py).

    python -m deadlib.tools.layout          # print the subpackage graph; exit 1 on a violation
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterable

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
LAYERS: dict[str, int] = {"core": 0, "data": 1, "synth": 2, "sources": 2, "model": 3, "audio2expr": 3, "train": 4,
                          "sync": 4, "eval": 5, "dub": 5, "reenact": 6, "studio": 6, "tools": 7}


def module_files(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every module of the package (``__init__`` as the package)."""
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(tree: ast.AST, module: str = "", is_package: bool = False) -> set[str]:
    """Every dotted name ``tree`` imports anywhere, inside functions too (``from pkg import x`` gives
    ``pkg`` and ``pkg.x``: x may be a module); relative imports resolved against ``module``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def imports_of(module: str, path: Path, known: Iterable[str]) -> set[str]:
    """Package modules ``module`` imports anywhere in its file (``from pkg import mod`` counts as mod)."""
    found = imported_names(ast.parse(path.read_text(), str(path)), module, path.name == "__init__.py")
    return found & set(known) - {module}


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    """Module → the package modules it imports (directly)."""
    files = module_files(root)
    return {name: imports_of(name, path, files) for name, path in files.items()}


def closure(start: Iterable[str], graph: dict[str, set[str]]) -> set[str]:
    """Every package module reachable from ``start`` (included), following imports."""
    seen, todo = set(), [m for m in start if m in graph]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name] - seen)
    return seen


def subpackage(module: str) -> str | None:
    """``deadlib.train.adapt`` → ``train``; top-level modules and the package itself → None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def package_edges(graph: dict[str, set[str]]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(importing subpackage, imported subpackage) → the module pairs behind that edge."""
    edges: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for src, targets in graph.items():
        for dst in targets:
            a, b = subpackage(src), subpackage(dst)
            if a and b and a != b:
                edges[(a, b)].append((src, dst))
    return dict(edges)


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that point up or sideways between layers, and modules outside any known layer."""
    problems = []
    for name in graph:
        parts = name.split(".")
        if len(parts) == 2 and parts[1] not in LAYERS and parts[1] != "__main__":
            problems.append(f"{name}: top-level module outside the layers {sorted(LAYERS)}; move it into one")
        elif len(parts) > 2 and parts[1] not in LAYERS:
            problems.append(f"{name}: subpackage {parts[1]!r} is not in LAYERS; add it with its layer")
    for (a, b), pairs in sorted(package_edges(graph).items()):
        if a in LAYERS and b in LAYERS and LAYERS[b] >= LAYERS[a]:
            how = "sideways" if LAYERS[a] == LAYERS[b] else "upward"
            shown = ", ".join(f"{s} → {d}" for s, d in sorted(pairs)[:3])
            problems.append(f"{how} import {a} → {b}: {shown}" + (" ..." if len(pairs) > 3 else ""))
    return problems


def report(graph: dict[str, set[str]]) -> str:
    """The subpackage graph as text: one line per subpackage, with what it imports."""
    edges = package_edges(graph)
    lines = []
    for pkg in sorted(LAYERS, key=lambda p: (LAYERS[p], p)):
        uses = sorted({b for (a, b) in edges if a == pkg}, key=lambda p: (LAYERS.get(p, 99), p))
        n = sum(1 for m in graph if subpackage(m) == pkg)
        lines.append(f"{pkg:6s} (layer {LAYERS[pkg]}, {n:2d} modules) imports: {', '.join(uses) or '—'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deadlib.tools.layout", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    graph = import_graph()
    print(report(graph))
    problems = violations(graph)
    for problem in problems:
        print("VIOLATION:", problem)
    print("layout ok" if not problems else f"{len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
