"""Prepare stage end to end: the stage notebook (papermill) and the CLI on a tiny synthetic corpus,
and the CLI on the real clips of ../shared/clips when present. Asserts the acceptance bounds."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import papermill as pm
import pytest
import yaml

from deadlib.data import face3d
from deadlib.data.crop import map_points
from deadlib.data.dataset import WindowDataset, load_cache
from deadlib.synth.generate import SynthSettings, generate_corpus

# Acceptance bounds (documented in the final report and the notebook):
MOUTH_IN_MASK = 0.95  # share of tracked frames whose lip landmarks all lie on the mouth mask
ROUNDTRIP_IOU = 0.9  # face-mask IoU: model (pose + identity + expression) raster vs tracked-mesh raster
JITTER_SYNTH_PX, JITTER_REAL_PX = 0.25, 0.5  # crop centre |2nd difference| in crop px
JAW_CORRELATION = 0.7  # |r| of the jaw coefficient with the synthetic truth jaw_open


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw") / "synthetic"
    generate_corpus(raw, SynthSettings(n_prior=2, n_heldout=1, duration_s=6.0, size=128, workers=2))
    return raw


@pytest.fixture(scope="module")
def params(tmp_path_factory, repo_root):
    """The repo's params.yaml; a minimal `prepare` section is added while it has none."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params.setdefault("prepare", {"by_profile": {"smoke": {"max_frames": 250, "resolution": 64, "test_seconds": 2, "workers": 1,
                                                           "face3d": {"n_expr": 8}}}})
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_cli(params, raw, out, profile, metrics):
    cmd = [sys.executable, "-m", "deadlib.data.prepare", "--profile", profile, "--params", str(params),
           "--raw", str(raw), "--out", str(out), "--metrics", str(metrics)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(metrics.read_text())


def check_cache(folder, jitter_bound: float) -> None:
    cache = load_cache(folder)
    checks, track = cache["report"]["checks"], cache["track"]
    assert checks["mouth_in_mask_rate"] >= MOUTH_IN_MASK, (folder.name, checks)
    assert checks["roundtrip_iou_face"] >= ROUNDTRIP_IOU, (folder.name, checks)
    assert checks["crop_jitter_px"] < jitter_bound, (folder.name, checks)
    # the lower-face mask covers the mouth and chin of the tracked face
    valid = track["valid"]
    pts = map_points(track["landmarks_raw"][valid], track["crop"][valid])
    size = cache["masks"].shape[-1]
    xy = np.floor(pts[:, [13, 14, 17, 61, 291, 200], :2]).astype(int).clip(0, size - 1)
    hit = np.asarray(cache["masks"])[valid][np.arange(len(pts))[:, None], xy[..., 1], xy[..., 0]] & face3d.MASK_LOWER
    assert (hit > 0).mean() >= 0.95


def test_notebook_prepares_the_smoke_corpus(corpus, params, tmp_path, repo_root):
    out, metrics_path = tmp_path / "prepared", tmp_path / "metrics" / "prepare.json"
    pm.execute_notebook(str(repo_root / "notebooks/01_prepare.ipynb"), str(tmp_path / "01_prepare.ipynb"),
                        parameters=dict(profile="smoke", params_path=str(params), raw_dir=str(corpus),
                                        out_dir=str(out), metrics_path=str(metrics_path)),
                        cwd=str(repo_root), progress_bar=False)
    metrics = json.loads(metrics_path.read_text())
    assert metrics["videos"] == 3 and metrics["videos_skipped"] == 0 and metrics["frames"] == 450
    assert metrics["mouth_in_mask_rate"] >= MOUTH_IN_MASK and metrics["expr_roundtrip_iou"] >= ROUNDTRIP_IOU
    for name in ("synth_p00", "synth_p01", "synth_h00"):
        check_cache(out / name, JITTER_SYNTH_PX)
    basis = face3d.ExpressionBasis.load(out / "expr_basis.npz")
    for name in ("synth_p00", "synth_h00"):
        expr = load_cache(out / name)["track"]["expr"][:, basis.jaw_index]
        truth = np.load(corpus / f"{name}.truth.npz")["articulation"][: len(expr), 0]
        assert abs(np.corrcoef(expr, truth)[0, 1]) >= JAW_CORRELATION
    splits = json.loads((out / "splits.json").read_text())
    assert splits["heldout"] == ["synth_h00"] and splits["videos"]["synth_h00"]["test"] == [100, 150]
    assert splits["videos"]["synth_p00"]["test"] == [150, 150]  # a prior video has no test part
    train = WindowDataset(out, splits["prior"], "train", n_train_frames=25, window=3, n_refs=1)
    assert len(train) == 2 * (25 - 3 + 1) and train[0]["frames"].shape == (3, 3, 64, 64)


def test_cli_default_profile_128px(corpus, params, tmp_path):
    metrics = run_cli(params, corpus, tmp_path / "prepared", "default", tmp_path / "m.json")
    assert metrics["videos"] == 3 and metrics["mouth_in_mask_rate"] >= MOUTH_IN_MASK
    for name in ("synth_p00", "synth_h00"):
        check_cache(tmp_path / "prepared" / name, JITTER_SYNTH_PX)
        assert load_cache(tmp_path / "prepared" / name)["frames"].shape[1:] == (128, 128, 3)


@pytest.mark.realdata
def test_cli_on_real_clips(shared_clips, params, tmp_path):
    clips = sorted(shared_clips.glob("*.mp4"))[:3]
    raw = tmp_path / "raw"
    raw.mkdir()
    for clip in clips:
        (raw / clip.name).symlink_to(clip)
    cfg = yaml.safe_load(params.read_text())
    cfg["prepare"] = {**cfg["prepare"], "max_frames": 150, "test_seconds": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    metrics = run_cli(tmp_path / "params.yaml", raw, tmp_path / "prepared", "default", tmp_path / "m.json")
    summary = json.loads((tmp_path / "prepared" / "summary.json").read_text())
    assert metrics["videos"] >= 1, summary["skipped"]
    for name in summary["ok"]:
        check_cache(tmp_path / "prepared" / name, JITTER_REAL_PX)
