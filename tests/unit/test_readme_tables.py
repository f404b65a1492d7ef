"""README's results tables are generated from the committed metrics files (deadlib.tools.readme_tables)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from deadlib.tools import readme_tables


def test_readme_tables_match_the_committed_metrics(repo_root):
    text, stale = readme_tables.render((repo_root / "README.md").read_text(), repo_root)
    assert "<!-- generated:study -->" in text
    assert not stale, f"README blocks {stale} disagree with metrics/: run python -m deadlib.tools.readme_tables"


def test_a_changed_metric_makes_its_block_stale(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "dub.json").write_text(json.dumps({"frames": 10, "r": 0.81234, "fid": None}))
    readme = "x\n<!-- generated:dub -->\nold\n<!-- /generated:dub -->\ny\n"
    text, stale = readme_tables.render(readme, tmp_path)
    assert stale == ["dub"] and "| r | 0.8123 |" in text and "| fid | — |" in text and text.endswith("y\n")
    assert readme_tables.render(text, tmp_path)[1] == []
    with pytest.raises(KeyError, match="unknown_block"):
        readme_tables.render("<!-- generated:unknown_block -->\n<!-- /generated:unknown_block -->", tmp_path)


def test_every_block_of_the_readme_is_known_and_found(repo_root):
    """A block whose name the marker pattern cannot match is silently never rebuilt (the
    audio2expr blocks were empty for that reason: the pattern had no digits)."""
    import re

    readme = (repo_root / "README.md").read_text()
    markers = re.findall(r"<!-- generated:(\S+) -->", readme)
    found = [m["name"] for m in readme_tables.BLOCK.finditer(readme)]
    assert markers and found == markers
    assert set(found) <= set(readme_tables.BLOCKS)


def test_reenact_block_lists_every_metric_and_the_targets(tmp_path):
    (tmp_path / "real" / "metrics" / "reenact").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text("reenact: {model_sets: {realdata: {}, synthetic: {}}}\n")
    metrics = {"test_frames": 250, "adapt_frames": 250, "groundtruth_sync_expert_offset": 0}
    for s in ("realdata", "synthetic"):
        for d in ("own", "silence", "other"):
            metrics.update({f"{s}_{d}_mouth_open_r": 0.5 if d == "own" else 0.1, f"{s}_{d}_lmd_mouth_px": 1.5,
                            f"{s}_{d}_mouth_lag": 0, f"{s}_{d}_sync_expert_offset": 1})
    (tmp_path / "real" / "metrics" / "reenact" / "actor.json").write_text(json.dumps(metrics))
    text = readme_tables.reenact_block(tmp_path)
    assert "**actor**" in text and "| sync_expert_offset | 1 | 1 | 1 | 1 | 1 | 1 | 0 |" in text
    assert "| mouth_open_r | ≥ 0.6 | realdata | 0.5 | 0.1 | 0.1 | — | — | 1 |" in text  # no tts, no tracked dub


def test_actor_table_shows_each_person_and_counts_where_the_prior_loses(tmp_path):
    """Three actors can average into a win while one of them loses: the per-actor block must show
    that person's sign and count it."""
    folder = tmp_path / "metrics" / "adapt"
    folder.mkdir(parents=True)
    (tmp_path / "params.yaml").write_text("study: {identities: [a1, a2]}\n")
    scores = {("prior", "a1"): (28.0, 0.5), ("scratch", "a1"): (25.0, 0.7),   # the prior wins on a1 ...
              ("prior", "a2"): (24.0, 0.6), ("scratch", "a2"): (26.5, 0.8)}   # ... and loses on a2 (not in LMD)
    kept = {("prior", "a1"): (50, 100), ("scratch", "a1"): (200, 200)}          # a2: cells from before selection
    for (method, actor), (psnr_lower, lmd) in scores.items():
        steps = dict(zip(("selected_step", "steps"), kept.get((method, actor), (None, 200))))
        (folder / f"{method}_{actor}_n100_s0.json").write_text(
            json.dumps({"psnr_lower": psnr_lower, "lmd_mouth_px": lmd, "ssim_lower": None, **steps}))
    (folder / "prior_a3_n100_s0.json").write_text(json.dumps({"psnr_lower": 30.0}))  # not in params: ignored
    text = readme_tables.actor_table(tmp_path)
    assert "| a1 | 100 | 1 | 28.00 vs 25.00 (+3.00) | — |" in text
    assert "| a2 | 100 | 1 | 24.00 vs 26.50 (-2.50) | — |" in text and "a3" not in text
    assert "psnr_lower 1 of 2" in text and "lmd_mouth_px 2 of 2" in text and "ssim_lower 0 of 0" in text
    assert "| 50 / 100 · 200 / 200 |" in text and "| — · — |" in text          # kept / trained steps per method


