"""deadlib.tools.land_rerun: a rerun's lock entries and tracked outputs land only when it is a rerun
of this checkout (same code, params, upstream outputs), and nothing is written otherwise."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from deadlib.tools import land_rerun
from deadlib.tools.land_rerun import LandError, land


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _workspace(root: Path, code: str = "x = 1\n", lr: float = 0.1, metric: str = '{"psnr": 30}\n') -> Path:
    """A git repo with pipe/dvc.yaml (stage `train`, wdir ..), its code, params and a run's outputs + lock."""
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "pipe").mkdir()
    (root / "pipe" / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {
        "foreach": ["a", "b"], "do": {"wdir": "..", "cmd": "python train.py ${item}"}}}}))
    (root / "train.py").write_text(code)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": lr, "steps": 5}, "other": 1}))
    (root / ".gitignore").write_text("/models\n")
    (root / "models").mkdir()
    (root / "metrics").mkdir()
    stages = {}
    for item in ("a", "b"):
        (root / "models" / f"{item}.pt").write_bytes(item.encode() * 10)
        (root / "metrics" / f"{item}.json").write_text(metric)
        stages[f"train@{item}"] = {
            "cmd": f"python train.py {item}",
            "deps": [{"path": "train.py", "hash": "md5", "md5": _md5(root / "train.py"), "size": 6}],
            "params": {"params.yaml": {"train": {"lr": lr, "steps": 5}}},
            "outs": [{"path": f"models/{item}.pt", "hash": "md5", "md5": _md5(root / "models" / f"{item}.pt")},
                     {"path": f"metrics/{item}.json", "hash": "md5", "md5": _md5(root / "metrics" / f"{item}.json")}]}
    (root / "pipe" / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}, sort_keys=False))
    return root


def test_lands_the_entries_and_copies_only_tracked_outputs(tmp_path):
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    result = land(here, there, "pipe/dvc.lock", ["train"])
    assert result["entries"] == ["train@a", "train@b"]
    assert sorted(result["copied"]) == ["metrics/a.json", "metrics/b.json"]          # the models are DVC-cached
    assert (here / "metrics" / "a.json").read_text() == '{"psnr": 31}\n'
    assert (here / "models" / "a.pt").read_bytes() == b"a" * 10
    assert yaml.safe_load((here / "pipe" / "dvc.lock").read_text()) == yaml.safe_load((there / "pipe" / "dvc.lock").read_text())


@pytest.mark.parametrize("change, reason", [
    ({"code": "x = 2\n"}, "train.py differs"),
    ({"lr": 0.2}, "parameter train.lr"),
])
def test_refuses_a_rerun_of_other_code_or_params_and_writes_nothing(tmp_path, change, reason):
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n', **change)
    before = (here / "pipe" / "dvc.lock").read_text()
    with pytest.raises(LandError, match=reason):
        land(here, there, "pipe/dvc.lock", ["train"])
    assert (here / "pipe" / "dvc.lock").read_text() == before
    assert (here / "metrics" / "a.json").read_text() == '{"psnr": 30}\n'


def test_refuses_outputs_changed_after_the_run_and_unknown_stages(tmp_path):
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    (there / "metrics" / "b.json").write_text('{"psnr": 99}\n')
    with pytest.raises(LandError, match="metrics/b.json in the other workspace changed"):
        land(here, there, "pipe/dvc.lock", ["train"])
    with pytest.raises(LandError, match="no entry for"):
        land(here, there, "pipe/dvc.lock", ["evaluate"])
    assert land_rerun.main(["--root", str(here), "--from", str(there), "--lock", "pipe/dvc.lock",
                            "--stages", "train", "--dry-run"]) == 1


def test_upstream_outputs_are_checked_against_this_checkouts_records(tmp_path):
    """A dependency that a .dvc file (or another lock) records here is compared with that record,
    not hashed (the corpus or a model need not be in this workspace)."""
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    for root, md5 in ((here, "aaa.dir"), (there, "aaa.dir")):
        (root / "data.dvc").write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": "data/raw"}]}))
        lock = yaml.safe_load((root / "pipe" / "dvc.lock").read_text())
        for stage in lock["stages"].values():
            stage["deps"].append({"path": "data/raw", "hash": "md5", "md5": "aaa.dir"})
        (root / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    subprocess.run(["git", "-C", str(here), "add", "data.dvc", "pipe/dvc.lock"], check=True)
    assert land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)["entries"] == ["train@a", "train@b"]
    (here / "data.dvc").write_text(yaml.safe_dump({"outs": [{"md5": "bbb.dir", "path": "data/raw"}]}))
    with pytest.raises(LandError, match="data/raw is aaa.dir in the rerun, bbb.dir in this checkout"):
        land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)


