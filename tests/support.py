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


def fake_a2e_corpus(root: Path, names: list[str], k: int = 4, frames: int = 60, seed: int = 0):
    """A tiny prepared corpus for audio-to-expression tests: ``names`` all prior people, each with a
    random log-MEL (16 rows per 5 frames + right context), expressions that follow one MEL band,
    train frames [0, 45) and validation [45, 60), and a random ``k``-component basis (returned)."""
    import json

    import numpy as np

    from deadlib.data.face3d import ExpressionBasis
    rng = np.random.default_rng(seed)
    basis = ExpressionBasis(mean=np.zeros(1404, np.float32), components=rng.standard_normal((k, 1404)).astype(np.float32),
                            explained_variance=np.ones(k, np.float32), explained_variance_ratio=np.ones(k, np.float32) / k,
                            weights=np.ones(468, np.float32), jaw_index=0)
    root.mkdir(parents=True)
    basis.save(root / "expr_basis.npz")
    (root / "splits.json").write_text(json.dumps({"prior": names, "heldout": []}))
    for name in names:
        folder = root / name
        folder.mkdir()
        mel = rng.standard_normal((frames * 16 // 5 + 16, 80)).astype(np.float32)  # (M, 80)
        band = mel[np.arange(frames) * 16 // 5, :1]  # the first band at each frame's first MEL row
        np.save(folder / "mel.npy", mel.astype(np.float16))
        np.savez(folder / "track.npz", expr=np.repeat(band, k, axis=1), valid=np.ones(frames, bool))
        (folder / "report.json").write_text(json.dumps({"splits": {"train": [0, 45], "val": [45, 60]}}))
    return basis
