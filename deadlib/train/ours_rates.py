"""Ours' own learning rates on the real corpus: adapt's rates × ``real_study.ours_lr_scale``.

The study compares two methods, each at learning rates chosen for it on validation. The Baseline
gets its factor from ``baseline.lr_scale`` (``deadlib.train.baseline``). Ours — the prior fine-tuned
— trains at ``adapt``'s rates on the synthetic corpus, where the sweep of its rates is flat around
× 1; on the real held-out people the same sweep (``benchmarks/compare_baseline_lr.py --corpus real
--method prior``, validation spans only) put × 0.5 ahead of × 1 for 3 of 3 people and ahead of
× 0.25 too, so the real study's Ours cells train at ``adapt``'s rates × ``real_study.ours_lr_scale``.

real/dvc.yaml's ``adapt`` stage derives the cell's params file here, into the cell's output folder,
so params.yaml stays the only copy of every setting and the synthetic Ours cells (which read
``adapt`` directly) are untouched by this factor:

    python -m deadlib.train.ours_rates params.yaml real/models/adapt/prior_dfrf_cnn2_n100_s0/params.yaml
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
from deadlib.train.baseline import RATES, scaled_rates


def ours_lr_scale(params: Mapping) -> float:
    """``real_study.ours_lr_scale`` of ``params``, checked: a positive number."""
    section = params.get("real_study")
    if not isinstance(section, Mapping) or "ours_lr_scale" not in section:
        raise ConfigError("params.yaml has no real_study.ours_lr_scale (the factor on adapt's learning rates "
                          "for the real study's Ours cells); add `ours_lr_scale: 1.0` under real_study to keep "
                          "adapt's rates")
    scale = section["ours_lr_scale"]
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale > 0:
        raise ConfigError(f"real_study.ours_lr_scale must be a positive number, got {scale!r}")
    return float(scale)


def ours_params(params: Mapping) -> dict:
    """A copy of ``params`` whose ``adapt`` rates (the base values and every by_profile override of
    them) are × ``real_study.ours_lr_scale``: the settings a real Ours cell trains with."""
    scale = ours_lr_scale(params)
    derived = copy.deepcopy(dict(params))
    adapt = derived.get("adapt")
    if not isinstance(adapt, dict) or any(key not in adapt for key in RATES):
        raise ConfigError(f"params.yaml's adapt section must set {', '.join(RATES)}")
    for section in [adapt, *(adapt.get("by_profile") or {}).values()]:
        section.update(scaled_rates(section, scale))
    return derived


def write_ours_params(params_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """:func:`ours_params` of the file ``params_path``, written to ``out_path`` (atomically)."""
    derived = ours_params(load_params(params_path))
    with atomic_output(out_path) as tmp:
        tmp.write_text(f"# derived from {params_path} by deadlib.train.ours_rates: adapt's learning rates "
                       f"x real_study.ours_lr_scale = {derived['real_study']['ours_lr_scale']}; "
                       "edit params.yaml, not this file\n" + yaml.safe_dump(derived, sort_keys=False))
    return Path(out_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deadlib.train.ours_rates", description=__doc__.splitlines()[0])
    ap.add_argument("params", type=Path, help="params.yaml")
    ap.add_argument("out", type=Path, help="where to write the real Ours cell's params file")
    args = ap.parse_args(argv)
    try:
        write_ours_params(args.params, args.out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
