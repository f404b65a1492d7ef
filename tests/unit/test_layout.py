"""The package's subpackages import one way (deadlib.tools.layout), and the check can fail."""

from __future__ import annotations

from pathlib import Path

from deadlib.tools.layout import closure, import_graph, main, report, violations


def test_the_package_imports_point_one_way():
    graph = import_graph()
    assert violations(graph) == [], report(graph)
    assert main([]) == 0


def write(root: Path, rel: str, text: str = "") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def toy_package(tmp_path: Path, model_source: str) -> Path:
    root = tmp_path / "deadlib"
    for pkg in ("", "core", "data", "model", "train", "eval", "dub"):
        write(root, f"{pkg}/__init__.py" if pkg else "__init__.py")
    write(root, "core/config.py", "import json\n")
    write(root, "data/video.py", "from deadlib.core.config import x\n")
    write(root, "train/loop.py", "from deadlib.model import net\n")
    write(root, "model/net.py", model_source)
    write(root, "eval/metrics.py", "")
    write(root, "dub/run.py", "")
    return root


def test_an_upward_import_inside_a_function_is_a_violation(tmp_path):
    clean = import_graph(toy_package(tmp_path / "a", "from deadlib.data.video import y\n"))
    assert violations(clean) == []
    upward = import_graph(toy_package(tmp_path / "b", "def f():\n    from deadlib.train import loop\n"))
    problems = violations(upward)
    assert len(problems) == 1 and "upward import model → train" in problems[0], problems
    assert "deadlib.train.loop" in closure(["deadlib.model.net"], upward)


def test_siblings_and_stray_modules_are_violations(tmp_path):
    root = toy_package(tmp_path, "")
    write(root, "eval/metrics.py", "from ..dub import run\n")            # relative, sideways
    write(root, "helpers.py", "")                                         # top-level module outside the layers
    problems = violations(import_graph(root))
    assert any("sideways import eval → dub" in p for p in problems), problems
    assert any("deadlib.helpers: top-level module" in p for p in problems), problems
