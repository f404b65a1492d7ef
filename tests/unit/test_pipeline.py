"""dvc.yaml and real/dvc.yaml stay in step with the code: every stage depends on exactly the deadlib
files its notebook or command can load (deadlib.tools.stage_deps: the AST import closure, imports
inside functions included, with the packages' __init__ files and the assets folder), so a change
reruns exactly the stages it can affect; the study stages read whole params sections, and every
stage records the settings it ran with beside its metrics."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from deadlib.tools.stage_deps import (
    DVC_FILES,
    dependents,
    mismatch,
    module_closure,
    scan,
    write,
)

REPO = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
REAL = yaml.safe_load((REPO / "real" / "dvc.yaml").read_text())["stages"]
STAGES = {**DVC, **{f"real/{name}": stage for name, stage in REAL.items()}}  # real/dvc.yaml's under real/
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def stage_body(name: str) -> dict:
    stage = STAGES[name]
    return stage.get("do", stage)


@pytest.mark.parametrize("path", DVC_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_stage_depends_on_exactly_the_package_files_it_can_load(path):
    stale = mismatch(path)
    assert not stale, f"{stale}: run python -m deadlib.tools.stage_deps --write"


def test_a_removed_or_needless_dep_is_reported():
    text = (REPO / "dvc.yaml").read_text()
    start = text.index("\n  train_prior:")
    end = text.index("\n  adapt:", start)
    body = text[start:end]
    loop = re.compile(r"deadlib/train/loop\.py,\s+")  # wherever --write wrapped the line
    assert len(loop.findall(body)) == 1 and body.count(" data/prepared]") == 1
    body = loop.sub("", body).replace(" data/prepared]", " deadlib/studio.py, data/prepared]")
    stale = mismatch(REPO / "dvc.yaml", text=text[:start] + body + text[end:])
    assert stale == {"train_prior": (["deadlib/train/loop.py"], ["deadlib/studio.py"])}


PRIOR_AND_STUDY = {"dvc.yaml:train_prior", "dvc.yaml:adapt", "dvc.yaml:baseline", "dvc.yaml:adapt_nomix",
                   "dvc.yaml:eval_nopost", "dvc.yaml:evaluate", "real/dvc.yaml:train_prior", "real/dvc.yaml:adapt",
                   "real/dvc.yaml:evaluate"}


@pytest.mark.parametrize("path, owner", [("deadlib/audio2expr/stage.py", "dvc.yaml:train_audio2expr"),
                                         ("deadlib/dub/dubbing.py", "dvc.yaml:dub"),
                                         ("deadlib/data/prepare.py", "dvc.yaml:prepare")])
def test_an_edit_outside_the_renderer_reruns_neither_the_prior_nor_a_study_cell(path, owner):
    """Hours of prior training and every study cell: only an edit of code they can run restarts them."""
    reruns = set(dependents(path))
    assert owner in reruns, f"{path} should be a dependency of {owner}: {sorted(reruns)}"
    assert not reruns & PRIOR_AND_STUDY, f"an edit of {path} reruns {sorted(reruns & PRIOR_AND_STUDY)}"


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


TOY = {  # a.x imports b.y inside a function, b.y imports b.z relatively; c.w reads the assets folder
    "deadlib/__init__.py": "",
    "deadlib/a/__init__.py": "",
    "deadlib/a/x.py": "def f():\n    from deadlib.b import y\n    return y\n",
    "deadlib/a/launch.py": "import sys\n",
    "deadlib/b/__init__.py": "",
    "deadlib/b/y.py": "from . import z\n",
    "deadlib/b/z.py": '"""Mentions assets in a docstring only."""\n',
    "deadlib/c/__init__.py": "",
    "deadlib/c/w.py": "from pathlib import Path\nASSET = Path(__file__).parents[1] / 'assets' / 't.npz'\n",
    "deadlib/assets/t.npz": "",
}


def test_the_closure_follows_imports_inside_functions_and_adds_the_init_files_on_the_way(tmp_path):
    write_files(tmp_path, TOY)
    found = {p.relative_to(tmp_path).as_posix() for p in module_closure(["deadlib.a.x"], scan(tmp_path / "deadlib"))}
    assert found == {"deadlib/__init__.py", "deadlib/a/__init__.py", "deadlib/a/x.py",
                     "deadlib/b/__init__.py", "deadlib/b/y.py", "deadlib/b/z.py"}
    found = {p.relative_to(tmp_path).as_posix() for p in module_closure(["deadlib.c.w"], scan(tmp_path / "deadlib"))}
    assert found == {"deadlib/__init__.py", "deadlib/c/__init__.py", "deadlib/c/w.py", "deadlib/assets"}


def test_stale_deps_of_a_notebook_and_a_launched_module_are_found_and_rewritten(tmp_path):
    """Under wdir .. (real/dvc.yaml's way), a foreach stage and a launcher naming its module."""
    write_files(tmp_path, TOY)
    cell = nbformat.v4.new_code_cell("%matplotlib inline\nfrom deadlib.a import x")   # a magic line too
    notebook = nbformat.v4.new_notebook(cells=[cell])
    (tmp_path / "notebooks").mkdir()
    nbformat.write(notebook, tmp_path / "notebooks" / "n.ipynb")
    dvc = tmp_path / "sub" / "dvc.yaml"
    write_files(tmp_path, {"sub/dvc.yaml": """# a comment that stays
stages:
  nb:
    wdir: ..
    cmd: papermill notebooks/n.ipynb out.ipynb -p x 1
    deps: [notebooks/n.ipynb, deadlib/a, "${raw}"]  # kept too
  launched:
    foreach: [1, 2]
    do:
      wdir: ..
      cmd: mkdir -p out && python -m deadlib.a.launch --n ${item} deadlib.c.w --out out
      deps: [deadlib/__init__.py, deadlib/a/__init__.py, deadlib/a/launch.py, data]
"""})
    root = tmp_path / "deadlib"
    assert mismatch(dvc, root) == {
        "nb": (["deadlib/__init__.py", "deadlib/a/__init__.py", "deadlib/a/x.py", "deadlib/b/__init__.py",
                "deadlib/b/y.py", "deadlib/b/z.py"], ["deadlib/a"]),
        "launched": (["deadlib/assets", "deadlib/c/__init__.py", "deadlib/c/w.py"], [])}
    assert write(dvc, root) == ["launched", "nb"] and mismatch(dvc, root) == {}
    after = dvc.read_text()
    assert "# a comment that stays" in after and '"${raw}"]  # kept too' in after
    assert yaml.safe_load(after)["stages"]["nb"]["deps"][0] == "notebooks/n.ipynb"
    assert yaml.safe_load(after)["stages"]["launched"]["do"]["deps"] == [
        "deadlib/__init__.py", "deadlib/a/__init__.py", "deadlib/a/launch.py", "deadlib/assets",
        "deadlib/c/__init__.py", "deadlib/c/w.py", "data"]
    assert all(len(line) <= 110 for line in after.splitlines())


def test_a_command_running_no_such_module_is_an_error(tmp_path):
    write_files(tmp_path, {**TOY, "dvc.yaml": "stages:\n  s:\n    cmd: python -m deadlib.a.nope\n    deps: []\n"})
    with pytest.raises(ValueError, match="deadlib.a.nope"):
        mismatch(tmp_path / "dvc.yaml", tmp_path / "deadlib")


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