def test_directory_hash_is_dvcs(tmp_path):
    """md5_dir gives the .dir hash DVC's own tree object computes (what dvc.lock records for a folder)."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    for rel, data in (("b.txt", b"bee"), ("a/z.bin", b"\x00" * 7), ("a/y/x.npz", b"nested"), ("A.txt", b"")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    tree = Tree()
    for f in sorted(tmp_path.rglob("*")):
        if f.is_file():
            tree.add(f.relative_to(tmp_path).parts, Meta(size=f.stat().st_size), HashInfo("md5", _md5(f)))
    tree.digest()
    assert land_rerun.md5_dir(tmp_path) == tree.hash_info.value


def test_entries_landed_together_count_as_each_others_records(tmp_path):
    """train@b reads train@a's model: landing both at once is consistent, landing b alone (on top of
    this checkout's older record of a) is not."""
    here = _workspace(tmp_path / "main")
    subprocess.run(["git", "-C", str(here), "add", "pipe/dvc.lock"], check=True)
    there = _workspace(tmp_path / "exp")
    (there / "models" / "a.pt").write_bytes(b"retrained")
    lock = yaml.safe_load((there / "pipe" / "dvc.lock").read_text())
    lock["stages"]["train@a"]["outs"][0]["md5"] = _md5(there / "models" / "a.pt")
    lock["stages"]["train@b"]["deps"].append({"path": "models/a.pt", "hash": "md5", "md5": _md5(there / "models" / "a.pt")})
    (there / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    with pytest.raises(LandError, match="models/a.pt is .* in the rerun, .* in this checkout's records"):
        land(here, there, "pipe/dvc.lock", ["train@b"], dry_run=True)
    assert land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)["entries"] == ["train@a", "train@b"]


def test_a_file_or_subfolder_of_a_recorded_folder_is_checked_through_its_cached_manifest(tmp_path):
    """dub reads data/raw/synthetic and models/prior/checkpoint.pt, inside folders the checkout records
    (data.dvc's data/raw): their hashes come from the folder's .dir manifest in a DVC cache."""
    entries = [{"md5": "m1", "relpath": "synthetic/a.mp4"}, {"md5": "m2", "relpath": "synthetic/b.npz"},
               {"md5": "m3", "relpath": "other.txt"}]
    folder = land_rerun.dir_hash(entries)
    manifest = tmp_path / ".dvc" / "cache" / "files" / "md5" / folder[:2] / folder[2:]
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps(entries))
    produced = {"data/raw": folder}
    sub = land_rerun.dir_hash([{"md5": "m1", "relpath": "a.mp4"}, {"md5": "m2", "relpath": "b.npz"}])
    assert land_rerun.recorded_file_md5("data/raw/synthetic", produced, (tmp_path,)) == sub
    assert land_rerun.recorded_file_md5("data/raw/other.txt", produced, (tmp_path,)) == "m3"
    assert land_rerun.recorded_file_md5("data/raw/missing", produced, (tmp_path,)) is None
    assert land_rerun.recorded_file_md5("models/x.pt", produced, (tmp_path,)) is None


def test_entries_the_rerun_did_not_change_are_not_landed(tmp_path):
    """Old foreach items DVC keeps in the lock, or stages not rerun, are identical to this checkout's
    records: they are skipped, not checked (their code may be older than this checkout's)."""
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    lock = yaml.safe_load((there / "pipe" / "dvc.lock").read_text())
    lock["stages"]["train@b"] = yaml.safe_load((here / "pipe" / "dvc.lock").read_text())["stages"]["train@b"]
    (there / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    (here / "train.py").write_text("x = 3\n")            # this checkout's code moved on: train@b's record is old
    with pytest.raises(LandError, match="train@a: train.py differs"):
        land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)
    (here / "train.py").write_text("x = 1\n")
    assert land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)["entries"] == ["train@a"]


def _add_summary_stage(root: Path) -> None:
    """A stage reading the folder `models`, which gathers the train outputs (as evaluate reads metrics/adapt)."""
    dvcyaml = yaml.safe_load((root / "pipe" / "dvc.yaml").read_text())
    dvcyaml["stages"]["summary"] = {"wdir": "..", "cmd": "python summary.py", "deps": ["models"]}
    (root / "pipe" / "dvc.yaml").write_text(yaml.safe_dump(dvcyaml))


