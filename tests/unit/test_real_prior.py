"""deadlib.train.real_prior: the real pipeline's prior trains real_study.prior_steps[profile] steps through a
params file derived from params.yaml; every other profile, setting and the synthetic prior keep train_prior's."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from deadlib.core.config import ConfigError
from deadlib.train.prior import prior_config
from deadlib.train.real_prior import (
    main,
    real_prior_params,
    real_prior_steps,
    write_real_prior_params,
)

REPO = Path(__file__).resolve().parents[2]


def _params(table):
    return {"profile": "default", "seed": 0, "device": "cpu", "real_study": {"identities": ["a"], "prior_steps": table},
            "train_prior": {"steps": 1200, "batch_size": 4, "eval_every": 300,
                            "by_profile": {"smoke": {"steps": 40, "batch_size": 2}, "full": {"steps": 200000}}}}


def test_only_the_named_profiles_steps_move():
    params = _params({"smoke": None, "default": 3600, "full": None})
    before = copy.deepcopy(params)
    derived = real_prior_params(params, "default")
    assert params == before                                                # the input is not modified
    assert derived["train_prior"]["by_profile"]["default"] == {"steps": 3600}
    assert derived["train_prior"]["steps"] == 1200                         # other profiles resolve as before
    assert derived["train_prior"]["by_profile"]["smoke"] == {"steps": 40, "batch_size": 2}
    assert {k: v for k, v in derived.items() if k != "train_prior"} == {k: v for k, v in params.items()
                                                                          if k != "train_prior"}
    assert real_prior_params(params, "smoke") == params                    # null: train_prior's own steps
    assert real_prior_params(_params({"default": 3600}), "full") == _params({"default": 3600})   # absent: same
    # a profile with its own override keeps the rest of it
    assert real_prior_params(_params({"smoke": 7}), "smoke")["train_prior"]["by_profile"]["smoke"] == {
        "steps": 7, "batch_size": 2}


@pytest.mark.parametrize("steps", [0, -5, "3600", True, 3.5])
def test_a_bad_step_count_is_refused(steps):
    with pytest.raises(ConfigError, match="real_study.prior_steps.default"):
        real_prior_steps(_params({"default": steps}), "default")


@pytest.mark.parametrize("table", [3600, {"laptop": 3600}, [3600]])
def test_prior_steps_must_map_profiles(table):
    with pytest.raises(ConfigError, match="must map profiles"):
        real_prior_steps(_params(table), "default")


def test_a_params_file_without_prior_steps_says_what_to_add(tmp_path, capsys):
    params = _params(None)
    del params["real_study"]["prior_steps"]
    with pytest.raises(ConfigError, match="add `prior_steps"):
        real_prior_params(params, "default")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main([str(path), str(tmp_path / "out" / "params.yaml")]) == 2
    assert "add `prior_steps" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_real_prior_trains_the_projects_length_and_the_synthetic_one_train_priors(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    table = params["real_study"]["prior_steps"]
    for profile in ("smoke", "default", "full"):
        derived = write_real_prior_params(REPO / "params.yaml", tmp_path / f"{profile}.yaml", profile)
        real, synthetic = prior_config(profile, derived), prior_config(profile, REPO / "params.yaml")
        assert real.steps == (table.get(profile) or synthetic.steps)
        assert real.to_dict() | {"steps": synthetic.steps} == synthetic.to_dict()   # nothing else moves
    # CI's real smoke run stays tiny: the smoke profile keeps train_prior's smoke length
    assert prior_config("smoke", tmp_path / "smoke.yaml").steps == prior_config("smoke", REPO / "params.yaml").steps

    stages = {f: yaml.safe_load((REPO / f).read_text())["stages"]["train_prior"] for f in ("dvc.yaml", "real/dvc.yaml")}
    cmd = stages["real/dvc.yaml"]["cmd"]
    derived = re.search(r"deadlib\.train\.real_prior params\.yaml (\S+)", cmd).group(1)
    assert derived.startswith("real/models/prior/")                       # inside the stage's own output
    # the launcher, the trainer and the notebook (which reloads the finished prior) read the same length
    assert re.search(rf"deadlib\.train\.launch [^&]*--params {derived} deadlib\.train\.prior", cmd)
    assert re.search(rf"deadlib\.train\.prior [^&]*--params {derived}", cmd)
    assert f"-p params_path {derived}" in cmd
    assert "real_study.prior_steps" in stages["real/dvc.yaml"]["params"]
    assert "deadlib/train/real_prior.py" in stages["real/dvc.yaml"]["deps"]
    assert "-p params_path params.yaml" in stages["dvc.yaml"]["cmd"] and "real_prior" not in stages["dvc.yaml"]["cmd"]
