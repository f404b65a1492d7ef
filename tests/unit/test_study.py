"""Study settings (cell names, params sections) and the aggregation into tables with intervals,
floors and paired differences, curves and the Fig. 7 grid, on hand-written metrics files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from deadlib.core.config import ConfigError, stage_config
from deadlib.core.intervals import mean_ci, paired_summary
from deadlib.eval.evaluate import write_metrics
from deadlib.eval.study import (
    STYLE_COLUMNS,
    aggregate,
    expected_cells,
    load_cells,
    paired_differences,
    size_grid,
)
from deadlib.train.study_config import cell_name, parse_cell_name


def test_cell_names_round_trip():
    assert cell_name("prior", "synth_h00", 100) == "prior_synth_h00_n100_s0"
    assert cell_name("prior", "a_b", 25, "nomix", seed=2) == "prior_a_b_n25_s2_nomix"
    assert parse_cell_name("prior_a_b_n25_s2_nomix") == {"method": "prior", "identity": "a_b", "n_frames": 25,
                                                         "seed": 2, "variant": "nomix"}
    assert parse_cell_name("prior_a_n25") is None                           # a cell of before the seeds
    with pytest.raises(ConfigError, match="method"):
        cell_name("finetune", "a", 25)


def test_mean_ci_is_the_student_t_interval():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / 3 ** 0.5, rel=1e-5)   # t(0.975, 2) · s/√n
    assert mean_ci([5.0]) == (5.0, None) and mean_ci([None]) == (None, None)


def test_a_missing_section_is_an_error_that_names_it(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "default", "seed": 0}))
    with pytest.raises(ConfigError, match="no section 'study'"):
        stage_config("study", "smoke", params_path=path)
    path.write_text(yaml.safe_dump({"profile": "default", "study": {"sizes": [7]}}))
    assert stage_config("study", None, params_path=path)["sizes"] == [7]


def fake_cell(folder, method, identity, n, psnr, variant=None, fid=None, seed=0):
    metrics = {"n_frames": n, "psnr": psnr, "ssim": psnr / 100, "fid": fid, "frame_psnr": psnr + 5,
               "psnr_lower": psnr - 8, "psnr_lower_copy_ref": 12.0 + seed, "psnr_copy_ref": 15.0,
               "sync_expert_lse_c": 1.0, "sync_expert_lse_c_real": 3.0}
    write_metrics(folder / f"{cell_name(method, identity, n, variant, seed)}.json", metrics,
                  {} if fid is not None else {"fid": "no weights"},
                  {"method": method, "identity": identity, "n_frames": n, "seed": seed, "variant": variant or ""})


def test_aggregate_builds_tables_curves_and_summary(tmp_path):
    cells = tmp_path / "metrics"
    for ident, off in (("a", 0.0), ("b", 2.0)):
        for n, base in ((25, 20.0), (100, 24.0)):
            fake_cell(cells, "prior", ident, n, base + off, fid=10.0)
            fake_cell(cells, "scratch", ident, n, base - 5 + off)
    fake_cell(cells, "prior", "a", 100, 23.0, "nomix")
    fake_cell(cells, "prior", "a", 100, 24.0, "nopost")
    (cells / "unrelated.json").write_text(json.dumps({"x": 1}))             # not a study cell: ignored
    study = {"identities": ["a", "b"], "sizes": [25, 100], "methods": ["prior", "scratch"], "ablation_size": 100,
             "table_sizes": [25, 100]}
    out = aggregate(cells, tmp_path / "study", study, tmp_path / "study.json")
    assert len(load_cells(cells)) == 10
    assert out["summary"][("Ours", 25)]["psnr"] == pytest.approx(21.0)     # mean of 20 and 22
    assert out["summary"][("Ours", 25)]["n_ids"] == 2
    assert out["summary"][("Baseline", 100)]["fid"] is None
    assert out["missing"] == ["prior_b_n100_s0_nomix", "prior_b_n100_s0_nopost"]
    with open(tmp_path / "study" / "curve_prior.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_frames"]) for r in rows] == [25, 100] and float(rows[1]["psnr"]) == pytest.approx(25.0)
    table = (tmp_path / "study" / "size_psnr.md").read_text()
    # two actors: mean ± t(0.975, 1)·s/√2 = 12.706 for values 20 and 22 (s = √2)
    assert "| Baseline | 16.00 ± 12.71 | 20.00 ± 12.71 |" in table and "| Ours | 21.00 ± 12.71 | 25.00 ± 12.71 |" in table
    assert "| Copy reference | 15.00 ± 0.00 | 15.00 ± 0.00 |" in table                    # the floor row
    lower = (tmp_path / "study" / "size_psnr_lower.md").read_text()
    assert "| Copy reference | 12.00 ± 0.00 |" in lower
    sync = (tmp_path / "study" / "size_sync_expert_lse_c.md").read_text()
    assert "| Ground truth | 3.00 ± 0.00 |" in sync
    diffs = (tmp_path / "study" / "differences.md").read_text()
    assert "| psnr ↑ | +5.000 ± 0.000 * | +5.000 ± 0.000 * |" in diffs         # paired: exactly +5 each run
    ablation = (tmp_path / "study" / "ablation.md").read_text()
    assert "| Ours w/o mixed data | 15.00 |" in ablation and "| Ours w/o post-processing | 16.00 |" in ablation
    flat = json.loads((tmp_path / "study.json").read_text())
    assert flat["psnr_ours_n100"] == pytest.approx(25.0) and flat["fid_baseline_n25"] is None
    assert flat["psnr_lower_copy_ref_n25"] == pytest.approx(12.0) and flat["n_runs_ours"] == 4
    assert (tmp_path / "study" / "size_curves.png").stat().st_size > 0



def test_paired_differences_pair_by_actor_and_seed_and_flag_significance():
    rows = [{"label": label, "identity": ident, "n_frames": 25, "seed": seed, "m": value + (1.0 if label == "Ours" else 0.0)}
            for ident, value in (("a", 10.0), ("b", 30.0)) for seed in (0, 1, 2) for label in ("Ours", "Baseline")]
    rows[0]["m"] += 0.1                                                     # not exactly +1 everywhere
    diff = paired_differences(rows, ["m"])[("m", 25)]
    # pairing removes the actors' 20-point offset: the difference is tight around +1
    assert diff["n_pairs"] == 6 and diff["diff"] == pytest.approx(1 + 0.1 / 6) and diff["significant"]
    unpaired = [dict(r, seed=r["seed"] + (10 if r["label"] == "Ours" else 0)) for r in rows]
    assert paired_differences(unpaired, ["m"]) == {}                       # nothing to pair: no claim
    noisy = [dict(r, m=r["m"] + (5.0 if r["seed"] % 2 else -5.0) * (r["label"] == "Ours")) for r in rows]
    assert paired_differences(noisy, ["m"])[("m", 25)]["significant"] is False


def test_aggregate_adds_the_style_layer_table_when_given_its_cells(tmp_path):
    style = tmp_path / "style"
    style.mkdir()
    for ident, before, after in (("a", 2.0, 1.5), ("b", 3.0, 3.5)):
        for n in (25, 100):
            m = {"n_frames": n, "lve_mean_mm_before": before, "lve_mean_mm_after": after - n / 100,
                 "lve_mean_mm_static": 4.0, "lve_gain_mm": before - after + n / 100, "jaw_corr_before": 0.5,
                 "jaw_corr_after": 0.6}
            (style / f"{ident}_n{n}.json").write_text(json.dumps(m))
    study = {"identities": ["a", "b"], "sizes": [25, 100], "methods": ["prior", "scratch"], "ablation_size": 100}
    out = aggregate(tmp_path / "none", tmp_path / "study", study, tmp_path / "study.json", style_dir=style)
    with open(tmp_path / "study" / "style_lve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_frames"]) for r in rows] == [25, 100] and [int(r["n_ids"]) for r in rows] == [2, 2]
    assert float(rows[0]["lve_mean_mm_after"]) == pytest.approx(2.25) and float(rows[1]["lve_gain_mm"]) == pytest.approx(1.0)
    assert "style layer" in out["markdown"]
    flat = json.loads((tmp_path / "study.json").read_text())
    assert flat["style_lve_mean_mm_before_n25"] == pytest.approx(2.5) and flat["style_lve_mean_mm_after_n100"] == 1.5
    aggregate(tmp_path / "none", tmp_path / "s2", study)
    assert not (tmp_path / "s2" / "style_lve.csv").exists()                  # no style_dir: no table

def test_aggregate_leaves_out_cells_the_study_settings_do_not_ask_for(tmp_path):
    """Metrics files are committed, so a smoke run in a clone finds the default run's cells beside its
    own; the tables (and the evaluate notebook's figures) must use the smoke study's cells only."""
    cells, style = tmp_path / "metrics", tmp_path / "style"
    style.mkdir()
    for ident in ("a", "b"):
        for n in (25, 1000):
            fake_cell(cells, "prior", ident, n, 20.0 if n == 25 else 99.0)
            fake_cell(cells, "scratch", ident, n, 15.0 if n == 25 else 99.0)
            (style / f"{ident}_n{n}.json").write_text(json.dumps(
                {"n_frames": n, **{k: (1.0 if ident == "a" and n == 25 else 9.0) for k in STYLE_COLUMNS}}))
    study = {"identities": ["a"], "sizes": [25], "methods": ["prior", "scratch"], "ablation_size": 25}
    out = aggregate(cells, tmp_path / "study", study, tmp_path / "study.json", style_dir=style)
    assert {(r["identity"], r["n_frames"]) for r in out["rows"]} == {("a", 25)}
    assert out["ignored"] == ["prior_a_n1000_s0", "prior_b_n1000_s0", "prior_b_n25_s0", "scratch_a_n1000_s0",
                              "scratch_b_n1000_s0", "scratch_b_n25_s0"]
    assert out["summary"][("Ours", 25)]["psnr"] == 20.0 and ("Ours", 1000) not in out["summary"]
    assert "6 file(s) of cells the study settings do not ask for left out" in (tmp_path / "study" / "tables.md").read_text()
    with open(tmp_path / "study" / "style_lve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["n_frames"]), int(r["n_ids"]), float(r["lve_mean_mm_before"])) for r in rows] == [(25, 1, 1.0)]


def test_expected_cells_cover_grid_and_ablations():
    names = expected_cells({"identities": ["a"], "sizes": [25, 50], "methods": ["prior", "scratch"],
                            "ablation_size": 25})
    assert sorted(names) == sorted(["prior_a_n25_s0", "scratch_a_n25_s0", "prior_a_n50_s0", "scratch_a_n50_s0",
                                    "prior_a_n25_s0_nomix", "prior_a_n25_s0_nopost"])
    seeds = expected_cells({"identities": ["a"], "sizes": [25], "seeds": [0, 1], "methods": ["prior"]})
    assert sorted(seeds) == ["prior_a_n25_s0", "prior_a_n25_s1"]


def test_size_grid_rows_baseline_ours_truth(tmp_path):
    for method, value in (("scratch", 10), ("prior", 200)):
        folder = tmp_path / cell_name(method, "a", 25) / "eval"
        folder.mkdir(parents=True)
        np.savez(folder / "samples.npz", pred=np.full((2, 16, 16, 3), value, np.uint8),
                 real=np.full((2, 16, 16, 3), 99, np.uint8), mouth=np.ones((2, 16, 16), np.float32))
    grid, labels, sizes = size_grid(tmp_path, "a", [25, 50])
    assert grid.shape == (48, 32, 3) and labels == ["Baseline", "Ours", "ground truth"]
    assert grid[0, 0, 0] == 10 and grid[16, 0, 0] == 200 and grid[32, 0, 0] == 99
    assert grid[0, 16, 0] == 255                                             # N=50 not evaluated: blank
    with pytest.raises(FileNotFoundError):
        size_grid(tmp_path, "nobody", [25])


def test_paired_summary_counts_the_higher_pairs_and_drops_missing_ones():
    d = paired_summary([0.5, -1.0, 0.3, None, float("nan")])
    assert d["n"] == 3 and d["higher"] == 2
    assert d["mean"] == pytest.approx(-0.2 / 3) and d["ci95"] == pytest.approx(mean_ci([0.5, -1.0, 0.3])[1])
    assert paired_summary([0.2]) == {"mean": 0.2, "ci95": None, "higher": 1, "n": 1}
    assert paired_summary([]) is None and paired_summary([None]) is None
