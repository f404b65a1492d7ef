"""dvc.yaml and real/dvc.yaml stay in step with the code: every package module a stage's notebook or
command can reach (the AST import graph, imports inside functions included) lies under one of the
stage's dependency folders and no dependency folder is one the stage never imports (so a change
reruns exactly the stages it can affect), the study stages read whole params sections, and every
stage records the settings it ran with beside its metrics."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from deadlib.tools.layout import closure, import_graph, module_files

REPO = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
REAL = yaml.safe_load((REPO / "real" / "dvc.yaml").read_text())["stages"]
STAGES = {**DVC, **{f"real/{name}": stage for name, stage in REAL.items()}}  # real/dvc.yaml's under real/
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
GRAPH = import_graph()


def stage_body(name: str) -> dict:
    stage = STAGES[name]
    return stage.get("do", stage)


def notebook_modules(path: Path) -> set[str]:
    """Package modules a notebook's code cells import (``from a.b import c`` counts a.b and a.b.c)."""
    cells = json.loads(path.read_text())["cells"]
    src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    src = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
    found = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update({node.module} | {f"{node.module}.{alias.name}" for alias in node.names})
    return found & set(GRAPH)


def stage_modules(name: str) -> set[str]:
    """Every package module the stage can load: its notebooks' and ``python -m`` modules' closure."""
    cmd = stage_body(name)["cmd"]
    start = set()
    for nb in re.findall(r"papermill (notebooks/\S+\.ipynb)", cmd):
        start |= notebook_modules(REPO / nb)
    start |= set(re.findall(r"\b(deadlib(?:\.\w+)+)", cmd)) & set(GRAPH)   # python -m X and the launcher's target
    assert start, f"stage {name}: found no deadlib entry point in its cmd"
    return closure(start, GRAPH)


FILES = {name: path.relative_to(REPO).as_posix() for name, path in module_files().items()}


def covered(module: str, deps: list[str]) -> bool:
    """A dep names the module's file or a folder above it."""
    return any(FILES[module] == d or FILES[module].startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_every_module_the_stage_can_import(name):
    deps = [d for d in stage_body(name)["deps"] if isinstance(d, str)]
    missing = sorted(m for m in stage_modules(name) if m != "deadlib" and not covered(m, deps))
    assert not missing, f"stage {name}: add the folders of {missing} to its deps in dvc.yaml"
    if "deadlib.data.facemesh" in stage_modules(name):
        assert "deadlib/assets" in deps, f"stage {name} loads the face topology: add deadlib/assets to its deps"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_name_no_package_folder_the_stage_never_imports(name):
    """A folder the stage cannot import would rerun it for nothing (hours for the study cells)."""
    deps = [d for d in stage_body(name)["deps"] if isinstance(d, str) and d.startswith("deadlib/")]
    used = {FILES[m].rsplit("/", 1)[0] for m in stage_modules(name) if m != "deadlib"}
    unused = sorted(d for d in deps if d != "deadlib/assets" and d.rstrip("/") not in used)
    assert not unused, f"stage {name}: {unused} in its deps, but it imports nothing from there"


def test_a_change_to_audio_to_expression_reruns_no_study_cell():
    for name in ("adapt", "baseline", "adapt_nomix", "eval_nopost", "evaluate", "train_prior", "real/adapt"):
        assert "deadlib/audio2expr" not in stage_body(name)["deps"], name
        assert not any(m.startswith("deadlib.audio2expr") for m in stage_modules(name)), name


def test_dependency_check_sees_imports_inside_functions():
    """The dub stage reaches the mixing of generic windows only through adapt-now's function-level import."""
    assert "deadlib.train.mixing" in stage_modules("dub")


@pytest.mark.parametrize("name", ["baseline", "adapt_nomix"])
def test_ablation_stages_read_the_whole_adapt_section_but_not_the_prior_mixing(name):
    params = [p for p in stage_body(name)["params"] if isinstance(p, str)]
    assert "adapt" in params and not any(p.startswith("adapt.") for p in params)
    assert "mixing" not in params and "mixing.prior" not in params


def test_ablation_size_is_a_study_size():
    """eval_nopost evaluates the adapt cell of N = study.ablation_size, so that cell must exist."""
    study = PARAMS["study"]
    assert study["ablation_size"] in study["sizes"]
    for name, over in study.get("by_profile", {}).items():
        assert over.get("ablation_size", study["ablation_size"]) in over.get("sizes", study["sizes"]), name


@pytest.mark.parametrize("name", sorted(DVC))
def test_every_metrics_file_has_its_settings_file_declared(name):
    body = stage_body(name)
    declared = [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", []) + body.get("metrics", [])]
    metrics = [p for p in declared if p.startswith("metrics/") and p.endswith(".json")
               and not p.endswith((".reasons.json", ".settings.json"))]
    for path in metrics:
        assert path[:-5] + ".settings.json" in declared, f"stage {name}: declare {path[:-5]}.settings.json"
