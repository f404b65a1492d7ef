"""dvc.yaml stays in step with the code: stage deps name every deadlib module the stage's
notebook or command imports, and the ablation stages' params cover the adapt section."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def stage_body(name: str) -> dict:
    stage = DVC[name]
    return stage.get("do", stage)


def imported_deadlib_modules(import_lines: list[str]) -> set[str]:
    """deadlib modules loaded (transitively, at import time) by running ``import_lines``."""
    code = "\n".join(import_lines + ["import sys, json",
                                     "print(json.dumps(sorted(m for m in sys.modules if m.startswith('deadlib.'))))"])
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def notebook_imports(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    lines, buf = [], ""
    for line in src.splitlines():                         # join parenthesised multi-line imports
        if buf or re.match(r"\s*(from deadlib|import deadlib)", line):
            buf += " " + line.strip()
            if buf.count("(") == buf.count(")"):
                lines.append(buf.strip())
                buf = ""
    return lines


def stage_imports(name: str) -> list[str]:
    body = stage_body(name)
    lines = []
    for nb in re.findall(r"papermill (notebooks/\S+\.ipynb)", body["cmd"]):
        lines += notebook_imports(REPO / nb)
    lines += [f"import {m}" for m in re.findall(r"python -m (deadlib\.\w+)", body["cmd"]) if m != "deadlib.launch"]
    lines += [f"import {m}" for m in re.findall(r"deadlib\.launch .*? (deadlib\.\w+)", body["cmd"])]
    return lines


LIGHT = {"deadlib.config", "deadlib.progress", "deadlib.study_config"}   # settings plumbing, no numbers


@pytest.mark.parametrize("name", [n for n in DVC if n not in ("corpus_report",)])
def test_stage_deps_name_every_imported_module(name):
    body = stage_body(name)
    deps = {d for d in body["deps"] if isinstance(d, str)}
    needed = imported_deadlib_modules(stage_imports(name)) - LIGHT
    missing = sorted(m for m in needed if f"deadlib/{m.split('.')[1]}.py" not in deps)
    assert not missing, f"stage {name}: add to deps in dvc.yaml: {[f'deadlib/{m[8:]}.py' for m in missing]}"


@pytest.mark.parametrize("name", ["baseline", "adapt_nomix"])
def test_ablation_stages_track_every_adapt_key_but_mixed_ratio(name):
    listed = {p.split(".", 1)[1] for p in stage_body(name)["params"] if isinstance(p, str) and p.startswith("adapt.")}
    assert listed == set(PARAMS["adapt"]) - {"mixed_ratio"}


def test_ablation_size_is_a_study_size():
    """eval_nopost evaluates the adapt cell of N = study.ablation_size, so that cell must exist."""
    study = PARAMS["study"]
    assert study["ablation_size"] in study["sizes"]
    for name, over in study.get("by_profile", {}).items():
        assert over.get("ablation_size", study["ablation_size"]) in over.get("sizes", study["sizes"]), name


@pytest.mark.parametrize("module, attr", [("deadlib.study_config", "STUDY_PARAMS_YAML"),
                                          ("deadlib.a2e_stage", "A2E_PARAMS_YAML"),
                                          ("deadlib.dub", "DUB_PARAMS_YAML")])
def test_built_in_params_sections_equal_params_yaml(module, attr):
    """The code's copies of params sections (used only by a params file without them, e.g. the
    dub command outside this repository) must not drift from params.yaml, the source of truth."""
    import importlib

    built_in = yaml.safe_load(getattr(importlib.import_module(module), attr))
    for name, section in built_in.items():
        assert section == PARAMS[name], f"{module}.{attr} section {name!r} differs from params.yaml's: copy it over"
