"""Settings of the adaptation study (§3.3, §4.3–4.4): the ``adapt``, ``study`` and ``evaluate``
sections of params.yaml, the names of the study's cells and their step budgets.

The settings themselves are read with ``deadlib.core.config.stage_config`` (params.yaml is the
only copy); this module holds what the sections mean: cell names and step budgets.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from deadlib.core.config import ConfigError

METHODS = ("prior", "scratch")

def step_budget(n_frames: int, steps_by_n: Mapping[Any, int]) -> int:
    """Optimiser steps for an actor dataset of ``n_frames``: the entry of the largest listed N
    ≤ n_frames (the smallest entry below the table). Same for prior and scratch."""
    if not steps_by_n:
        raise ConfigError("adapt.steps_by_n is empty; give at least one {N: steps} entry")
    table = sorted((int(k), int(v)) for k, v in steps_by_n.items())
    below = [steps for n, steps in table if n <= n_frames]
    return below[-1] if below else table[0][1]


def cell_name(method: str, identity: str, n_frames: int, variant: str | None = None) -> str:
    """File-system name of one study cell, e.g. ``prior_synth_h00_n100`` (+ ``_nomix``)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    return f"{method}_{identity}_n{int(n_frames)}" + (f"_{variant}" if variant else "")


def parse_cell_name(name: str) -> dict | None:
    """Inverse of :func:`cell_name`: {method, identity, n_frames, variant} (None: not a cell name)."""
    match = re.fullmatch(rf"(?P<method>{'|'.join(METHODS)})_(?P<identity>.+)_n(?P<n>\d+)(?:_(?P<variant>[a-z]+))?", name)
    if not match:
        return None
    return {"method": match["method"], "identity": match["identity"], "n_frames": int(match["n"]),
            "variant": match["variant"]}
