"""deadlib.train.baseline (and the refusals and CLI of deadlib.train.ours_rates, its sibling for the real Ours
cells): the Baseline cells train at adapt's rates × baseline.lr_scale, through a
params file derived from params.yaml; nothing else in it changes, and a bad scale is refused."""

import copy
from pathlib import Path

import pytest
import yaml

from deadlib.core.config import ConfigError, load_params, stage_config
from deadlib.train import ours_rates
from deadlib.train.adapt import cell_settings
from deadlib.train.baseline import (
    baseline_params,
    main,
    scaled_rates,
    write_baseline_params,
)

REPO = Path(__file__).resolve().parents[2]


def _params(scale=4.0):
    return {"profile": "default", "seed": 0, "device": "cpu", "baseline": {"lr_scale": scale},
            "adapt": {"lr_g": 0.001, "lr_d": 0.002, "lr_texture": 0.01, "steps": 200,
                      "by_profile": {"smoke": {"steps": 8}, "full": {"lr_g": 0.0005, "steps": 8000}}}}


def test_a_scale_multiplies_all_three_rates_and_nothing_else():
    adapt = {"lr_g": 0.001, "lr_d": 0.002, "lr_texture": 0.01, "steps": 200}
    assert scaled_rates(adapt, 2.0) == {"lr_g": 0.002, "lr_d": 0.004, "lr_texture": 0.02}
    assert scaled_rates({"steps": 8}, 2.0) == {}


def test_the_derived_params_scale_base_rates_and_profile_overrides_only():
    params = _params()
    before = copy.deepcopy(params)
    derived = baseline_params(params)
    assert params == before                                       # the input is not modified
    assert derived["adapt"]["lr_g"] == pytest.approx(0.004) and derived["adapt"]["lr_d"] == pytest.approx(0.008)
    assert derived["adapt"]["lr_texture"] == pytest.approx(0.04)
    assert derived["adapt"]["by_profile"]["full"]["lr_g"] == pytest.approx(0.002)  # a profile's own rate scales too
    assert derived["adapt"]["by_profile"]["smoke"] == {"steps": 8}                  # no rate added where none was
    assert derived["adapt"]["steps"] == params["adapt"]["steps"]
    assert {k: v for k, v in derived.items() if k != "adapt"} == {k: v for k, v in params.items() if k != "adapt"}
    assert baseline_params(_params(1.0))["adapt"] == params["adapt"]


# The two derived-rate writers (the Baseline's here, the real Ours cells' in deadlib.train.ours_rates) refuse
# the same way and write the same way: name → (derive, CLI, where the scale lives, what a missing one says).
WRITERS = {"baseline": (baseline_params, main, ("baseline", "lr_scale"), "add `baseline"),
           "ours": (ours_rates.ours_params, ours_rates.main, ("real_study", "ours_lr_scale"), "add `ours_lr_scale")}


def _scaled(scale, where=("baseline", "lr_scale")):
    params = _params()
    params["real_study"] = {"identities": ["a"], "ours_lr_scale": 1.0}
    params[where[0]][where[1]] = scale
    return params


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("scale", [0, -2.0, "4", True, None])
def test_a_bad_scale_is_refused(writer, scale):
    derive, _, where, _ = WRITERS[writer]
    with pytest.raises(ConfigError, match=".".join(where)):
        derive(_scaled(scale, where))


@pytest.mark.parametrize("writer", WRITERS)
def test_a_params_file_without_the_scale_says_what_to_add(writer):
    derive, _, where, hint = WRITERS[writer]
    params = _scaled(1.0, where)
    del params[where[0]][where[1]]
    with pytest.raises(ConfigError, match=hint):
        derive(params)


@pytest.mark.parametrize("writer", WRITERS)
def test_the_cli_writes_a_params_file_the_cells_read(writer, tmp_path):
    _, cli, where, _ = WRITERS[writer]
    src, out = tmp_path / "params.yaml", tmp_path / "cell" / "params.yaml"
    src.write_text(yaml.safe_dump(_scaled(2.0, where)))
    assert cli([str(src), str(out)]) == 0
    assert stage_config("adapt", "default", params_path=out)["lr_g"] == pytest.approx(0.002)
    assert stage_config("adapt", "full", params_path=out)["lr_g"] == pytest.approx(0.001)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_scaled(-1.0, where)))
    assert cli([str(bad), str(tmp_path / "never.yaml")]) == 2
    assert not (tmp_path / "never.yaml").exists()                 # nothing half-written on a refusal


def test_the_projects_baseline_stage_trains_at_the_scaled_rates(tmp_path):
    """params.yaml's own scale reaches the Baseline cell's TrainConfig, and the Ours cells keep adapt's rates."""
    params = load_params(REPO / "params.yaml")
    out = write_baseline_params(REPO / "params.yaml", tmp_path / "params.yaml")
    scale = params["baseline"]["lr_scale"]
    scratch, _ = cell_settings("scratch", "default", out, seed=0)
    prior, _ = cell_settings("prior", "default", REPO / "params.yaml", seed=0)
    assert scratch.lr_g == pytest.approx(prior.lr_g * scale) and scratch.lr_d == pytest.approx(prior.lr_d * scale)
    assert scratch.lr_texture == pytest.approx(prior.lr_texture * scale)
    assert scratch.steps == prior.steps and scratch.batch_size == prior.batch_size   # the same compute per cell


@pytest.mark.parametrize("dvc_file", ["dvc.yaml", "real/dvc.yaml"])
def test_both_pipelines_run_their_baseline_on_the_derived_file(dvc_file):
    stages = yaml.safe_load((REPO / dvc_file).read_text())["stages"]
    cmd = stages["baseline"]["cmd"]
    assert "deadlib.train.baseline params.yaml" in cmd and "-p method scratch" in cmd
    derived = cmd.split("deadlib.train.baseline params.yaml", 1)[1].split()[0]
    assert f"-p params_path {derived}" in cmd
    assert "baseline.lr_scale" in stages["baseline"]["params"]
    # no from-scratch cell is left in the adapt matrix, where it would train at adapt's own rates
    assert stages["adapt"].get("matrix", {}).get("method", ["prior"]) == ["prior"]
