"""Dubbing throughput on this machine: output frames/s and where the time goes.

    .venv/bin/python benchmarks/bench_dub.py [--profile default] [--seconds 8] [--threads 2]

Self-contained: generates one prior + one held-out synthetic identity (``--size`` px, ``--seconds``
long), prepares them with the profile's prepare settings (the basis is fitted on the prior one),
and builds UNTRAINED models at the profile's sizes (a renderer checkpoint holding the held-out
actor's texture, an audio2expr model on that basis): weights do not change the cost. Then dubs the
held-out video with the prior identity's audio twice — the first run prepares (cached), the second
is the steady state — and prints frames/s with the per-stage breakdown (ms per output frame):
audio2expr, rasterise (face3d.raster_maps), render (renderer forward), blend (paste back), decode
(full frames), encode (H.264/AAC). Prints, never asserts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from deadlib.core.config import stage_config
from deadlib.data.face3d import ExpressionBasis
from deadlib.dub.dubbing import dub
from deadlib.model.renderer import RendererConfig
from deadlib.synth.generate import SynthSettings, generate_corpus
from deadlib.train.audio2expr_stage import a2e_settings, build_model, save_a2e
from deadlib.train.checkpoint import TrainConfig, TrainState

STAGES = ("audio2expr", "rasterise", "render", "blend", "decode", "encode")


def build(root: Path, profile: str, seconds: float, size: int) -> dict:
    """Corpus, prepared cache, untrained renderer checkpoint and audio2expr model under ``root``."""
    raw, cache = root / "raw", root / "prepared"
    t = time.perf_counter()
    generate_corpus(raw, SynthSettings(n_prior=1, n_heldout=1, duration_s=seconds, size=size, workers=1))
    subprocess.run([sys.executable, "-m", "deadlib.data.prepare", "--profile", profile, "--raw", str(raw), "--out", str(cache),
                    "--metrics", str(root / "prepare.json")], check=True, capture_output=True)
    basis = ExpressionBasis.load(cache / "expr_basis.npz")
    save_a2e(root / "a2e" / "audio2expr.pt", build_model(a2e_settings(profile), basis.n_expr).eval(), basis)
    rcfg = RendererConfig.from_dict(stage_config("renderer", profile))
    state = TrainState(TrainConfig(renderer=rcfg, profile=profile), ["synth_h00"], "cpu")
    state.save_checkpoint(root / "actor" / "checkpoint.pt")
    print(f"setup (corpus + prepare + models): {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return {"raw": raw, "overrides": {"a2e": str(root / "a2e" / "audio2expr.pt"), "basis": str(cache / "expr_basis.npz"),
                                      "cache_dir": str(root / "dub_cache")}}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of the synthetic clips")
    ap.add_argument("--size", type=int, default=256, help="frame side of the synthetic clips (px)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    with tempfile.TemporaryDirectory(prefix="bench_dub_") as tmp:
        root = Path(tmp)
        world = build(root, args.profile, args.seconds, args.size)
        runs = []
        for label in ("first (prepares)", "steady state"):
            result = dub(world["raw"] / "synth_h00.mp4", world["raw"] / "synth_p00.mp4", root / "actor", root / "out.mp4",
                         profile=args.profile, name="synth_h00", device=args.device, progress=False,
                         overrides=world["overrides"])
            runs.append((label, result))
    rcfg = RendererConfig.from_dict(stage_config("renderer", args.profile))
    print(f"\nprofile {args.profile}: {rcfg.resolution}px crops, T={rcfg.window}, {args.size}px frames, "
          f"{result.n_frames} output frames, {args.threads} threads, device {args.device}")
    print(f"{'run':<18}{'frames/s':>10}{'total s':>10}{'prepare s':>11}" + "".join(f"{s:>12}" for s in STAGES))
    report = {}
    for label, r in runs:
        t = r.timings
        fps = r.n_frames / t["total"]
        per_frame = {s: 1000 * t.get(s, 0.0) / r.n_frames for s in STAGES}
        print(f"{label:<18}{fps:>10.2f}{t['total']:>10.1f}{t.get('prepare', 0):>11.1f}"
              + "".join(f"{per_frame[s]:>9.1f} ms" for s in STAGES))
        report[label] = {"frames_per_s": fps, "total_s": t["total"], "prepare_s": t.get("prepare", 0.0),
                         "ms_per_frame": per_frame}
    steady = runs[-1][1].timings
    dubbing = sum(steady.get(s, 0.0) for s in STAGES)
    print(f"steady state without prepare/load: {runs[-1][1].n_frames / dubbing:.2f} frames/s")
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
