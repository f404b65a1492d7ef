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

import os
import sys
from pathlib import Path
from typing import Mapping

from deadlib.core.config import load_params
from deadlib.train.derived_params import (
    RATES,
    positive_factor,
    run_cli,
    scaled_rates,
    with_adapt_rates_scaled,
    write_derived,
)

__all__ = ["RATES", "baseline_params", "lr_scale", "scaled_rates", "write_baseline_params"]


def lr_scale(params: Mapping) -> float:
    """``baseline.lr_scale`` of ``params``, checked: a positive number."""
    return positive_factor(params, "baseline", "lr_scale", "the factor on adapt's learning rates for the from-scratch "
                           "cells); add `baseline: {lr_scale: 1.0}` to keep adapt's rates")


def baseline_params(params: Mapping) -> dict:
    """A copy of ``params`` whose ``adapt`` rates (the base values and every by_profile override of
    them) are × ``baseline.lr_scale``: the settings a Baseline cell trains with."""
    return with_adapt_rates_scaled(params, lr_scale(params))


def write_baseline_params(params_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """:func:`baseline_params` of the file ``params_path``, written to ``out_path`` (atomically)."""
    derived = baseline_params(load_params(params_path))
    return write_derived(out_path, derived, f"{params_path} by deadlib.train.baseline: adapt's learning rates "
                                            f"x baseline.lr_scale = {derived['baseline']['lr_scale']}")


def main(argv: list[str] | None = None) -> int:
    return run_cli(argv, "python -m deadlib.train.baseline", __doc__.splitlines()[0], "where to write the Baseline's params file",
                   lambda args: write_baseline_params(args.params, args.out))


if __name__ == "__main__":
    sys.exit(main())
