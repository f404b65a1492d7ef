"""Data-parallel training throughput: 1 vs N processes (torchrun; gloo on CPU, nccl on GPUs).

    .venv/bin/python benchmarks/bench_ddp.py [--profiles smoke default] [--batch 4] [--steps 6]
                                             [--runs 1x1 1x2 2x1] [--weak]

Each run ``PxT`` launches P processes with T torch threads each (``python -m torch.distributed.run
--standalone``) that time ``train_step`` (G + textures + D, GAN on, VGG off) on the in-memory
``SyntheticWindows`` at the profile's renderer sizes. Strong scaling by default: the GLOBAL batch
stays ``--batch`` (B/P per process, the same optimisation as one process); ``--weak`` gives every
process ``--batch``. Rank 0 reports the median step time (steps end in collectives, so ranks are
in step). Speed-up is samples/s relative to the profile's first run (``1x1``); efficiency =
speed-up / (P x T), i.e. per core used (for ``2x1`` the usual DDP scaling efficiency). Prints a
table, never asserts. On GPUs use e.g. ``--runs 1x1 8x1``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import renderer_config  # noqa: E402

from deadlib.data.synthetic_windows import SyntheticWindows  # noqa: E402
from deadlib.train.distributed import (  # noqa: E402
    barrier,
    init_distributed,
    make_data_parallel,
    shutdown_distributed,
)
from deadlib.train.loop import (  # noqa: E402
    TrainConfig,
    TrainState,
    iterate_batches,
    train_step,
)

REPO = Path(__file__).resolve().parents[1]
MARK = "BENCH_DDP "


def worker(profile: str, batch: int, steps: int, threads: int, device: str) -> None:
    """One rank: warm up, then time ``steps`` training steps; rank 0 prints a JSON line."""
    torch.set_num_threads(threads)
    ctx = init_distributed(device=device)
    try:
        rcfg = renderer_config(profile)
        cfg = TrainConfig(renderer=rcfg, batch_size=batch, device=str(ctx.device), profile=profile)
        cfg.loss.lambda_vgg, cfg.loss.adv_start_step = 0.0, 0
        data = SyntheticWindows(("a", "b", "c", "d"), n_frames=batch + rcfg.window, size=rcfg.resolution,
                                window=rcfg.window, n_refs=rcfg.n_refs)
        torch.manual_seed(0)
        state = make_data_parallel(TrainState(cfg, data.names, ctx.device), ctx)
        batches = iterate_batches(data, cfg, 0, ctx.rank, ctx.world_size)
        for _ in range(2):                                                      # warm-up (DDP buckets, allocator)
            train_step(state, next(batches), cfg.loss)
        times = []
        for _ in range(steps):
            b = next(batches)
            barrier()
            t = time.perf_counter()
            train_step(state, b, cfg.loss)
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        if ctx.is_main:
            times.sort()
            print(MARK + json.dumps({"step_s": times[len(times) // 2], "world": ctx.world_size,
                                     "backend": ctx.backend or "none", "device": str(ctx.device)}), flush=True)
    finally:
        shutdown_distributed()


def launch(profile: str, procs: int, threads: int, batch: int, steps: int, device: str) -> dict:
    """Run the worker under torchrun with ``procs`` processes; returns rank 0's report."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc_per_node", str(procs), __file__, "--worker", "--profiles", profile, "--batch", str(batch),
           "--steps", str(steps), "--threads", str(threads), "--device", device]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [l for l in run.stdout.splitlines() if l.startswith(MARK)]
    if run.returncode or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=["smoke", "default"])
    ap.add_argument("--batch", type=int, default=4, help="global batch (per process with --weak)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--runs", nargs="+", default=["1x1", "1x2", "2x1"], help="PROCSxTHREADS per run")
    ap.add_argument("--weak", action="store_true", help="batch per process instead of global batch")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.profiles[0], args.batch, args.steps, args.threads, args.device)
    print(f"{'profile':8s} {'run':>5s} {'procs':>5s} {'thr/p':>5s} {'batch':>5s} {'s/step':>7s} {'steps/s':>8s} "
          f"{'samples/s':>10s} {'speed-up':>8s} {'eff.':>6s}  device")
    for profile in args.profiles:
        base = None
        for run in args.runs:
            procs, threads = (int(x) for x in run.split("x"))
            batch = args.batch * procs if args.weak else args.batch
            r = launch(profile, procs, threads, batch, args.steps, args.device)
            samples = batch / r["step_s"]
            base = base or samples
            speed = samples / base
            print(f"{profile:8s} {run:>5s} {procs:5d} {threads:5d} {batch:5d} {r['step_s']:7.3f} "
                  f"{1 / r['step_s']:8.2f} {samples:10.2f} {speed:8.2f} {speed / (procs * threads):6.0%}  "
                  f"{r['device']} ({r['backend']})", flush=True)


if __name__ == "__main__":
    main()
