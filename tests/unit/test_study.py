"""Study settings (step budgets, cell names, params fallback) and the aggregation into tables,
curves and the Fig. 7 grid, on hand-written metrics files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from deadlib.core.config import ConfigError, stage_config
from deadlib.eval.evaluate import write_metrics
from deadlib.eval.study import aggregate, expected_cells, load_cells, size_grid
from deadlib.train.study_config import cell_name, step_budget


def test_step_budget_takes_the_largest_listed_n_below():
    table = {25: 200, 100: 300, "1000": 600}
    assert step_budget(25, table) == 200
    assert step_budget(99, table) == 200
    assert step_budget(100, table) == 300
    assert step_budget(5000, table) == 600
    assert step_budget(10, table) == 200                                    # below the table: smallest entry
    with pytest.raises(ConfigError):
        step_budget(25, {})


def test_cell_names():
    assert cell_name("prior", "synth_h00", 100) == "prior_synth_h00_n100"
    assert cell_name("prior", "a", 25, "nomix") == "prior_a_n25_nomix"
    with pytest.raises(ConfigError, match="method"):
        cell_name("finetune", "a", 25)


def test_a_missing_section_is_an_error_that_names_it(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "default", "seed": 0}))
    with pytest.raises(ConfigError, match="no section 'study'"):
        stage_config("study", "smoke", params_path=path)
    path.write_text(yaml.safe_dump({"profile": "default", "study": {"sizes": [7]}}))
    assert stage_config("study", None, params_path=path)["sizes"] == [7]


def fake_cell(folder, method, identity, n, psnr, variant=None, fid=None):
    metrics = {"n_frames": n, "psnr": psnr, "ssim": psnr / 100, "fid": fid, "frame_psnr": psnr + 5}
    write_metrics(folder / f"{cell_name(method, identity, n, variant)}.json", metrics,
                  {} if fid is not None else {"fid": "no weights"},
                  {"method": method, "identity": identity, "n_frames": n, "variant": variant or ""})


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
    assert out["missing"] == ["prior_b_n100_nomix", "prior_b_n100_nopost"]
    with open(tmp_path / "study" / "curve_prior.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_frames"]) for r in rows] == [25, 100] and float(rows[1]["psnr"]) == pytest.approx(25.0)
    table = (tmp_path / "study" / "size_psnr.md").read_text()
    assert "| Baseline | 16.00 | 20.00 |" in table and "| Ours | 21.00 | 25.00 |" in table
    ablation = (tmp_path / "study" / "ablation.md").read_text()
    assert "| Ours w/o mixed data | 23.00 |" in ablation and "| Ours w/o post-processing | 24.00 |" in ablation
    flat = json.loads((tmp_path / "study.json").read_text())
    assert flat["psnr_ours_n100"] == pytest.approx(25.0) and flat["fid_baseline_n25"] is None
    assert (tmp_path / "study" / "size_curves.png").stat().st_size > 0



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

def test_expected_cells_cover_grid_and_ablations():
    names = expected_cells({"identities": ["a"], "sizes": [25, 50], "methods": ["prior", "scratch"],
                            "ablation_size": 25})
    assert sorted(names) == sorted(["prior_a_n25", "scratch_a_n25", "prior_a_n50", "scratch_a_n50",
                                    "prior_a_n25_nomix", "prior_a_n25_nopost"])


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
