"""README's findings sentences follow the numbers (deadlib.tools.findings): flip a result and the wording flips."""

from __future__ import annotations

import pytest

from deadlib.eval.study import CURVE_METRICS, derived_rows, summarise
from deadlib.tools import findings as F


def cell(label: str, actor: str, n: int, seed: int, **metrics) -> dict:
    method = "scratch" if label == "Baseline" else "prior"
    variant = {"Ours w/o post-processing": "nopost", "Ours w/o mixed data": "nomix"}.get(label, "")
    return {"label": label, "identity": actor, "n_frames": n, "seed": seed, "method": method, "variant": variant,
            **metrics}


def grid(ours_lower: float, noise=(0.0, 0.3, -0.2, 0.1, -0.1, -0.1), n: int = 25) -> list[dict]:
    """Three actors × two seeds at one N: Baseline lower-face PSNR 20 (+ noise), Ours ``ours_lower`` (− noise; the noise sums to 0);
    LMD the other way round from PSNR, so both directions appear."""
    rows, k = [], 0
    for actor in ("a1", "a2", "a3"):
        for seed in (0, 1):
            e = noise[k % len(noise)]
            k += 1
            rows.append(cell("Baseline", actor, n, seed, psnr_lower=20.0 + e, lmd_mouth_px=1.0 + e / 10, psnr=29.0,
                             steps=200, selected_step=200))
            rows.append(cell("Ours", actor, n, seed, psnr_lower=ours_lower - e, lmd_mouth_px=1.2 - e / 10, psnr=30.0,
                             psnr_copy_input=30.5, psnr_lower_copy_input=18.0, psnr_copy_ref=19.0,
                             psnr_lower_copy_ref=18.0, steps=150, selected_step=75))
    return rows


def test_prior_vs_scratch_names_what_is_significant_and_for_whom():
    text = F.prior_vs_scratch(grid(23.0), [25])
    assert "Lower-face PSNR N = 25: +3.00 ±" in text and "(6 pairs)" in text
    assert "Significant in Ours' favour: psnr_lower (N=25), psnr (N=25)" in text
    assert "significant against Ours: lmd_mouth_px (N=25)" in text  # Ours' LMD is worse in every pair
    assert "Ours is better in 3 of 6" in text and "psnr_lower 3/3" in text and "lmd_mouth_px 0/3" in text
    flipped = F.prior_vs_scratch(grid(17.0), [25])
    assert "significant against Ours: psnr_lower (N=25), lmd_mouth_px (N=25)" in flipped
    level = F.prior_vs_scratch(grid(20.0, noise=(0.0, 0.3, -0.3, 0.3, -0.3, 0.0)), [25])
    assert "never significant: psnr_lower" in level  # a mean difference of 0 ± noise is not a finding


def test_floors_say_when_the_two_copies_coincide_inside_the_mask():
    rows = grid(23.0)
    text = F.floors(summarise([*rows, *derived_rows(rows)], CURVE_METRICS), [25])
    assert "Copy input and Copy reference 18.00 dB (the masked input is the reference frame" in text
    assert "Ours − Copy input: −0.50 dB over the sizes" in text and "Ours − Copy input: +5.00 dB)" in text


def test_data_efficiency_compares_the_smallest_ours_with_the_largest_baseline_and_counts_budgets():
    rows = grid(23.0, n=25) + grid(22.0, n=1000)
    summary = summarise(rows, CURVE_METRICS)
    text = F.data_efficiency(rows, summary, [25, 1000], budget=200)
    assert "Ours with 25 frames vs Baseline with 1000 frames" in text and "psnr_lower 23.00 vs 20.00" in text
    assert "better on 1 of 2" in text  # PSNR better, LMD worse
    assert "Baseline: 12 of 12 cells trained the whole 200-step budget, 12 of them" in text
    assert "Ours: 0 of 12 cells" in text and "budget-limited" in text
    for r in rows:
        r["selected_step"] = 100  # every cell past its best long before the end: no budget warning
    assert "budget-limited" not in F.data_efficiency(rows, summary, [25, 1000], budget=200)


