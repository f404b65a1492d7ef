"""Adaptation study end to end on a tiny prepared corpus: prior → adapt N=25 (prior, scratch,
w/o mixed data) → evaluate → aggregate, the stage notebooks, and one real clip when present."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import papermill as pm
import pytest
import torch
import yaml

from deadlib.core.config import stage_config
from deadlib.eval import evaluate
from deadlib.eval.cell import run_cell
from deadlib.eval.study import aggregate
from deadlib.synth.generate import SynthSettings, generate_corpus
from deadlib.train.adapt import AdaptError, adapt, adapt_config
from deadlib.train.loop import TrainConfig, iterate_batches, load_checkpoint
from deadlib.train.prior import prior_config, train_prior
from deadlib.train.study_config import cell_name

ACTOR = "synth_h00"


@pytest.fixture(scope="session")
def params_file(tmp_path_factory, repo_root):
    """The repo's params.yaml with FID/FVD weights pointing at files that do not exist, so those
    metrics are null with a reason on every machine."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    folder = tmp_path_factory.mktemp("params")
    params["evaluate"] = {**params["evaluate"], "inception_weights": str(folder / "no_inception.pth"),
                          "i3d_weights": str(folder / "no_i3d.pt")}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder / "params.yaml"


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, params_file):
    """2 prior + 1 held-out synthetic identities (6 s), prepared at the smoke profile (64 px)."""
    root = tmp_path_factory.mktemp("adapt_corpus")
    generate_corpus(root / "raw", SynthSettings(n_prior=2, n_heldout=1, duration_s=6.0, size=128, workers=1))
    cmd = [sys.executable, "-m", "deadlib.data.prepare", "--profile", "smoke", "--params", str(params_file),
           "--raw", str(root / "raw"), "--out", str(root / "cache"), "--metrics", str(root / "prepare.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "cache"


@pytest.fixture(scope="session")
def prior_dir(tiny_cache, params_file, tmp_path_factory):
    """A smoke prior trained for 20 steps on the two prior identities."""
    cfg = prior_config("smoke", params_file).to_dict()
    cfg.update(steps=20, eval_every=20, ckpt_every=20, n_val_windows=2, device="cpu")
    out = tmp_path_factory.mktemp("prior")
    train_prior(TrainConfig.from_dict(cfg), tiny_cache, tiny_cache / "splits.json", out, out / "metrics.json",
                progress=False)
    return out


@pytest.fixture(scope="session")
def sync_expert_file(tiny_cache, params_file, tmp_path_factory):
    """A smoke sync expert (40 steps) trained by the train_sync_expert stage's code."""
    from deadlib.sync.expert import run_stage

    settings = {**stage_config("sync_expert", "smoke", params_path=params_file), "steps": 40}
    out = tmp_path_factory.mktemp("sync_expert")
    return run_stage(settings, tiny_cache, out, None, progress=False)["checkpoint"]


@pytest.fixture(scope="module")
def cells(tiny_cache, prior_dir, params_file, sync_expert_file, tmp_path_factory):
    """The N=25 cells: prior (mixed 1:1), scratch (baseline) and prior w/o mixed data."""
    root = tmp_path_factory.mktemp("cells")
    out = {}
    for method, ratio, variant in (("prior", None, None), ("scratch", None, None), ("prior", 0.0, "nomix")):
        name = cell_name(method, ACTOR, 25, variant)
        out[name] = run_cell(method, ACTOR, 25, tiny_cache, prior_dir, root / "models" / name,
                             root / "metrics" / f"{name}.json", "smoke", params_file, ratio, variant, progress=False,
                             sync_expert_path=sync_expert_file)
    out["root"] = root
    return out


def test_prior_cell_writes_finite_metrics_and_null_fid_with_reason(cells):
    cell = cells[cell_name("prior", ACTOR, 25)]
    flat = json.loads((cells["root"] / "metrics" / "prior_synth_h00_n25_s0.json").read_text())
    assert all(v is None or isinstance(v, (int, float)) for v in flat.values())
    for key in ("psnr", "ssim", "psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "frame_psnr", "frame_ssim",
                "psnr_lower_copy_ref", "psnr_copy_input", "lmd_mouth_px_copy_ref", "sync_expert_lse_c",
                "sync_expert_lse_d_real", "sync_expert_offset_copy_ref", "val_psnr_lower"):
        assert flat[key] is not None and math.isfinite(flat[key]), key
    assert 5 < flat["psnr"] < 60 and 0 < flat["ssim"] <= 1
    assert flat["fid"] is None and flat["fvd"] is None
    side = json.loads((cells["root"] / "metrics" / "prior_synth_h00_n25_s0.reasons.json").read_text())
    assert side["reasons"]["fid"].startswith("WeightsUnavailable")
    assert side["cell"]["method"] == "prior" and side["cell"]["n_frames"] == 25
    assert flat["init_prior"] == 1 and flat["mixed_ratio"] == 1.0 and flat["n_eval_frames"] > 0
    for key in ("samples", "grid", "video", "frames_video"):
        assert cell["outputs"][key] and (cells["root"] / "models" / "prior_synth_h00_n25_s0" / "eval").is_dir()
    assert (cells["root"] / "models" / "prior_synth_h00_n25_s0" / "checkpoint.pt").is_file()


def test_scratch_gets_the_same_fixed_steps(cells, params_file):
    prior, scratch = cells[cell_name("prior", ACTOR, 25)], cells[cell_name("scratch", ACTOR, 25)]
    steps = stage_config("adapt", "smoke", params_path=params_file)["steps"]
    assert prior["metrics"]["steps"] == scratch["metrics"]["steps"] == steps
    assert scratch["metrics"]["init_prior"] == 0 and scratch["metrics"]["mixed_ratio"] == 0.0
    assert scratch["state"].bank.identities == [ACTOR]                       # the baseline sees the actor only
    assert math.isfinite(scratch["metrics"]["psnr"])


def test_prior_beats_scratch_on_the_generated_region_at_the_smallest_n(cells):
    """Issue 15: at the smoke profile's smallest N the prior-initialised cell beats the scratch
    cell inside the lower-face mask (measured: 18.9 vs 17.6 dB, SSIM 0.50 vs 0.34). Both stay below
    the copy-reference floor at this scale (8 steps, 64 px), which the test records too."""
    prior, scratch = (cells[cell_name(m, ACTOR, 25)]["metrics"] for m in ("prior", "scratch"))
    assert prior["psnr_lower"] > scratch["psnr_lower"] and prior["ssim_lower"] > scratch["ssim_lower"]
    assert prior["psnr_lower_copy_ref"] == scratch["psnr_lower_copy_ref"]   # same references: same floor


def test_without_mixed_data_no_prior_identity_is_trained(cells, prior_dir):
    nomix, mixed = cells[cell_name("prior", ACTOR, 25, "nomix")], cells[cell_name("prior", ACTOR, 25)]
    cfg = nomix["state"].cfg
    batches = iterate_batches(nomix["train_set"], cfg)
    names = {n for _ in range(2 * len(nomix["train_set"]) // cfg.batch_size) for n in next(batches)["identity"]}
    batches.close()
    assert names == {ACTOR}
    prior = load_checkpoint(prior_dir / "checkpoint.pt", torch.device("cpu"), restore_rng=False, load_optimizers=False)
    for ident in prior.bank.identities:                                     # prior textures: no gradient at all
        for a, b in zip(prior.bank[ident].parameters(), nomix["state"].bank[ident].parameters()):
            assert torch.equal(a, b)
    changed = any(not torch.equal(a, b) for ident in prior.bank.identities
                  for a, b in zip(prior.bank[ident].parameters(), mixed["state"].bank[ident].parameters()))
    assert changed                                                           # with mixing they are trained
    assert nomix["metrics"]["n_generic_windows_per_epoch"] == 0 and nomix["metrics"]["person_fraction"] == 1.0


def test_adapt_rejects_short_data_and_prior_identities(tiny_cache, prior_dir, params_file, tmp_path):
    cfg, _ = adapt_config("smoke", params_file)
    with pytest.raises(AdaptError, match="shorter than one training window"):
        adapt(prior_dir / "checkpoint.pt", ACTOR, 2, cfg, tiny_cache, tiny_cache / "splits.json", tmp_path / "a")
    with pytest.raises(AdaptError, match="prior identity"):
        adapt(prior_dir / "checkpoint.pt", "synth_p00", 25, cfg, tiny_cache, tiny_cache / "splits.json", tmp_path / "b")


def test_post_processing_off_variant_and_aggregation(cells, tiny_cache, params_file, tmp_path):
    root = cells["root"]
    name = cell_name("prior", ACTOR, 25, "nopost")
    off = evaluate.main(["--profile", "smoke", "--params", str(params_file), "--checkpoint",
                         str(root / "models" / "prior_synth_h00_n25_s0" / "checkpoint.pt"), "--identity", ACTOR,
                         "--method", "prior", "--n-frames", "25", "--variant", "nopost", "--blend", "hard",
                         "--cache-root", str(tiny_cache), "--out", str(root / "models" / name / "eval"),
                         "--metrics", str(root / "metrics" / f"{name}.json")])
    on = cells[cell_name("prior", ACTOR, 25)]["metrics"]
    assert off["post_processing"] == 0 and on["post_processing"] == 1
    assert off["psnr"] == pytest.approx(on["psnr"])                          # the crop is the same
    assert off["psnr_lower_copy_ref"] == pytest.approx(on["psnr_lower_copy_ref"])   # same references (train part)
    assert off["frame_psnr"] != pytest.approx(on["frame_psnr"])              # the pasted frames are not
    assert off["frame_psnr_box"] is not None and on["frame_psnr_box"] < on["frame_psnr"]   # background left out
    study = stage_config("study", "smoke", params_path=params_file)
    result = aggregate(root / "metrics", tmp_path / "study", study, tmp_path / "study.json")
    assert len(result["rows"]) == 4
    assert set(result["missing"]) == {cell_name(m, ACTOR, 50) for m in ("prior", "scratch")}
    table = (tmp_path / "study" / "ablation.md").read_text()
    for label in ("Ours w/o post-processing", "Ours w/o mixed data", "Ours"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
        assert "| — | — |" not in row.split("|", 2)[2][:20]                   # psnr and ssim are filled in


def test_stage_notebooks_run(cells, tiny_cache, prior_dir, params_file, repo_root, tmp_path):
    root = cells["root"]
    name = cell_name("scratch", ACTOR, 50)
    pm.execute_notebook(str(repo_root / "notebooks/03_adapt.ipynb"), str(tmp_path / "03.ipynb"),
                        parameters=dict(profile="smoke", params_path=str(params_file), cache_root=str(tiny_cache),
                                        prior_dir=str(prior_dir), identity=ACTOR, n_frames=50, seed=0, method="scratch",
                                        out_dir=str(root / "models" / name),
                                        metrics_path=str(root / "metrics" / f"{name}.json")),
                        cwd=str(repo_root), progress_bar=False)
    assert json.loads((root / "metrics" / f"{name}.json").read_text())["steps"] == 8
    pm.execute_notebook(str(repo_root / "notebooks/04_evaluate.ipynb"), str(tmp_path / "04.ipynb"),
                        parameters=dict(profile="smoke", params_path=str(params_file),
                                        metrics_dir=str(root / "metrics"), models_dir=str(root / "models"),
                                        out_dir=str(tmp_path / "study"), summary_path=str(tmp_path / "study.json")),
                        cwd=str(repo_root), progress_bar=False)
    summary = json.loads((tmp_path / "study.json").read_text())
    assert summary["psnr_baseline_n50"] is not None and summary["n_cells"] >= 4


@pytest.mark.realdata
def test_real_clip_prepare_adapt_evaluate(shared_clips, tiny_cache, prior_dir, params_file, tmp_path):
    """One real clip as the new actor: prepared with the corpus' expression basis (as a clip to
    dub would be), adapted from the synthetic smoke prior on its first 25 frames, evaluated."""
    from deadlib.data.prepare import config_from_params, prepare_video

    clip = shared_clips / "hdtf_WDA_AlexandriaOcasioCortez_000.mp4"
    if not clip.is_file():
        clip = sorted(shared_clips.glob("*.mp4"))[0]
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    cfg, _ = config_from_params("smoke", params_file)
    report = prepare_video(clip, cache, cfg, cache / "expr_basis.npz")
    assert report["splits"]["valid_train"] >= 25
    out = run_cell("prior", clip.stem, 25, cache, prior_dir, tmp_path / "cell", tmp_path / "metrics.json",
                   "smoke", params_file, progress=False)
    m = out["metrics"]
    assert math.isfinite(m["psnr"]) and math.isfinite(m["ssim"]) and math.isfinite(m["frame_psnr"])
    assert m["n_eval_frames"] >= 0.8 * m["n_test_frames"]
    assert m["fid"] is None and "fid" in out["reasons"]
