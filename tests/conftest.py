"""Shared fixtures: repo paths, the real-clip folder (skips when absent), tiny synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from support import REPO, SHARED_CLIPS

# The test models are tiny: one torch thread is as fast as two on a quiet 2-core machine and
# several times faster when other work shares the cores (measured), so every test runs with one.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_clips() -> Path:
    """Folder of real talking-face clips; tests using it skip with a reason when it is absent."""
    if not SHARED_CLIPS.is_dir() or not any(SHARED_CLIPS.glob("*.mp4")):
        pytest.skip(f"real clips not found at {SHARED_CLIPS} (set DEAD_SHARED_CLIPS or place ../shared/clips)")
    return SHARED_CLIPS


def pytest_collection_modifyitems(config, items):
    """Tier markers follow the folder: tests/unit → unit, tests/smoke → smoke, tests/notebooks → notebooks."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("unit", "smoke", "notebooks"):
            item.add_marker(getattr(pytest.mark, tier))
