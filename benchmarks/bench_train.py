"""Training throughput of the renderer on this machine: steps/s, frames/s, MFU, memory, hotspots.

    .venv/bin/python benchmarks/bench_train.py [--profiles smoke default] [--steps 8] [--threads 2]
    python benchmarks/bench_train.py --profiles default full --batch 16 --amp --no-profile   # on a GPU
    .venv/bin/python benchmarks/bench_train.py --profiles default --variant base_channels=16,disc_base_channels=16

``--variant`` times the last profile again with renderer overrides in the same run (these machines
are noisy, so a speed-up is only ever read as a ratio to a baseline timed beside it).

For each profile: one full ``train_step`` (G fwd+bwd incl. textures, D fwd+bwd) on the in-memory
``SyntheticWindows`` data at that profile's sizes. FLOPs per step are counted with
``torch.utils.flop_counter`` (2 per multiply-add, forward + backward); the peak is a large fp32
matmul timed in the same run, so MFU = achieved FLOP/s / matmul FLOP/s. With ``--amp`` (CUDA only)
the step runs under bf16 autocast and the peak is a bf16 matmul. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from deadlib.core.config import ConfigError, resolve_device, stage_config
from deadlib.data.synthetic_windows import SyntheticWindows
from deadlib.model.renderer import RendererConfig, count_parameters
from deadlib.train.loop import TrainConfig, TrainState, iterate_batches, train_step

PRESETS = {  # RendererConfig docstring presets, used when params.yaml has no `renderer` section
    "smoke": dict(resolution=64, window=3, n_refs=1, texture_size=128, base_channels=16, max_channels=128,
                  style_dim=128, audio_channels=16, disc_base_channels=16, disc_max_channels=128),
    "default": {},
    "full": dict(resolution=256, window=5, n_refs=2, texture_size=512, base_channels=128, max_channels=512,
                 style_dim=512, audio_channels=64, disc_base_channels=128, disc_max_channels=512),
}


def renderer_config(profile: str, overrides: dict | None = None) -> RendererConfig:
    try:
        base = stage_config("renderer", profile)
    except ConfigError:
        base = dict(PRESETS[profile])
    return RendererConfig.from_dict({**base, **(overrides or {})})


def parse_variant(text: str) -> dict[str, int]:
    """'base_channels=16,disc_base_channels=16' → {'base_channels': 16, 'disc_base_channels': 16}."""
    try:
        return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise SystemExit(f"--variant takes key=int pairs separated by commas, got {text!r}") from None


def matmul_peak(device: torch.device, n: int = 2048, reps: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of an n×n matmul in ``dtype`` (best of ``reps``)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def bench(profile: str, batch: int, steps: int, device: torch.device, profile_table: bool, amp: bool = False,
          overrides: dict | None = None) -> dict:
    rcfg = renderer_config(profile, overrides)
    cfg = TrainConfig(renderer=rcfg, batch_size=batch, device=str(device), profile=profile)
    cfg.loss.lambda_vgg, cfg.loss.adv_start_step, cfg.loss.amp = 0.0, 0, amp     # G + D every step
    data = SyntheticWindows(("a", "b"), n_frames=batch * 2 + rcfg.window, size=rcfg.resolution,
                            window=rcfg.window, n_refs=rcfg.n_refs)
    torch.manual_seed(0)
    state = TrainState(cfg, data.names, device)
    batches = iterate_batches(data, cfg)
    fixed = next(batches)
    for _ in range(2):                                                          # warm-up
        train_step(state, fixed, cfg.loss)
    with FlopCounterMode(display=False) as counter:
        train_step(state, fixed, cfg.loss)
    flops_step = counter.get_total_flops()
    times = []
    for _ in range(steps):
        b = next(batches)
        t = time.perf_counter()
        train_step(state, b, cfg.loss)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    table = None
    if profile_table:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(2):
                train_step(state, fixed, cfg.loss)
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)
    label = profile + "".join(f" {k}={v}" for k, v in (overrides or {}).items())
    return {"profile": label, "resolution": rcfg.resolution, "window": rcfg.window, "batch": batch,
            "params_g": count_parameters(state.renderer), "params_d": count_parameters(state.disc),
            "step_s": median, "steps_per_s": 1 / median, "frames_per_s": batch * rcfg.window / median,
            "gflop_step": flops_step / 1e9, "gflops": flops_step / median / 1e9, "table": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=["smoke", "default"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-profile", action="store_true", help="skip the torch.profiler tables")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA); MFU against a bf16 matmul")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=INT,...",
                    help="also time the last profile with these renderer overrides (repeatable)")
    ap.add_argument("--matmul-n", type=int, default=2048, help="side of the peak-measuring matmul (8192 on a GPU)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = args.amp and device.type == "cuda"
    dtype = torch.bfloat16 if amp else torch.float32
    peak = matmul_peak(device, args.matmul_n, dtype=dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), torch threads {torch.get_num_threads()}, amp {amp}, "
          f"{str(dtype).split('.')[-1]} matmul peak {peak / 1e9:.1f} GFLOP/s")
    rows = []
    runs = [(p, None) for p in args.profiles] + [(args.profiles[-1], parse_variant(v)) for v in args.variant]
    for profile, overrides in runs:
        r = bench(profile, args.batch, args.steps, device, not args.no_profile, amp, overrides)
        rows.append(r)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\n== {r['profile']}: {r['resolution']}px T={r['window']} batch {r['batch']}  "
              f"G {r['params_g'] / 1e6:.2f}M  D {r['params_d'] / 1e6:.2f}M params")
        print(f"   {r['step_s']:.3f} s/step  {r['steps_per_s']:.2f} steps/s  {r['frames_per_s']:.1f} frames/s")
        print(f"   {r['gflop_step']:.2f} GFLOP/step → {r['gflops']:.1f} GFLOP/s = MFU {r['gflops'] * 1e9 / peak:.1%}")
        print(f"   peak RSS so far {rss:.0f} MiB"
              + (f", CUDA peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""))
        if r["table"]:
            print(r["table"])
    if len(rows) > 1:
        base = rows[0]
        for r in rows[1:]:
            print(f"{r['profile']} / {base['profile']}: {r['step_s'] / base['step_s']:.1f}x time per step, "
                  f"{r['gflop_step'] / base['gflop_step']:.1f}x FLOPs per step")


if __name__ == "__main__":
    main()
