"""Test support shared by the tiers (importable as ``support``: pytest puts tests/ on sys.path).

The tiny renderer of the unit tests is the ``smoke`` profile of the repo's params.yaml, read
through the same loader the stages use, so there is no second copy of it to drift.
"""

from __future__ import annotations

from pathlib import Path

from deadlib.core.config import settings_with, stage_config

REPO = Path(__file__).resolve().parents[1]


def smoke_renderer() -> dict:
    """params.yaml's ``renderer`` section under the smoke profile (64 px, narrow widths)."""
    config = stage_config("renderer", "smoke", params_path=REPO / "params.yaml")
    return {k: v for k, v in config.items() if k not in ("profile", "seed", "device")}



def prepare_config(overrides: dict | None = None, profile: str = "default") -> dict:
    """params.yaml's ``prepare`` section under ``profile`` with ``overrides`` (unknown keys raise)."""
    return settings_with("prepare", profile, overrides, REPO / "params.yaml")


SMOKE_RENDERER = smoke_renderer()
