"""params.yaml access: one profile switch, one section per stage, device and seeding.

``params.yaml`` is the single source of truth. Every stage section may hold a ``by_profile``
mapping whose entry for the active ``profile`` is deep-merged over the section's base values
(the base values *are* the ``default`` profile). A stage therefore reads only ``profile`` and
its own section, which keeps DVC's params dependencies narrow.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

PROFILES = ("smoke", "default", "full")
GLOBAL_KEYS = ("profile", "seed", "device")


class ConfigError(ValueError):
    """params.yaml is missing, malformed or names an unknown profile/stage."""


def find_params_file(start: str | os.PathLike | None = None) -> Path:
    """Walk up from ``start`` (default: cwd) to the first directory holding params.yaml."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "params.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no params.yaml found in {here} or its parents; run from the repo root")


def load_params(path: str | os.PathLike | None = None) -> dict:
    """Read params.yaml (searched upwards from the cwd when ``path`` is None)."""
    path = Path(path) if path else find_params_file()
    try:
        params = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    if not isinstance(params, dict):
        raise ConfigError(f"{path} must hold a mapping at top level")
    return params


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, others replace)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def stage_config(stage: str, profile: str | None = None, params: Mapping | None = None,
                 params_path: str | os.PathLike | None = None) -> dict:
    """The effective settings of ``stage`` under ``profile`` (default: params' own switch).

    Returns the stage section with its ``by_profile[profile]`` override applied, plus the
    global keys ``profile``, ``seed`` and ``device``.
    """
    params = dict(params) if params is not None else load_params(params_path)
    profile = profile or params.get("profile", "default")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if stage not in params:
        raise ConfigError(f"params.yaml has no section {stage!r} (sections: {sorted(params)})")
    section = dict(params[stage] or {})
    overrides = section.pop("by_profile", {}) or {}
    unknown = set(overrides) - set(PROFILES)
    if unknown:
        raise ConfigError(f"{stage}.by_profile names unknown profiles {sorted(unknown)}")
    config = deep_merge(section, overrides.get(profile, {}) or {})
    for key in GLOBAL_KEYS:
        config.setdefault(key, params.get(key))
    config["profile"] = profile
    return config


def without_globals(config: Mapping) -> dict:
    """A stage's own settings: ``config`` without the global keys and the ``by_profile`` table."""
    return {k: v for k, v in config.items() if k not in (*GLOBAL_KEYS, "by_profile")}


def merge_overrides(name: str, base: Mapping, overrides: Mapping | None) -> dict:
    """``base`` (a params.yaml section) deep-merged with ``overrides``; a key the section does not
    have is an error naming it (a typo never silently becomes a new setting)."""
    def check(prefix: str, known: Mapping, over: Mapping) -> None:
        for key, value in over.items():
            if key not in known:
                raise ConfigError(f"unknown setting {prefix}.{key}; params.yaml's {prefix} has {sorted(known)}")
            if isinstance(value, Mapping) and isinstance(known[key], Mapping):
                check(f"{prefix}.{key}", known[key], value)
            elif isinstance(value, Mapping) and known[key] is not None:
                raise ConfigError(f"{prefix}.{key} is a value ({known[key]!r}), not a section: "
                                  f"{prefix}.{key}.{next(iter(value), '')} does not exist")

    check(name, base, dict(overrides or {}))
    return deep_merge(base, dict(overrides or {}))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["steps=10", "renderer.base_channels=8"]`` → {"steps": 10, "renderer": {"base_channels": 8}}
    (values parsed as YAML, so numbers, booleans and null work): the ``--set`` of the command lines."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def settings_with(stage: str, profile: str | None = None, overrides: Mapping | None = None,
                  params_path: str | os.PathLike | None = None) -> dict:
    """``stage``'s own settings under ``profile`` (no global keys) with checked ``overrides``:
    how tests and benchmarks vary one setting without copying the section."""
    return merge_overrides(stage, without_globals(stage_config(stage, profile, params_path=params_path)), overrides)


def require_keys(name: str, config: Mapping, keys: tuple[str, ...]) -> None:
    """Fail, naming them, when ``config`` (section ``name``) lacks any of ``keys``."""
    missing = [k for k in keys if k not in config]
    if missing:
        raise ConfigError(f"{name} settings lack {missing}; pass params.yaml's section "
                          f"(deadlib.core.config.stage_config({name!r}, profile))")


def settings_path(metrics_path: str | os.PathLike) -> Path:
    """Where a stage's effective settings go: ``<metrics>.settings.json`` beside its metrics file."""
    return Path(metrics_path).with_suffix(".settings.json")


def _plain(value: Any) -> Any:
    """JSON-ready copy: dataclasses → dicts, tuples → lists, paths and devices → strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def write_settings(metrics_path: str | os.PathLike, settings: Any) -> Path:
    """Record the settings a stage actually ran with (profile applied, defaults filled in) beside
    its metrics, so ``dvc metrics diff`` / ``dvc exp show`` show effective values, not only ``profile``."""
    from deadlib.core.files import write_json

    return write_json(settings_path(metrics_path), _plain(settings))


def resolve_device(name: str | None = "auto"):
    """'auto' → CUDA if available, else CPU. Modules receive this; nothing calls .cuda()."""
    import torch

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return device


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch from one number (CPU runs become repeatable)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
