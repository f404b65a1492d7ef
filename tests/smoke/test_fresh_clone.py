"""The newcomer sequence of the README, replayed on a tiny corpus in temporary clones (issue 13).

A maintainer's repo ("origin", a clone of this one with a tiny synthetic corpus recorded in
data.dvc and the first stages reproduced and committed) is cloned again, as a newcomer would:
no DVC cache, no data. In that clone `python -m deadlib.synth.corpus ensure` must regenerate the corpus
and accept it, `dvc repro` of the first stages must produce the very bytes origin recorded in
dvc.lock, `dvc status` must be clean and a second `dvc repro` must do nothing. (Before the fix,
ensure refused every regenerated corpus in a fresh clone: `dvc status` says "not in cache" for
a matching output when the cache is empty; and prepare wrote wall-clock timings into its cache.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from support import dvc, git, run_in

from deadlib.core.config import stage_config
from deadlib.eval.study import expected_cells

STAGES = ("corpus_report", "prepare")
# Data outputs compared byte for byte with origin's dvc.lock. Executed notebooks (reports/*.ipynb)
# are not among them: papermill stamps execution times and widget ids into them on every run.
DATA_OUTS = ("data/prepared",)
TINY_SYNTH = {"seed": 3, "n_prior": 2, "n_heldout": 1, "duration_s": 4.0, "size": 128, "workers": 1}


def run(*args: str, cwd: Path) -> str:
    done = run_in(cwd, *args, timeout=900)
    return done.stdout + done.stderr


def locked_outs(root: Path) -> dict[str, str]:
    """md5 of every output of STAGES recorded in root's dvc.lock."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for s in STAGES for o in lock[s]["outs"]}


@pytest.fixture(scope="module")
def origin(tmp_path_factory, repo_root) -> Path:
    """A clone of this repo whose data.dvc records a tiny corpus and whose first stages ran."""
    if not (repo_root / ".git").exists():
        pytest.skip("not a git checkout: the fresh-clone replay needs `git clone`")
    root = tmp_path_factory.mktemp("origin") / "repo"
    git("clone", "--quiet", "--no-hardlinks", repo_root, root, cwd=root.parent)
    git("config", "user.email", "ci@example.invalid", cwd=root)
    git("config", "user.name", "ci", cwd=root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["synth"] = {**params["synth"], **TINY_SYNTH}
    # dvc.yaml's study matrix reads the base values (a profile cannot change a DVC matrix): give it
    # the smoke grid itself, as README's smoke command does with -S
    params["study"] = {**params["study"], **params["study"]["by_profile"]["smoke"]}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(sys.executable, "-m", "deadlib.synth.corpus", "generate", cwd=root)
    dvc("repro", "--force", *STAGES, cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "--quiet", "-m", "tiny corpus + first stages", cwd=root)
    return root


def test_newcomer_clone_reproduces_what_origin_records(origin, tmp_path):
    clone = tmp_path / "newcomer"
    git("clone", "--quiet", "--no-hardlinks", origin, clone, cwd=tmp_path)
    assert not (clone / "data" / "raw").exists() and not list((clone / ".dvc").glob("cache/*"))
    said = run(sys.executable, "-m", "deadlib.synth.corpus", "ensure", cwd=clone)
    assert "regenerated" in said and "matches data.dvc" in said, said
    assert "up to date" in dvc("status", "data.dvc", cwd=clone)
    dvc("repro", *STAGES, cwd=clone)
    ours, recorded = locked_outs(clone), locked_outs(origin)
    for path in DATA_OUTS:
        assert ours[path] == recorded[path], f"{path}: {ours[path]} here vs {recorded[path]} in origin's dvc.lock"
    assert "up to date" in dvc("status", *STAGES, cwd=clone)
    again = dvc("repro", *STAGES, cwd=clone)
    assert "didn't change, skipping" in again and "Running stage" not in again, again


def test_newcomer_runs_the_whole_pipeline_and_ends_up_to_date(origin, tmp_path):
    """The README's first command to its end (`corpus ensure && dvc repro`, every stage of dvc.yaml)
    on the tiny corpus at the smoke profile. The clone carries the committed metrics of the default
    run beside its own, as every newcomer's does (a stage that read them as its own failed here)."""
    clone = tmp_path / "newcomer"
    git("clone", "--quiet", "--no-hardlinks", origin, clone, cwd=tmp_path)
    run(sys.executable, "-m", "deadlib.synth.corpus", "ensure", cwd=clone)
    said = dvc("repro", cwd=clone)
    assert "Running stage 'evaluate'" in said and "Running stage 'dub'" in said, said[-2000:]
    assert "up to date" in dvc("status", "dvc.yaml", cwd=clone)  # real/dvc.yaml is the other command
    asked = expected_cells(stage_config("study", "smoke", params_path=clone / "params.yaml"))
    summary = json.loads((clone / "metrics" / "study.json").read_text())
    assert summary["n_cells"] == len(asked) and len(asked) < 60  # the smoke study's cells, not the default run's