def test_a_folder_of_other_stages_outputs_matches_through_their_records(tmp_path):
    here, there = _workspace(tmp_path / "main"), _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    for root in (here, there):
        _add_summary_stage(root)
    (there / "models" / "a.pt").write_bytes(b"A" * 10)               # the rerun's model; this workspace keeps the old
    lock = yaml.safe_load((there / "pipe" / "dvc.lock").read_text())
    lock["stages"]["train@a"]["outs"][0]["md5"] = _md5(there / "models" / "a.pt")

    def record_summary():
        lock["stages"]["summary"] = {"cmd": "python summary.py", "deps": [
            {"path": "models", "hash": "md5", "md5": land_rerun.md5_dir(there / "models")}]}
        (there / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))

    record_summary()
    with pytest.raises(LandError, match="models differs"):            # train's new record is not here yet
        land(here, there, "pipe/dvc.lock", ["summary"])
    land(here, there, "pipe/dvc.lock", ["train"])
    subprocess.run(["git", "-C", str(here), "add", "-A"], check=True)   # the lock is read as git tracks it
    assert land(here, there, "pipe/dvc.lock", ["summary"])["entries"] == ["summary"]
    (there / "models" / "stray.pt").write_bytes(b"?")                  # a file no record accounts for
    record_summary()
    with pytest.raises(LandError, match="models differs"):
        land(here, there, "pipe/dvc.lock", ["summary"])


def test_an_output_dvc_caches_gets_the_ignore_line_dvc_wrote_there_instead_of_a_copy(tmp_path):
    """A cached output new to this checkout (an executed notebook of a new cell) is not copied as an
    untracked file: its folder's .gitignore here gets the `/<name>` line DVC wrote in the rerun's workspace."""
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    (there / "reports").mkdir()
    (there / "reports" / "a.ipynb").write_text("{}")
    (there / "reports" / ".gitignore").write_text("/a.ipynb\n")
    lock = yaml.safe_load((there / "pipe" / "dvc.lock").read_text())
    lock["stages"]["train@a"]["outs"].append({"path": "reports/a.ipynb", "hash": "md5",
                                              "md5": _md5(there / "reports" / "a.ipynb")})
    (there / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    assert land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)["ignored"] == ["reports/.gitignore: /a.ipynb"]
    assert not (here / "reports").exists()                      # a dry run writes nothing
    result = land(here, there, "pipe/dvc.lock", ["train"])
    assert sorted(result["copied"]) == ["metrics/a.json", "metrics/b.json"]
    assert (here / "reports" / ".gitignore").read_text() == "/a.ipynb\n"
    assert not (here / "reports" / "a.ipynb").exists()
    assert land(here, there, "pipe/dvc.lock", ["train"])["ignored"] == []   # landed: nothing left to land or ignore


def test_a_workspace_that_is_not_a_git_checkout_is_refused(tmp_path):
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    subprocess.run(["rm", "-rf", str(there / ".git")], check=True)
    with pytest.raises(LandError, match="git checkouts"):
        land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)


