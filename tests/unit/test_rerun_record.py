"""A rerun's record (deadlib.tools.rerun_record) says what was identical and by how much metrics moved."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from deadlib.tools import readme_tables, rerun_record


def _lock(prepared_md5: str, prior_md5: str, code_md5: str = "c0de") -> dict:
    return {"schema": "2.0", "stages": {
        "prepare": {"cmd": "x", "deps": [{"path": "data/raw", "md5": "raw.dir"}, {"path": "deadlib/data", "md5": code_md5}],
                    "params": {"params.yaml": {"prepare": {"fps": 25}}},
                    "outs": [{"path": "data/prepared", "md5": prepared_md5}, {"path": "metrics/prepare.json", "md5": "m1"},
                             {"path": "metrics/prepare.settings.json", "md5": "s1"}]},
        "train_prior": {"cmd": "y", "deps": [{"path": "data/prepared", "md5": prepared_md5},
                                             {"path": "deadlib/train", "md5": "7a1n"}],
                        "outs": [{"path": "models/prior", "md5": prior_md5}, {"path": "metrics/train_prior.json", "md5": "m2"}]},
    }}


@pytest.fixture
def repo(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "data.dvc").write_text(yaml.safe_dump({"outs": [{"path": "data/raw", "md5": "raw.dir"}]}))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(_lock("aaa.dir", "ppp.dir")))
    (tmp_path / "metrics" / "prepare.json").write_text(json.dumps({"frames": 100, "jitter": 0.5, "name": "x"}))
    (tmp_path / "metrics" / "train_prior.json").write_text(json.dumps({"psnr": 30.0, "steps": 10}))
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "record"], check=True)
    return tmp_path


def test_an_identical_rerun_is_identical_everywhere(repo):
    r = rerun_record.record(repo, "same", ["prepare", "train_prior"], "HEAD", "here")
    prep = r["stages"]["prepare"]
    assert prep["code_deps_identical"] and prep["params_identical"] and prep["upstream_data_identical"] == {"data/raw": True}
    assert all(prep["outs_identical"].values())
    assert {m["relative_difference"] for e in r["stages"].values() for m in e["metrics"].values()} == {0.0, None}


def test_a_rerun_that_drifted_shows_which_output_and_how_far(repo):
    (repo / "dvc.lock").write_text(yaml.safe_dump(_lock("bbb.dir", "qqq.dir")))
    (repo / "metrics" / "prepare.json").write_text(json.dumps({"frames": 100, "jitter": 0.5000001, "name": "x"}))
    (repo / "metrics" / "train_prior.json").write_text(json.dumps({"psnr": 29.7, "steps": 10, "new_key": 1.0}))
    r = rerun_record.record(repo, "drift", ["prepare", "train_prior"], "HEAD", "elsewhere")
    prep, prior = r["stages"]["prepare"], r["stages"]["train_prior"]
    # the prepared data is the prior's input, not its code: its change is reported as data
    assert prior["code_deps_identical"] and prior["upstream_data_identical"] == {"data/prepared": False}
    assert prep["outs_identical"] == {"data/prepared": False, "metrics/prepare.json": True,
                                      "metrics/prepare.settings.json": True}
    assert prep["metrics"]["jitter"]["relative_difference"] == pytest.approx(2e-7)
    assert prior["metrics"]["psnr"]["relative_difference"] == pytest.approx(0.01)
    assert prior["metrics"]["new_key"] == {"recorded": None, "rerun": 1.0, "relative_difference": None}
    assert prep["metrics"]["name"]["relative_difference"] is None
    (repo / "metrics" / "reruns").mkdir()
    (repo / "metrics" / "reruns" / "drift.json").write_text(json.dumps(r))
    block = readme_tables.reruns_block(repo)
    assert "`data/prepared` differs" in block and "| `prepare` | jitter | 0.5 | 0.5000001 | 2.0e-07 |" in block
    assert "| `train_prior` | psnr | 30 | 29.7 | 1.0e-02 |" in block


def test_a_code_change_is_not_passed_off_as_machine_drift(repo):
    (repo / "dvc.lock").write_text(yaml.safe_dump(_lock("bbb.dir", "ppp.dir", code_md5="edited")))
    r = rerun_record.record(repo, "code", ["prepare"], "HEAD", "here")
    assert not r["stages"]["prepare"]["code_deps_identical"]
    assert r["stages"]["prepare"]["changed_code_deps"] == ["deadlib/data"]
    (repo / "metrics" / "reruns").mkdir()
    (repo / "metrics" / "reruns" / "code.json").write_text(json.dumps(r))
    assert "code and params **different**" in readme_tables.reruns_block(repo)


def test_a_stage_missing_from_a_lock_is_an_error(repo):
    with pytest.raises(SystemExit, match="missing"):
        rerun_record.record(repo, "x", ["evaluate"], "HEAD", "here")


def test_the_real_pipelines_lock_is_recorded_under_its_own_name(repo):
    """--lock real/dvc.lock compares that lock (not dvc.lock) and the README block names it."""
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    (repo / "real").mkdir()
    (repo / "real" / "dvc.lock").write_text(yaml.safe_dump(_lock("rrr.dir", "ppp.dir")))
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "real"], check=True)
    (repo / "real" / "dvc.lock").write_text(yaml.safe_dump(_lock("rrr.dir", "zzz.dir")))
    r = rerun_record.record(repo, "real", ["prepare", "train_prior"], "HEAD", "here", lock="real/dvc.lock")
    assert r["lock"] == "real/dvc.lock"
    assert r["stages"]["prepare"]["outs_identical"]["data/prepared"]  # dvc.lock's "aaa.dir" would differ
    assert r["stages"]["train_prior"]["outs_identical"] == {"models/prior": False, "metrics/train_prior.json": True}
    (repo / "metrics" / "reruns").mkdir()
    (repo / "metrics" / "reruns" / "real.json").write_text(json.dumps(r))
    assert "stages of `real/dvc.lock`" in readme_tables.reruns_block(repo)