def test_refuses_to_rewrite_while_a_committed_metrics_file_is_missing(tmp_path):
    """A running stage's outputs are deleted by DVC: README must not be rebuilt as "does not exist yet"."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "dub.json").write_text(json.dumps({"frames": 10}))
    readme = "<!-- generated:dub -->\nold\n<!-- /generated:dub -->\n"
    (tmp_path / "README.md").write_text(readme)
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([git, "-C", str(tmp_path), "add", "metrics/dub.json"], check=True)
    (tmp_path / "metrics" / "dub.json").unlink()
    assert readme_tables.missing_tracked_metrics(tmp_path) == ["metrics/dub.json"]
    assert readme_tables.main(["--root", str(tmp_path)]) == 1
    assert (tmp_path / "README.md").read_text() == readme
    assert readme_tables.main(["--root", str(tmp_path), "--allow-missing"]) == 0
    assert "does not exist yet" in (tmp_path / "README.md").read_text()


def test_study_status_counts_the_cells_params_ask_for(tmp_path):
    folder = tmp_path / "metrics" / "adapt"
    folder.mkdir(parents=True)
    (tmp_path / "params.yaml").write_text("study: {identities: [a1], sizes: [25, 100], seeds: [0, 1], "
                                          "methods: [prior, scratch], ablation_size: 25}\n")
    for name in ("prior_a1_n25_s0", "scratch_a1_n25_s0", "prior_a1_n100_s1", "prior_a1_n25_s0_nomix", "prior_a9_n25_s0"):
        (folder / f"{name}.json").write_text("{}")
    text = readme_tables.study_status(tmp_path)
    assert "): 10; with a metrics file in `metrics/adapt`: 4 — **incomplete**: 6 missing" in text
    assert "N = 25, seed 0 (nopost): 1; N = 25, seed 1: 2; N = 100, seed 0: 2; N = 100, seed 1: 1" in text
    text = readme_tables.study_status(tmp_path, ablations=False)
    assert "): 8; with a metrics file in `metrics/adapt`: 3 — **incomplete**: 5 missing" in text
    for name in ("scratch_a1_n100_s1", "prior_a1_n100_s0", "scratch_a1_n100_s0", "prior_a1_n25_s1", "scratch_a1_n25_s1"):
        (folder / f"{name}.json").write_text("{}")
    assert "**complete**" in readme_tables.study_status(tmp_path, ablations=False)


def test_style_loss_block_pairs_each_stand_in_with_none(tmp_path):
    scores = {"psnr_lower": 24.0, "ssim_lower": 0.7, "psnr_mouth": 23.0, "ssim_mouth": 0.6, "mouth_sharpness_ratio": 0.3}
    paired = {k: {"mean": 0.25, "ci95": 0.5, "higher": 2, "n": 3} for k in scores}
    result = {"corpus": "real", "n_frames": 100, "steps": 100, "seeds": [0], "lambda_vgg": 1.0, "machine": "m",
              "variants": {"none": {**scores, "term_over_l1": None, "train_seconds": 90.0},
                           "grad_l1": {**scores, "term_over_l1": 1.8, "train_seconds": 95.0, "vs_none": paired}}}
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    assert "does not exist yet" in readme_tables.style_loss_block(tmp_path)
    (tmp_path / "benchmarks" / "results" / "style_loss_real.json").write_text(json.dumps(result))
    text = readme_tables.style_loss_block(tmp_path)
    assert "| grad_l1 | 1.8 | 24 | 0.7 |" in text and "+0.250 ± 0.500 (2/3)" in text
    assert text.count("| none | — |") == 1 and "val mouth_sharpness_ratio − none (higher)" in text


def test_upscale_block_pairs_each_kernel_with_linear(tmp_path):
    scores = {"psnr_lower": 38.0, "ssim_lower": 0.97, "psnr_mouth": 37.0, "ssim_mouth": 0.96,
              "sharpness_lower": 0.4, "sharpness_mouth": 0.3, "seconds": 0.009}
    paired = {k: {"mean": 1.5, "ci95": 0.2, "higher": 2, "n": 2} for k in scores if k != "seconds"}
    person = {"linear": {**scores, "frames": 10, "magnification": 2.5}, "lanczos": {**scores, "frames": 10, "magnification": 2.5}}
    result = {"machine": "m", "profile": "default", "stride": 2, "clips": ["a.mp4"], "kernels": ["linear", "lanczos"],
              "people": {"p1": person, "p2": {**person, "linear": {**person["linear"], "magnification": 3.0}}},
              "summary": {"linear": scores, "lanczos": {**scores, "vs_linear": paired}}}
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    assert "does not exist yet" in readme_tables.upscale_block(tmp_path)
    (tmp_path / "benchmarks" / "results" / "upscale_real.json").write_text(json.dumps(result))
    text = readme_tables.upscale_block(tmp_path)
    assert "| lanczos | 38 | 0.97 |" in text and "+1.500 ± 0.200 (2/2)" in text and "| linear |" in text
    assert "reference" in text and "2 real people (20 frames: one frame in 2 of each" in text and "2.5–3.0×" in text


def test_prior_steps_block_pairs_each_length_with_the_first(tmp_path):
    scores = {"val_psnr_lower": 27.5, "val_psnr": 33.0, "val_ssim": 0.93, "lmd_mouth_px": 1.1, "mouth_open_r": 0.7,
              "selected_step": 100, "train_seconds": 90.0}
    paired = {k: {"mean": -0.2, "ci95": 0.1, "higher": 0, "n": 3} for k in ("val_psnr_lower", "lmd_mouth_px", "mouth_open_r")}
    result = {"machine": "m", "n_frames": 100, "seeds": [0], "steps": [1200, 2400], "lmd_size": 256,
              "priors": {"1200": {"validation": {"psnr_lower": 27.1}}, "2400": {"validation": {"psnr_lower": 27.6}}},
              "people": {"a": {}, "b": {}, "c": {}},
              "perfect_render": {"a": {"lmd_mouth_px": 0.3, "mouth_open_r": 0.95},
                                 "b": {"lmd_mouth_px": 0.4, "mouth_open_r": 0.97}},
              "summary": {"1200": scores, "2400": {**scores, "lmd_mouth_px": 0.9, "vs_first": paired}}}
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    assert "does not exist yet" in readme_tables.prior_steps_block(tmp_path)
    (tmp_path / "benchmarks" / "results" / "prior_steps_real.json").write_text(json.dumps(result))
    text = readme_tables.prior_steps_block(tmp_path)
    assert "| 2400 | 27.6 | 27.5 | 33 | 0.93 | 0.9 | 0.7 | -0.200 ± 0.100 (0/3)" in text
    assert "| 1200 | 27.1 |" in text and "reference" in text
    assert "| perfect 128 px render | — | — | — | — | 0.35 | 0.96 |" in text and "3 real held-out people" in text


def test_a2e_ensemble_block_lists_each_ensemble_size_and_the_pairs(tmp_path):
    paired = {"mean": 0.04, "ci95": 0.03, "higher": 12, "n": 17}
    result = {"seeds": [0, 1, 2], "folds": 3, "threads": 1, "seconds_per_seed": [800.0, 820.0, 810.0], "machine": "m",
              "protocol": "folds", "people": [{}] * 17, "ensemble_jaw_corr": [0.30, 0.33, 0.35],
              "ensemble_lve_mean_mm": [2.85, 2.80, 2.78], "single_jaw_corr": [0.30, 0.28, 0.31],
              "single_lve_mean_mm": [2.85, 2.86, 2.84], "jaw_corr_vs_single_mean": paired,
              "jaw_corr_vs_first_seed": paired, "lve_mean_mm_vs_single_mean": paired, "lve_mean_mm_vs_first_seed": paired}
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    assert "does not exist yet" in readme_tables.a2e_ensemble_block(tmp_path)
    (tmp_path / "benchmarks" / "results" / "a2e_ensemble_real.json").write_text(json.dumps(result))
    text = readme_tables.a2e_ensemble_block(tmp_path)
    assert "| 1 (seed 0) | 0.3 | 2.85 |" in text and "| 3 (seeds 0, 1, 2) | 0.35 | 2.78 |" in text
    assert "| 1, each seed alone | 0.3 / 0.28 / 0.31 |" in text
    assert "| all 3 averaged − seed 0 alone | +0.040 ± 0.030 (12/17) |" in text and "17 unseen speakers" in text
