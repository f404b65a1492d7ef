"""Settings of the adaptation study (§3.3, §4.3–4.4): the ``adapt``, ``study`` and ``evaluate``
sections of params.yaml, and the names of the study's cells.

The settings themselves are read with ``deadlib.core.config.stage_config`` (params.yaml is the
only copy); this module holds what the sections mean: the names of the cells.
"""

from __future__ import annotations

import re

from deadlib.core.config import ConfigError

METHODS = ("prior", "scratch")


def cell_name(method: str, identity: str, n_frames: int, variant: str | None = None, seed: int = 0) -> str:
    """File-system name of one study cell, e.g. ``prior_synth_h00_n100_s0`` (+ ``_nomix``)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    return f"{method}_{identity}_n{int(n_frames)}_s{int(seed)}" + (f"_{variant}" if variant else "")


def parse_cell_name(name: str) -> dict | None:
    """Inverse of :func:`cell_name`: {method, identity, n_frames, seed, variant} (None: not a cell name)."""
    match = re.fullmatch(rf"(?P<method>{'|'.join(METHODS)})_(?P<identity>.+)_n(?P<n>\d+)_s(?P<seed>\d+)"
                         r"(?:_(?P<variant>[a-z]+))?", name)
    if not match:
        return None
    return {"method": match["method"], "identity": match["identity"], "n_frames": int(match["n"]),
            "seed": int(match["seed"]), "variant": match["variant"]}
