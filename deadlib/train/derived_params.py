"""Params files derived from params.yaml for one stage: a copy with a few settings replaced.

Three stages train with settings that params.yaml expresses as a rule on another section — the
Baseline at adapt's rates × ``baseline.lr_scale`` (``deadlib.train.baseline``), the real study's Ours
cells at adapt's rates × ``real_study.ours_lr_scale`` (``deadlib.train.ours_rates``), the real prior at
``real_study.prior_steps[profile]`` steps (``deadlib.train.real_prior``). Each stage's command writes
the derived file into its output folder first, so params.yaml stays the only copy of every setting and
the trainer and the stage notebook read the same values. This module holds what the three share: the
checks of a factor, the scaling of adapt's rates, the atomic write with its provenance line, the CLI.
"""

from __future__ import annotations

import argparse
import copy
import numbers
import os
import sys
from pathlib import Path
from typing import Callable, Mapping

import yaml

from deadlib.core.config import ConfigError
from deadlib.core.files import atomic_output

RATES = ("lr_g", "lr_d", "lr_texture")  # the three rates of a cell: renderer, discriminator, texture


def positive_factor(params: Mapping, section: str, key: str, missing: str) -> float:
    """``params[section][key]`` checked to be a positive number; ``missing`` says what to add when absent."""
    table = params.get(section)
    if not isinstance(table, Mapping) or key not in table:
        raise ConfigError(f"params.yaml has no {section}.{key} ({missing})")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ConfigError(f"{section}.{key} must be a positive number, got {value!r}")
    return float(value)


def scaled_rates(adapt: Mapping, scale: float) -> dict[str, float]:
    """The rates of ``adapt`` (a section or a by_profile override) that it sets, × ``scale``."""
    return {key: float(adapt[key]) * scale for key in RATES if key in adapt}


def with_adapt_rates_scaled(params: Mapping, scale: float) -> dict:
    """A copy of ``params`` whose ``adapt`` rates — the base values and every by_profile override of
    them — are × ``scale``; nothing else moves."""
    derived = copy.deepcopy(dict(params))
    adapt = derived.get("adapt")
    if not isinstance(adapt, dict) or any(key not in adapt for key in RATES):
        raise ConfigError(f"params.yaml's adapt section must set {', '.join(RATES)}")
    for section in [adapt, *(adapt.get("by_profile") or {}).values()]:
        section.update(scaled_rates(section, scale))
    return derived


def write_derived(out_path: str | os.PathLike, derived: Mapping, provenance: str) -> Path:
    """``derived`` written to ``out_path`` as YAML (atomically) under a comment line naming where it
    comes from (``provenance``) and that params.yaml, not this file, is the one to edit."""
    with atomic_output(out_path) as tmp:
        tmp.write_text(f"# derived from {provenance}; edit params.yaml, not this file\n"
                       + yaml.safe_dump(dict(derived), sort_keys=False))
    return Path(out_path)


def run_cli(argv: list[str] | None, prog: str, description: str, out_help: str,
            write: Callable[[argparse.Namespace], object],
            extra: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """``prog PARAMS OUT [extra options]`` → ``write(args)``; a ConfigError is printed and exits 2."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("params", type=Path, help="params.yaml")
    ap.add_argument("out", type=Path, help=out_help)
    if extra is not None:
        extra(ap)
    args = ap.parse_args(argv)
    try:
        write(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