def test_the_gitignore_dvc_wrote_is_taken_verbatim_when_it_holds_every_line(tmp_path):
    """DVC orders a folder's .gitignore by when each output was first written; a folder that another
    stage reads (evaluate reads metrics/adapt) must hash here as in the rerun, so DVC's file is copied
    byte for byte when it holds this checkout's lines and the new ones."""
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    (here / "reports").mkdir()
    (here / "reports" / ".gitignore").write_text("/old.ipynb\n")
    (there / "reports").mkdir()
    (there / "reports" / "a.ipynb").write_text("{}")
    (there / "reports" / ".gitignore").write_text("/a.ipynb\n/old.ipynb\n")          # DVC's order
    lock = yaml.safe_load((there / "pipe" / "dvc.lock").read_text())
    lock["stages"]["train@a"]["outs"].append({"path": "reports/a.ipynb", "hash": "md5",
                                              "md5": _md5(there / "reports" / "a.ipynb")})
    (there / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    land(here, there, "pipe/dvc.lock", ["train"])
    assert (here / "reports" / ".gitignore").read_text() == "/a.ipynb\n/old.ipynb\n"


def test_a_cached_output_git_still_tracks_here_leaves_the_index(tmp_path):
    """An output DVC caches, committed by hand here before DVC ignored it, would reach a clone as its old
    bytes beside the new record: landing takes it out of git's index (the file stays on disk)."""
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    for root in (here, there):
        (root / "reports").mkdir()
        (root / "reports" / "a.ipynb").write_text("{}" if root == there else "{old}")
        (root / "reports" / ".gitignore").write_text("/a.ipynb\n")
    subprocess.run(["git", "-C", str(here), "add", "-f", "reports/a.ipynb"], check=True)
    lock = yaml.safe_load((there / "pipe" / "dvc.lock").read_text())
    lock["stages"]["train@a"]["outs"].append({"path": "reports/a.ipynb", "hash": "md5",
                                              "md5": _md5(there / "reports" / "a.ipynb")})
    (there / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    assert land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)["untracked"] == ["reports/a.ipynb"]
    indexed = lambda: subprocess.run(["git", "-C", str(here), "ls-files", "reports"], capture_output=True,  # noqa: E731
                                     text=True, check=True).stdout
    assert indexed() == "reports/a.ipynb\n"                     # a dry run changes nothing
    result = land(here, there, "pipe/dvc.lock", ["train"])
    assert result["untracked"] == ["reports/a.ipynb"] and indexed() == ""
    assert (here / "reports" / "a.ipynb").is_file() and "reports/a.ipynb" not in result["copied"]


def test_an_entry_whose_outputs_moved_to_the_landed_stage_is_dropped(tmp_path):
    """The real study's scratch cells moved from `adapt` (a method axis of its matrix) to `baseline`: the
    old entries DVC keeps here would claim the same outputs as the landed ones, and the rerun's copy of
    them (DVC keeps it there too) is a leftover, not a rerun: a second landing finds nothing to land."""
    here = _workspace(tmp_path / "main")
    there = _workspace(tmp_path / "exp", metric='{"psnr": 31}\n')
    for root in (here, there):                                    # train@b's cell is retrain@b's now
        dvcyaml = yaml.safe_load((root / "pipe" / "dvc.yaml").read_text())
        dvcyaml["stages"]["retrain"] = {"foreach": ["b"], "do": dvcyaml["stages"]["train"]["do"]}
        dvcyaml["stages"]["train"]["foreach"] = ["a"]
        (root / "pipe" / "dvc.yaml").write_text(yaml.safe_dump(dvcyaml))
    old = yaml.safe_load((here / "pipe" / "dvc.lock").read_text())["stages"]["train@b"]
    lock = yaml.safe_load((there / "pipe" / "dvc.lock").read_text())
    lock["stages"]["retrain@b"] = lock["stages"]["train@b"]
    lock["stages"]["train@b"] = old                                # the leftover DVC keeps in the rerun's lock
    (there / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    result = land(here, there, "pipe/dvc.lock", ["train", "retrain"])
    assert sorted(result["entries"]) == ["retrain@b", "train@a"] and result["superseded"] == ["train@b"]
    landed = yaml.safe_load((here / "pipe" / "dvc.lock").read_text())["stages"]
    assert sorted(landed) == ["retrain@b", "train@a"]
    again = land(here, there, "pipe/dvc.lock", ["train", "retrain"], dry_run=True)
    assert again["entries"] == [] and again["superseded"] == []


def test_a_file_inside_a_folder_landed_in_the_same_call_is_checked_through_the_new_manifest(tmp_path):
    """reenact reads models/prior/checkpoint.pt inside train_prior's folder output. Landing both at once,
    the file on disk here is the old prior's (DVC caches the folder; nothing replaced it) and must not be
    taken for the record: the landed folder's manifest is. Landing the reader alone still compares it with
    this checkout's (old) folder record."""
    here, there = _workspace(tmp_path / "main"), _workspace(tmp_path / "exp")
    for root, weights in ((here, b"1200-step prior"), (there, b"3600-step prior")):
        (root / "models" / "prior").mkdir()
        (root / "models" / "prior" / "ckpt.pt").write_bytes(weights)
        entries = [{"md5": _md5(root / "models" / "prior" / "ckpt.pt"), "relpath": "ckpt.pt"}]
        folder = land_rerun.dir_hash(entries)
        manifest = root / ".dvc" / "cache" / "files" / "md5" / folder[:2] / folder[2:]
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps(entries))
        lock = yaml.safe_load((root / "pipe" / "dvc.lock").read_text())
        lock["stages"]["train@a"]["outs"].append({"path": "models/prior", "hash": "md5", "md5": folder})
        lock["stages"]["train@b"]["deps"].append({"path": "models/prior/ckpt.pt", "hash": "md5", "md5": entries[0]["md5"]})
        (root / "pipe" / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    subprocess.run(["git", "-C", str(here), "add", "pipe/dvc.lock"], check=True)
    assert land(here, there, "pipe/dvc.lock", ["train"], dry_run=True)["entries"] == ["train@a", "train@b"]
    with pytest.raises(LandError, match="models/prior/ckpt.pt is .* in the rerun, .* in this checkout's records"):
        land(here, there, "pipe/dvc.lock", ["train@b"], dry_run=True)
