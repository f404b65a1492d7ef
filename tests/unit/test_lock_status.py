"""Which lock records the committed code would reproduce, from git alone (deadlib.tools.lock_status)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deadlib.tools import lock_status as ls

PIPELINE = {
    "stages": {
        "make": {"cmd": "python make.py", "deps": ["make.py"], "params": ["k"], "outs": ["made.txt"]},
        "use": {"cmd": "python use.py", "deps": ["made.txt", "use.py"], "outs": ["used.txt"]},
        "never": {"cmd": "python make.py", "deps": ["make.py"], "outs": ["never.txt"]},
    }
}


def _run(cwd: Path, *args: str) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A git + DVC repository where ``make`` and ``use`` (which reads make's output) were run and
    ``never`` was not."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "make.py").write_text("import yaml; open('made.txt', 'w').write(str(yaml.safe_load(open('params.yaml'))['k']))\n")
    (root / "use.py").write_text("open('used.txt', 'w').write(open('made.txt').read() * 2)\n")
    (root / "params.yaml").write_text("k: 1\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    _run(root, "git", "init", "-q")
    _run(root, sys.executable, "-m", "dvc", "init", "-q")
    _run(root, sys.executable, "-m", "dvc", "repro", "-q", "use")
    ls.lock_status.cache_clear()
    return root


def _states(root: Path) -> dict[str, tuple[str, list[str]]]:
    ls.lock_status.cache_clear()
    return {r.name: (r.state, r.reasons) for r in ls.lock_status(root)}


def test_records_of_this_code_are_current_with_or_without_the_data(toy):
    assert {k: v[0] for k, v in _states(toy).items()} == {"make": ls.CURRENT, "use": ls.CURRENT, "never": ls.NOT_RUN}
    # A fresh clone has no outputs (and no cache): the answer must not change, unlike `dvc status`.
    for out in ("made.txt", "used.txt"):
        (toy / out).unlink()
    shutil.rmtree(toy / ".dvc" / "cache", ignore_errors=True)
    assert {k: v[0] for k, v in _states(toy).items()} == {"make": ls.CURRENT, "use": ls.CURRENT, "never": ls.NOT_RUN}


def test_a_code_change_makes_its_stage_and_everything_downstream_stale(toy):
    (toy / "use.py").write_text("open('used.txt', 'w').write(open('made.txt').read() * 3)\n")
    states = _states(toy)
    assert states["make"][0] == ls.CURRENT
    assert states["use"] == (ls.STALE, ["`use.py` modified"])

    (toy / "use.py").write_text("open('used.txt', 'w').write(open('made.txt').read() * 2)\n")
    (toy / "make.py").write_text((toy / "make.py").read_text() + "# a comment is a change too\n")
    states = _states(toy)
    assert states["make"] == (ls.STALE, ["`make.py` modified"])
    assert states["use"] == (ls.STALE, ["upstream `make` is stale"])


def test_a_param_change_is_named(toy):
    (toy / "params.yaml").write_text("k: 2\n")
    states = _states(toy)
    assert states["make"] == (ls.STALE, ["param `k` modified"])
    assert states["use"][0] == ls.STALE


def test_a_record_made_from_other_upstream_bytes_is_stale(toy):
    """``use`` recorded on a ``made.txt`` other than the one ``make``'s record gives: e.g. a lock
    entry committed after its upstream was rerun and came out different."""
    lock = yaml.safe_load((toy / "dvc.lock").read_text())
    for dep in lock["stages"]["use"]["deps"]:
        if dep["path"] == "made.txt":
            dep["md5"] = "0" * 32
    (toy / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    states = _states(toy)
    assert states["make"][0] == ls.CURRENT
    assert states["use"] == (ls.STALE, ["recorded on another `made.txt` than `make` records"])


def test_a_changed_command_or_dependency_list_is_stale(toy):
    pipeline = yaml.safe_load((toy / "dvc.yaml").read_text())
    pipeline["stages"]["use"]["cmd"] = "python use.py --twice"
    pipeline["stages"]["make"]["deps"] = ["make.py", "use.py"]
    (toy / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    states = _states(toy)
    assert "command changed" in states["use"][1]
    assert states["make"][0] == ls.STALE and "list of dependencies changed" in states["make"][1]


def test_the_table_counts_every_state(toy):
    (toy / "use.py").write_text("# changed\n")
    ls.lock_status.cache_clear()
    rows = {r[0]: r[1:5] for r in ls.status_table(toy, "dvc.yaml")}
    assert rows == {"`make`": ["1", "1", "0", "0"], "`use`": ["1", "0", "1", "0"], "`never`": ["1", "0", "0", "1"]}
    assert ls.state_of_output(toy, "used.txt") == ls.STALE
    assert ls.state_of_output(toy, "nothing.txt") is None