@pytest.mark.parametrize("full_minus_variant, spread, verdict", [
    (1.0, 0.1, "the paper's claim reproduces here"),
    (0.2, 1.0, "the paper's direction, but not significant"),
    (-1.0, 0.1, "significantly the other way: the paper's claim does not reproduce"),
    (-0.2, 1.0, "the other way, not significant"),
])
def test_ablation_verdict_follows_sign_and_interval(full_minus_variant, spread, verdict):
    rows = []
    for k, actor in enumerate(("a1", "a2", "a3")):
        jitter = (k - 1) * spread
        rows.append(cell("Ours", actor, 100, 0, psnr_lower=24.0 + full_minus_variant + jitter))
        rows.append(cell("Ours w/o mixed data", actor, 100, 0, psnr_lower=24.0))
    text = F.ablations(rows, 100)
    assert "Ablation: mixing generic data" in text and verdict in text and "post-processing" not in text


def test_dubbing_line_reads_the_dub_metrics():
    metrics = {"frames": 250, "x_sync_expert_lse_c": 0.6, "x_sync_expert_offset": 0, "x_sync_expert_lse_c_real": 0.64,
               "x_sync_expert_offset_real": 1, "x_sync_expert_lse_c_src": 0.1, "x_mouth_open_pause": 0.016,
               "x_mouth_open_pause_real": 0.015, "x_mouth_open_speech": 0.14, "x_mouth_open_speech_real": 0.145,
               "x_noise_max_dev": 0.004}
    text = F.dubbing(metrics)
    assert "confidence 0.600 at offset 0 for the dub, 0.640 (offset 1)" in text and "pauses 0.016 (real 0.015)" in text
    assert F.dubbing({"frames": 3}) == ""


def reenact_report(own_r: float, silence_r: float, lmd: float, lag: int, synthetic_lmd: float) -> dict:
    r = {"test_frames": 250}
    for s, d, vals in (("realdata", "own", (own_r, lmd, lag, 28.0)), ("realdata", "silence", (silence_r, 2.0, 0, 27.9)),
                       ("realdata", "other", (0.05, 2.0, 0, 27.0)), ("synthetic", "own", (0.1, synthetic_lmd, 0, 27.0)),
                       ("synthetic", "silence", (0.0, 2.0, 0, 26.0))):
        r.update(dict(zip((f"{s}_{d}_mouth_open_r", f"{s}_{d}_lmd_mouth_px", f"{s}_{d}_mouth_lag", f"{s}_{d}_psnr_lower"),
                          vals)))
    return r


def test_reenact_findings_count_targets_model_sets_and_judge_the_judge():
    reports = {"p1": reenact_report(0.7, 0.1, 0.9, 0, 1.5), "p2": reenact_report(0.3, 0.2, 1.4, -2, 1.2)}
    expert = {"sync_expert_heldout_rank_accuracy": 0.05, "sync_expert_heldout_rank_chance": 0.034,
              "sync_expert_heldout_pair_accuracy": 0.5, "sync_expert_gt_offset_error_abs": 12.0}
    text = F.reenact_findings(reports, ["realdata", "synthetic"], expert)
    assert "mouth_open_r 0.70 / 0.30 (target ≥ 0.6: met for 1 of 2)" in text
    assert "mouth_lag +0 / -2 (target |·| ≤ 1: met for 1 of 2)" in text
    assert "own speech minus silence: +0.60 / +0.10" in text
    assert "lmd_mouth_px 1 of 2 (0.90 / 1.40 vs 1.50 / 1.20)" in text  # real-data models lose on p2
    assert "realdata +0.10 dB; synthetic +1.00 dB" in text and "other 0.05 / 0.05" in text
    assert "under 2× chance" in text
    expert["sync_expert_heldout_rank_accuracy"] = 0.5
    assert "are evidence" in F.reenact_findings(reports, ["realdata", "synthetic"], expert)
    assert F.reenact_findings({}, ["realdata"]) == ""
    reports["p1"].update(realdata_own_mouth_open_r_lo=0.52, realdata_own_mouth_open_r_hi=0.81)
    assert "mouth_open_r 0.70 [0.52, 0.81] / 0.30 (target" in F.reenact_findings(reports, ["realdata", "synthetic"])
    assert "Where the mouth is lost" not in text  # reports without the mesh-level r
    reports["p1"].update(realdata_own_mesh_mouth_open_r=0.8, realdata_tracked_mesh_mouth_open_r=0.9,
                         realdata_tracked_mouth_open_r=0.85)
    reports["p2"].update(realdata_own_mesh_mouth_open_r=0.5)
    text = F.reenact_findings(reports, ["realdata", "synthetic"])
    assert "own speech 0.80 → 0.70 / 0.50 → 0.30" in text
    assert "renderer's ceiling) 0.90 → 0.85 / — → —" in text
