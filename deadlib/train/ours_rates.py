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

import os
import sys
from pathlib import Path
from typing import Mapping

from deadlib.core.config import load_params
from deadlib.train.derived_params import (
    positive_factor,
    run_cli,
    with_adapt_rates_scaled,
    write_derived,
)


def ours_lr_scale(params: Mapping) -> float:
    """``real_study.ours_lr_scale`` of ``params``, checked: a positive number."""
    return positive_factor(params, "real_study", "ours_lr_scale", "the factor on adapt's learning rates for the real "
                           "study's Ours cells); add `ours_lr_scale: 1.0` under real_study to keep adapt's rates")


def ours_params(params: Mapping) -> dict:
    """A copy of ``params`` whose ``adapt`` rates (the base values and every by_profile override of
    them) are × ``real_study.ours_lr_scale``: the settings a real Ours cell trains with."""
    return with_adapt_rates_scaled(params, ours_lr_scale(params))


def write_ours_params(params_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """:func:`ours_params` of the file ``params_path``, written to ``out_path`` (atomically)."""
    derived = ours_params(load_params(params_path))
    return write_derived(out_path, derived, f"{params_path} by deadlib.train.ours_rates: adapt's learning rates "
                                            f"x real_study.ours_lr_scale = {derived['real_study']['ours_lr_scale']}")


def main(argv: list[str] | None = None) -> int:
    return run_cli(argv, "python -m deadlib.train.ours_rates", __doc__.splitlines()[0],
                   "where to write the real Ours cell's params file", lambda args: write_ours_params(args.params, args.out))


if __name__ == "__main__":
    sys.exit(main())
