"""Test support shared by the tiers (importable as ``support``: pytest puts tests/ on sys.path).

The tiny renderer of the unit tests is the ``smoke`` profile of the repo's params.yaml, read
through the same loader the stages use, so there is no second copy of it to drift.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deadlib.core.config import settings_with, stage_config

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent   # the venv's dvc / papermill
SHARED_CLIPS = Path(os.environ.get("DEAD_SHARED_CLIPS", REPO.parent / "shared" / "clips"))  # real clips (may be absent)


def run_in(cwd: Path, *args, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run a command in ``cwd`` (a temporary clone) with the venv's tools first on PATH and the clone's
    own deadlib first on PYTHONPATH; ``check``: fail the test, with the output tail, on a non-zero exit."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(cwd)}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    assert not check or done.returncode == 0, \
        f"{' '.join(map(str, args))} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def dvc(*args, cwd: Path) -> str:
    """``dvc *args`` in ``cwd`` (see run_in); its stdout + stderr."""
    done = run_in(cwd, BIN / "dvc", *args)
    return done.stdout + done.stderr


def git(*args, cwd: Path) -> str:
    return run_in(cwd, "git", *args).stdout


def smoke_renderer() -> dict:
    """params.yaml's ``renderer`` section under the smoke profile (64 px, narrow widths)."""
    config = stage_config("renderer", "smoke", params_path=REPO / "params.yaml")
    return {k: v for k, v in config.items() if k not in ("profile", "seed", "device")}



def prepare_config(overrides: dict | None = None, profile: str = "default") -> dict:
    """params.yaml's ``prepare`` section under ``profile`` with ``overrides`` (unknown keys raise)."""
    return settings_with("prepare", profile, overrides, REPO / "params.yaml")


SMOKE_RENDERER = smoke_renderer()


def load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py`` (benchmarks are scripts, not a package), executed once."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
