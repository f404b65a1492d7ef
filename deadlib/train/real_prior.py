"""The real pipeline's prior length: ``train_prior.steps`` replaced by ``real_study.prior_steps[profile]``.

The real and the synthetic pipelines share ``train_prior``'s settings, but not its length: at 1200 steps
the real prior is short of training (``benchmarks/compare_prior_steps.py --corpus real``: 3600 steps
gave every held-out person a better Ours cell on every VALIDATION score — README "Is the real prior
trained long enough?"), while lengthening ``train_prior.steps`` itself would re-record the whole
synthetic study. ``real_study.prior_steps`` maps a profile to the real prior's steps (null or absent:
the profile's ``train_prior.steps``), so the smoke and full profiles keep theirs.

real/dvc.yaml's ``train_prior`` derives the stage's params file here, into the prior's output folder,
so params.yaml stays the only copy of every setting and the launcher, the trainer and the stage
notebook all read the same length:

    python -m deadlib.train.real_prior params.yaml real/models/prior/params.yaml --profile default
"""

from __future__ import annotations

import copy
import numbers
import os
import sys
from pathlib import Path
from typing import Mapping

from deadlib.core.config import PROFILES, ConfigError, load_params
from deadlib.train.derived_params import run_cli, write_derived


def real_prior_steps(params: Mapping, profile: str) -> int | None:
    """``real_study.prior_steps[profile]`` of ``params``, checked: a positive integer, or None when the
    profile keeps ``train_prior``'s steps."""
    section = params.get("real_study")
    if not isinstance(section, Mapping) or "prior_steps" not in section:
        raise ConfigError("params.yaml has no real_study.prior_steps (the real prior's steps per profile); add "
                          "`prior_steps: {default: null}` under real_study to keep train_prior's steps")
    table = section["prior_steps"]
    if not isinstance(table, Mapping) or set(table) - set(PROFILES):
        raise ConfigError(f"real_study.prior_steps must map profiles ({', '.join(PROFILES)}) to steps or null, "
                          f"got {table!r}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    steps = table.get(profile)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1):
        raise ConfigError(f"real_study.prior_steps.{profile} must be a positive integer or null, got {steps!r}")
    return None if steps is None else int(steps)


def real_prior_params(params: Mapping, profile: str) -> dict:
    """A copy of ``params`` whose ``train_prior`` trains ``real_study.prior_steps[profile]`` steps under
    ``profile`` (set in ``train_prior.by_profile[profile]``, so no other profile and no other setting
    moves); an unchanged copy when that entry is null."""
    steps = real_prior_steps(params, profile)
    derived = copy.deepcopy(dict(params))
    if steps is not None:
        section = derived.get("train_prior")
        if not isinstance(section, dict):
            raise ConfigError("params.yaml has no train_prior section")
        overrides = section.get("by_profile") or {}
        overrides[profile] = {**(overrides.get(profile) or {}), "steps": steps}
        section["by_profile"] = overrides
    return derived


def write_real_prior_params(params_path: str | os.PathLike, out_path: str | os.PathLike, profile: str) -> Path:
    """:func:`real_prior_params` of the file ``params_path`` under ``profile``, written to ``out_path``
    (atomically)."""
    params = load_params(params_path)
    derived = real_prior_params(params, profile)
    steps = real_prior_steps(params, profile)
    origin = (f"train_prior.steps under profile {profile} = real_study.prior_steps.{profile} = {steps}"
              if steps is not None else f"real_study.prior_steps.{profile} is null: train_prior's own steps")
    return write_derived(out_path, derived, f"{params_path} by deadlib.train.real_prior: {origin}")


def main(argv: list[str] | None = None) -> int:
    def write(args) -> None:
        write_real_prior_params(args.params, args.out, args.profile or load_params(args.params).get("profile", "default"))

    return run_cli(argv, "python -m deadlib.train.real_prior", __doc__.splitlines()[0],
                   "where to write the real train_prior stage's params file", write,
                   lambda ap: ap.add_argument("--profile", default=None, help="smoke | default | full (default: params.yaml's)"))


if __name__ == "__main__":
    sys.exit(main())
