"""deadlib.train.ours_rates: the real study's Ours cells train at adapt's rates × real_study.ours_lr_scale,
through a params file derived from params.yaml; the synthetic Ours cells keep adapt's own rates. (Its
refusals and CLI are tested beside the Baseline's, tests/unit/test_baseline_rates.py.)"""

import copy
from pathlib import Path

import pytest
import yaml

from deadlib.train.adapt import cell_settings
from deadlib.train.ours_rates import ours_params, write_ours_params

REPO = Path(__file__).resolve().parents[2]


def _params(scale=0.5):
    return {"profile": "default", "seed": 0, "device": "cpu", "baseline": {"lr_scale": 4.0},
            "real_study": {"identities": ["a"], "ours_lr_scale": scale},
            "adapt": {"lr_g": 0.001, "lr_d": 0.002, "lr_texture": 0.01, "steps": 200,
                      "by_profile": {"smoke": {"steps": 8}, "full": {"lr_g": 0.0005, "steps": 8000}}}}


def test_the_derived_params_scale_adapts_rates_and_nothing_else():
    params = _params()
    before = copy.deepcopy(params)
    derived = ours_params(params)
    assert params == before                                       # the input is not modified
    assert derived["adapt"]["lr_g"] == pytest.approx(0.0005) and derived["adapt"]["lr_d"] == pytest.approx(0.001)
    assert derived["adapt"]["lr_texture"] == pytest.approx(0.005)
    assert derived["adapt"]["by_profile"]["full"]["lr_g"] == pytest.approx(0.00025)
    assert derived["adapt"]["by_profile"]["smoke"] == {"steps": 8}
    assert {k: v for k, v in derived.items() if k != "adapt"} == {k: v for k, v in params.items() if k != "adapt"}
    assert ours_params(_params(1.0))["adapt"] == params["adapt"]


def test_the_real_ours_cells_train_at_the_projects_scale_and_the_synthetic_ones_at_adapts(tmp_path):
    out = write_ours_params(REPO / "params.yaml", tmp_path / "params.yaml")
    scale = yaml.safe_load((REPO / "params.yaml").read_text())["real_study"]["ours_lr_scale"]
    real, _ = cell_settings("prior", "default", out, seed=0)
    synthetic, _ = cell_settings("prior", "default", REPO / "params.yaml", seed=0)
    assert real.lr_g == pytest.approx(synthetic.lr_g * scale) and real.lr_d == pytest.approx(synthetic.lr_d * scale)
    assert real.lr_texture == pytest.approx(synthetic.lr_texture * scale)
    assert real.steps == synthetic.steps and real.batch_size == synthetic.batch_size

    stages = {f: yaml.safe_load((REPO / f).read_text())["stages"] for f in ("dvc.yaml", "real/dvc.yaml")}
    cmd = stages["real/dvc.yaml"]["adapt"]["cmd"]
    derived = cmd.split("deadlib.train.ours_rates params.yaml", 1)[1].split()[0]
    assert f"-p params_path {derived}" in cmd and "real_study.ours_lr_scale" in stages["real/dvc.yaml"]["adapt"]["params"]
    assert "-p params_path params.yaml" in stages["dvc.yaml"]["adapt"]["cmd"]      # synthetic Ours: adapt's rates
