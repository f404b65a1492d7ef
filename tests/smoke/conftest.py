"""Smoke-tier fixtures shared by the dubbing tests (test_dub_smoke, test_studio_smoke)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from deadlib.audio2expr.stage import a2e_settings, run_stage
from deadlib.data.dataset import WindowDataset
from deadlib.synth.generate import SynthSettings, generate_corpus
from deadlib.train.loop import TrainConfig, train
from deadlib.train.prior import prior_config

PRIOR_IDS = ["synth_p00", "synth_p01"]


def build_dub_world(root: Path, repo_root: Path, actor_dir: Path, actor_steps: int, n_heldout: int = 1) -> dict:
    """A tiny corpus (2 prior + ``n_heldout`` held-out identities, 6 s at 128 px), its prepared cache (prepare
    CLI, smoke profile), the audio2expr stage, an actor checkpoint in ``actor_dir`` (renderer
    trained ``actor_steps`` L1-only steps on p00, p01 and h00) and a 4-step prior without h00 in
    ``root/prior``; plus the dub ``overrides`` pointing at them."""
    raw, cache = root / "raw", root / "prepared"
    generate_corpus(raw, SynthSettings(n_prior=2, n_heldout=n_heldout, duration_s=6.0, size=128, workers=1))
    done = subprocess.run([sys.executable, "-m", "deadlib.data.prepare", "--profile", "smoke", "--raw", str(raw),
                           "--out", str(cache), "--metrics", str(root / "prepare.json")],
                          capture_output=True, text=True, timeout=1200, cwd=repo_root)
    assert done.returncode == 0, done.stderr[-3000:]
    a2e = run_stage(a2e_settings("smoke"), cache, root / "a2e", root / "a2e.json", progress=False)
    base = prior_config("smoke").to_dict()
    base.update(lambda_vgg=0.0, lambda_adv=0.0, log_every=100, eval_every=1000, ckpt_every=1000, device="cpu")
    for out, names, steps in ((actor_dir, PRIOR_IDS + ["synth_h00"], actor_steps), (root / "prior", PRIOR_IDS, 4)):
        cfg = TrainConfig.from_dict({**base, "steps": steps})
        data = WindowDataset(cache, names, "train", window=cfg.renderer.window, n_refs=cfg.renderer.n_refs)
        train(cfg, data, None, out, resume=False, progress=False, identities=names)
    overrides = {"a2e": str(root / "a2e" / "audio2expr.pt"), "basis": str(cache / "expr_basis.npz"),
                 "cache_dir": str(root / "dub_cache"), "prior": str(root / "prior" / "checkpoint.pt"),
                 "prior_cache": str(cache)}
    return {"root": root, "raw": raw, "cache": cache, "a2e": a2e, "actor": actor_dir, "prior": root / "prior",
            "overrides": overrides}


@pytest.fixture(scope="session")
def dub_world_builder(repo_root) -> Callable[..., dict]:
    """``build(root, actor_dir, actor_steps, n_heldout=1)`` → :func:`build_dub_world`'s dict."""
    return lambda root, actor_dir, actor_steps, n_heldout=1: build_dub_world(root, repo_root, actor_dir, actor_steps,
                                                                             n_heldout)
