"""params.yaml profiles: one switch, per-stage sections, clear errors."""

import pytest
import torch
import yaml

from deadlib.core.config import (
    ConfigError,
    deep_merge,
    merge_overrides,
    parse_overrides,
    resolve_device,
    stage_config,
)

PARAMS = {
    "profile": "default", "seed": 3, "device": "auto",
    "train": {"lr": 1e-3, "net": {"width": 32, "depth": 4},
              "by_profile": {"smoke": {"net": {"width": 8}}, "full": {"lr": 2e-4}}},
}


def test_base_values_are_the_default_profile():
    cfg = stage_config("train", params=PARAMS)
    assert cfg["net"] == {"width": 32, "depth": 4} and cfg["lr"] == 1e-3
    assert cfg["profile"] == "default" and cfg["seed"] == 3 and "by_profile" not in cfg


def test_profile_overrides_merge_deeply():
    smoke = stage_config("train", profile="smoke", params=PARAMS)
    assert smoke["net"] == {"width": 8, "depth": 4} and smoke["lr"] == 1e-3
    assert stage_config("train", profile="full", params=PARAMS)["lr"] == 2e-4


def test_switch_read_from_params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**PARAMS, "profile": "smoke"}))
    assert stage_config("train", params_path=path)["net"]["width"] == 8


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown profile"):
        stage_config("train", profile="huge", params=PARAMS)
    with pytest.raises(ConfigError, match="no section"):
        stage_config("missing", params=PARAMS)


def test_deep_merge_does_not_mutate():
    base = {"a": {"b": 1}}
    assert deep_merge(base, {"a": {"c": 2}}) == {"a": {"b": 1, "c": 2}} and base == {"a": {"b": 1}}


def test_repo_params_have_every_profile_valid(repo_root):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    for stage, section in params.items():
        if isinstance(section, dict) and "by_profile" in section:
            for profile in ("smoke", "default", "full"):
                stage_config(stage, profile=profile, params=params)


def test_device_auto_is_never_hardcoded():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"


# (dataclass, params section, key path inside it): a default that differs from params.yaml's default
# profile would silently change a run that forgets to pass the value.
DEFAULTED = [("deadlib.train.checkpoint", "TrainConfig", "train_prior", ()),
             ("deadlib.train.checkpoint", "LossConfig", "train_prior", ()),
             ("deadlib.model.renderer", "RendererConfig", "renderer", ()),
             ("deadlib.audio2expr.model", "Audio2ExprConfig", "audio2expr", ("model",)),
             ("deadlib.audio2expr.model", "Audio2ExprTrainConfig", "audio2expr", ("train",)),
             ("deadlib.data.track", "TrackSettings", "prepare", ("track",)),
             ("deadlib.eval.evaluate", "EvalSettings", "evaluate", ()),
             ("deadlib.synth.generate", "SynthSettings", "synth", ()),
             ("deadlib.sync.expert", "SyncExpertConfig", "sync_expert", ())]


@pytest.mark.parametrize("module, name, section, keys", DEFAULTED, ids=[d[1] for d in DEFAULTED])
def test_dataclass_defaults_equal_the_default_profile(repo_root, module, name, section, keys):
    import dataclasses
    import importlib

    cls = getattr(importlib.import_module(module), name)
    values = stage_config(section, "default", params_path=repo_root / "params.yaml")
    for key in keys:
        values = values[key]
    differ = {}
    for f in dataclasses.fields(cls):
        if f.name not in values or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        default = list(default) if isinstance(default, tuple) else default
        if default != values[f.name]:
            differ[f.name] = (default, values[f.name])
    assert not differ, f"{name} defaults differ from params.yaml {section} (default profile): {differ}"


def test_set_overrides_parse_as_yaml_and_refuse_what_the_section_does_not_have():
    """parse_overrides + merge_overrides: the --set of the command lines (prior, a2e cross-validation)."""
    over = parse_overrides(["steps=10", "renderer.base_channels=8", "lr_audio=null", "amp=true"])
    assert over == {"steps": 10, "renderer": {"base_channels": 8}, "lr_audio": None, "amp": True}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["steps"])
    base = {"steps": 100, "renderer": {"base_channels": 32, "window": 5}, "lr_audio": None}
    merged = merge_overrides("train_prior", base, parse_overrides(["renderer.window=3"]))
    assert merged == {"steps": 100, "renderer": {"base_channels": 32, "window": 3}, "lr_audio": None}
    assert base["renderer"]["window"] == 5
    with pytest.raises(ConfigError, match="unknown setting train_prior.renderer.windw"):
        merge_overrides("train_prior", base, parse_overrides(["renderer.windw=3"]))
    with pytest.raises(ConfigError, match="train_prior.steps is a value"):   # a path through a value is a typo too
        merge_overrides("train_prior", base, parse_overrides(["steps.max=3"]))
    assert merge_overrides("train_prior", base, {"lr_audio": {"x": 1}})["lr_audio"] == {"x": 1}  # null may take a section
