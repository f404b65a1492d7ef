"""The real-data pipeline (real/dvc.yaml, issue 14) at the smoke profile, in a temporary clone.

Four short real clips of ../shared/realcorpus (real_corpus.by_profile.smoke) → `dvc repro` of one
prior study cell and one Baseline cell of the held-out actor: the real_corpus import (external folder
as a DVC dependency, SHA256SUMS checked), prepare, the real prior, the sync expert and the two
cells with their evaluation (the Baseline at adapt's rates × baseline.lr_scale; the prior at the smoke
profile's length, as real_study.prior_steps says), all written under
real/ of the clone. Then `dvc status` of those stages is clean, a
second repro runs nothing, the synthetic pipeline's outputs were not touched, and editing a clip of
the source folder (here: a copy of it) makes `dvc status` report the corpus as changed.
Skips when ../shared/realcorpus is absent.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import yaml
from support import dvc, git, run_in

REALCORPUS = "realcorpus"
CELL = "real/dvc.yaml:adapt@mimictalk_trump-25-0-prior"
BASELINE_CELL = "real/dvc.yaml:baseline@mimictalk_trump-25-0"


@pytest.fixture(scope="module")
def clone(tmp_path_factory, repo_root):
    source = repo_root.parent / "shared" / REALCORPUS
    if not (source / "SHA256SUMS").is_file():
        pytest.skip(f"real corpus not found at {source} (place ../shared beside the repo)")
    if not (repo_root / ".git").exists():
        pytest.skip("not a git checkout: the replay needs `git clone`")
    base = tmp_path_factory.mktemp("real")
    clips = base / "clips"   # a copy, so the test can edit a clip of "the user's folder"
    smoke = yaml.safe_load((repo_root / "params.yaml").read_text())["real_corpus"]["by_profile"]["smoke"]["include"]
    clips.mkdir()
    for name in smoke:
        shutil.copy2(source / f"{name}.mp4", clips / f"{name}.mp4")
    sums = [line for line in (source / "SHA256SUMS").read_text().splitlines() if line.split()[-1][:-4] in smoke]
    (clips / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    root = base / "repo"
    git("clone", "--quiet", "--no-hardlinks", repo_root, root, cwd=base)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["real_corpus"]["source_dir"] = str(clips)
    params["real_study"].update(identities=["mimictalk_trump"], sizes=[25], seeds=[0])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return {"root": root, "clips": clips}


def test_real_pipeline_runs_by_params_alone_and_beside_the_synthetic_run(clone):
    root = clone["root"]
    dvc("repro", CELL, BASELINE_CELL, cwd=root)
    manifest = json.loads((root / "real" / "data" / "raw" / "corpus.json").read_text())
    assert manifest["splits"]["heldout"] == ["mimictalk_trump"] and len(manifest["splits"]["prior"]) == 3
    splits = json.loads((root / "real" / "data" / "prepared" / "splits.json").read_text())
    assert splits["heldout"] == ["mimictalk_trump"] and sorted(splits["prior"]) == manifest["splits"]["prior"]
    cell = json.loads((root / "real" / "metrics" / "adapt" / "prior_mimictalk_trump_n25_s0.json").read_text())
    assert cell["psnr_lower"] is not None and cell["steps"] > 0
    ours, baseline = (json.loads((root / "real" / "metrics" / "adapt" / f"{name}_mimictalk_trump_n25_s0.settings.json")
                                 .read_text())["train"] for name in ("prior", "scratch"))
    # each method at its own rates: the Baseline at adapt's × baseline.lr_scale, Ours at × real_study.ours_lr_scale
    params = yaml.safe_load((root / "params.yaml").read_text())
    scale = params["baseline"]["lr_scale"] / params["real_study"]["ours_lr_scale"]
    assert baseline["lr_g"] == pytest.approx(ours["lr_g"] * scale) and baseline["steps"] == ours["steps"]
    assert (root / "real" / "models" / "sync_expert" / "sync_expert.pt").is_file()
    # the real prior's length comes from real_study.prior_steps (deadlib.train.real_prior); at smoke it is
    # train_prior's own smoke length, so this run stays tiny
    prior = json.loads((root / "real" / "metrics" / "train_prior.json").read_text())
    assert (root / "real" / "models" / "prior" / "params.yaml").is_file()
    assert params["real_study"]["prior_steps"].get("smoke") is None
    assert prior["steps"] == params["train_prior"]["by_profile"]["smoke"]["steps"]
    # the synthetic run's outputs were not made (nor overwritten)
    assert not (root / "data" / "prepared").exists() and not (root / "models" / "prior").exists()
    assert "up to date" in dvc("status", CELL, BASELINE_CELL, cwd=root)
    again = dvc("repro", CELL, BASELINE_CELL, cwd=root)
    assert "Running stage" not in again, again
    # the user's folder changes → DVC sees it
    path = clone["clips"] / "real3dportrait_may.mp4"
    path.write_bytes(path.read_bytes()[:-1000])
    status = dvc("status", "real/dvc.yaml:real_corpus", cwd=root)
    assert "modified" in status and str(clone["clips"]) in status, status
    # ... and the import refuses the damaged clip (SHA256SUMS) instead of training on it
    done = run_in(root, sys.executable, "-m", "deadlib.sources.folder", "--params", "params.yaml",
                  "--out", "real/data/raw", check=False)
    assert done.returncode != 0 and "SHA256SUMS" in done.stderr + done.stdout
