"""The study's Baseline (§4.4) at its own learning rates: a fair from-scratch comparison.

Issue 15 asks that the Baseline (renderer and texture trained from scratch on the actor's N
frames) train at learning rates chosen for it on validation, not at the rates tuned for a
fine-tune of the prior. ``adapt`` holds one set of rates (``lr_g``, ``lr_d``, ``lr_texture``); the
``baseline`` section of params.yaml holds ``lr_scale``, the factor the Baseline multiplies all three
by, chosen by ``benchmarks/compare_baseline_lr.py`` on the held-out people's validation spans.

The ``baseline`` stage runs notebook 03 on a params file derived here from params.yaml, written into
the cell's output folder, so params.yaml stays the only copy of every setting and the Ours cells
(which read ``adapt`` only) are untouched by a change of ``baseline.lr_scale``:

    python -m deadlib.train.baseline params.yaml models/adapt/scratch_synth_h00_n100_s0/params.yaml
"""

from __future__ import annotations

import argparse
import copy
import numbers
import os
import sys
from pathlib import Path
from typing import Mapping

import yaml

from deadlib.core.config import ConfigError, load_params
from deadlib.core.files import atomic_output

RATES = ("lr_g", "lr_d", "lr_texture")  # the three rates of a cell: renderer, discriminator, texture


def scaled_rates(adapt: Mapping, scale: float) -> dict[str, float]:
    """The rates of ``adapt`` (a section or a by_profile override) that it sets, × ``scale``."""
    return {key: float(adapt[key]) * scale for key in RATES if key in adapt}


def lr_scale(params: Mapping) -> float:
    """``baseline.lr_scale`` of ``params``, checked: a positive number."""
    section = params.get("baseline")
    if not isinstance(section, Mapping) or "lr_scale" not in section:
        raise ConfigError("params.yaml has no baseline.lr_scale (the factor on adapt's learning rates for the "
                          "from-scratch cells); add `baseline: {lr_scale: 1.0}` to keep adapt's rates")
    scale = section["lr_scale"]
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale > 0:
        raise ConfigError(f"baseline.lr_scale must be a positive number, got {scale!r}")
    return float(scale)


def baseline_params(params: Mapping) -> dict:
    """A copy of ``params`` whose ``adapt`` rates (the base values and every by_profile override of
    them) are × ``baseline.lr_scale``: the settings a Baseline cell trains with."""
    scale = lr_scale(params)
    derived = copy.deepcopy(dict(params))
    adapt = derived.get("adapt")
    if not isinstance(adapt, dict) or any(key not in adapt for key in RATES):
        raise ConfigError(f"params.yaml's adapt section must set {', '.join(RATES)}")
    adapt.update(scaled_rates(adapt, scale))
    for override in (adapt.get("by_profile") or {}).values():
        override.update(scaled_rates(override, scale))
    return derived


def write_baseline_params(params_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """:func:`baseline_params` of the file ``params_path``, written to ``out_path`` (atomically)."""
    derived = baseline_params(load_params(params_path))
    with atomic_output(out_path) as tmp:
        tmp.write_text(f"# derived from {params_path} by deadlib.train.baseline: adapt's learning rates "
                       f"x baseline.lr_scale = {derived['baseline']['lr_scale']}; edit params.yaml, not this file\n"
                       + yaml.safe_dump(derived, sort_keys=False))
    return Path(out_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deadlib.train.baseline", description=__doc__.splitlines()[0])
    ap.add_argument("params", type=Path, help="params.yaml")
    ap.add_argument("out", type=Path, help="where to write the Baseline's params file")
    args = ap.parse_args(argv)
    try:
        write_baseline_params(args.params, args.out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
