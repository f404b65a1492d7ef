"""End-to-end throughput of the prepare stage (frames/s) with a per-step breakdown.

    .venv/bin/python benchmarks/bench_prepare.py                      # ../shared/clips, else synthetic
    .venv/bin/python benchmarks/bench_prepare.py --raw data/raw/synthetic --workers 1 2
    .venv/bin/python benchmarks/bench_prepare.py --workers 2 --engines bbox pytorch3d   # the rasterisers

Runs ``deadlib.data.prepare.prepare_corpus`` at the default resolution (128) for each worker count
and prints a table: wall-clock frames/s end to end, and per step (decode, track, fit, crop,
rasterise, mel, write, checks) the seconds spent summed over videos (in the worker processes)
and that step's own frames/s, plus frames per CPU-second (robust to other processes sharing the
cores). ``rasterise`` includes writing ``raster.npz``, which streams to disk while it is rasterised
(``deadlib.data.raster_store``); ``write`` is the other cache files. No timed assertions: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

STEPS = ("decode", "track", "fit", "crop", "rasterise", "mel", "write", "checks")
SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "clips"


def corpus(raw: str | None, scratch: Path) -> Path:
    """The folder to benchmark: --raw, else the real clips, else a small synthetic corpus."""
    if raw:
        return Path(raw)
    if SHARED_CLIPS.is_dir() and any(SHARED_CLIPS.glob("*.mp4")):
        return SHARED_CLIPS
    from deadlib.synth.generate import SynthSettings, generate_corpus

    print("no real clips found: rendering a synthetic corpus (3 × 8 s, 256 px) ...")
    generate_corpus(scratch / "raw", SynthSettings(n_prior=2, n_heldout=1, duration_s=8, size=256, workers=2))
    return scratch / "raw"


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run(raw: Path, out: Path, resolution: int, workers: int, engine: str) -> tuple[float, float, dict]:
    """Prepare ``raw`` once; (wall seconds, CPU seconds, summary with per-video reports)."""
    from deadlib.core.config import settings_with
    from deadlib.data.prepare import prepare_corpus

    shutil.rmtree(out, ignore_errors=True)
    cfg = settings_with("prepare", "default", {"resolution": resolution, "workers": workers, "test_seconds": 2,
                                                   "raster": {"engine": engine}},
                        Path(__file__).resolve().parents[1] / "params.yaml")
    start, cpu = time.perf_counter(), cpu_seconds()
    summary = prepare_corpus(cfg, raw, out, n_heldout=1)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    summary["reports"] = {n: {**json.loads((out / n / "report.json").read_text()), "timings": summary["timings"][n]}
                          for n in summary["ok"]}
    return wall, cpu, summary


def table(wall: float, cpu: float, summary: dict, workers: int, engine: str) -> str:
    frames = sum(r["frames"] for r in summary["reports"].values())
    steps = {s: sum(r["timings"].get(s, 0.0) for r in summary["reports"].values()) for s in STEPS}
    busy = sum(steps.values())
    lines = [f"workers={workers}, raster engine {engine}: {len(summary['reports'])} videos, {frames} frames, {wall:.1f} s wall "
             f"→ {frames / wall:.1f} frames/s end to end (summed step time {busy:.1f} s, "
             f"{frames / busy:.1f} frames/s per process); {cpu:.1f} CPU-s → {frames / cpu:.1f} frames per "
             f"CPU-second (the rate one uncontended core would give)",
             f"  {'step':<10}{'seconds':>9}{'share':>8}{'frames/s':>10}"]
    for step, sec in steps.items():
        lines.append(f"  {step:<10}{sec:>9.2f}{sec / busy:>8.1%}{frames / max(sec, 1e-9):>10.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", default=None, help="folder of videos (default: ../shared/clips or synthetic)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engines", nargs="+", default=["bbox"],
                        help="rasterisers (prepare.raster.engine: bbox, pytorch3d), each timed in the same run")
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        raw = corpus(args.raw, Path(tmp))
        print(f"corpus: {raw}  resolution: {args.resolution}")
        rates = {}
        for engine in args.engines:
            for workers in args.workers:
                wall, cpu, summary = run(raw, Path(tmp) / f"out{workers}_{engine}", args.resolution, workers, engine)
                print(table(wall, cpu, summary, workers, engine))
                rates[engine, workers] = sum(r["frames"] for r in summary["reports"].values()) / wall
        for workers in args.workers:
            if len(args.engines) > 1:
                first, other = args.engines[0], args.engines[1]
                print(f"workers={workers}: {first} / {other} = {rates[first, workers] / rates[other, workers]:.2f}x "
                      "frames/s end to end (same run)")


if __name__ == "__main__":
    main()
