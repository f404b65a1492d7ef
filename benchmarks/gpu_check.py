"""A short training run of one profile on whatever device ``auto`` picks (made for a lent GPU).

    python benchmarks/gpu_check.py --profile full --steps 200 [--amp]

Trains the renderer (G + D every step after ``--adv-start``) on in-memory ``SyntheticWindows`` at
the profile's renderer sizes, printing the L1 loss every 20 steps, the time per step, peak memory
and whether every loss stayed finite — evidence that the profile's shapes and mixed precision run
on that device, without the prepared corpus or DVCLive. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from bench_train import renderer_config

from deadlib.core.config import resolve_device
from deadlib.data.synthetic_windows import SyntheticWindows
from deadlib.train.loop import TrainConfig, TrainState, iterate_batches, train_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--adv-start", type=int, default=100)
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    rcfg = renderer_config(args.profile)
    cfg = TrainConfig(renderer=rcfg, batch_size=args.batch, device=str(device), profile=args.profile, lr_g=1e-3)
    cfg.loss.lambda_vgg, cfg.loss.adv_start_step, cfg.loss.amp = 0.0, args.adv_start, args.amp
    data = SyntheticWindows(("a", "b", "c", "d"), n_frames=40, size=rcfg.resolution, window=rcfg.window,
                            n_refs=rcfg.n_refs)
    torch.manual_seed(0)
    state = TrainState(cfg, data.names, device)
    batches = iterate_batches(data, cfg)
    finite, l1, t0 = True, [], time.perf_counter()
    for step in range(1, args.steps + 1):
        losses = train_step(state, next(batches), cfg.loss)
        l1.append(float(losses["l1"]))
        finite &= all(math.isfinite(float(v)) for v in losses.values())
        if step % 20 == 0:
            if device.type == "cuda":
                torch.cuda.synchronize()
            print(f"step {step:4d}  l1 {sum(l1[-20:]) / 20:.4f}  {(time.perf_counter() - t0) / step:.3f} s/step",
                  flush=True)
    mem = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else "n/a"
    print(f"{args.profile} on {device} amp={args.amp}: {args.steps} steps, batch {args.batch}, "
          f"{rcfg.resolution}px T={rcfg.window}; all losses finite: {finite}; l1 {l1[0]:.4f} → "
          f"{sum(l1[-20:]) / min(20, len(l1)):.4f}; peak CUDA memory {mem}")


if __name__ == "__main__":
    main()
