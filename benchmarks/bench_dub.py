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

``--engines bbox pytorch3d`` dubs once per rasteriser (prepare.raster.engine, set in a copy of
params.yaml; each prepares its own cache first), so the engines are compared in the same run; the
first engine listed is the one the floor and the goal ratios are read on.

``--render-dtypes float32 bfloat16`` dubs once per renderer precision (``dub.render_dtype``) as well,
and prints the PSNR of each output video against the first one's; ``--upscales linear lanczos`` the same
for how the render is enlarged before the paste (``dub.blend.upscale``). Always printed: the **renderer
forward** alone on the profile's batch of random inputs, in the training form (StyleGAN2's fused
grouped convolution), the inference form the dub uses (deadlib.model.inference) and that form in
bfloat16 — ms per frame, the ratio to the training form, and the PSNR of each output against it.

Same-run baselines (issue 18, goal 2): the **I/O floor** — decoding the same video and encoding the
same number of frames with the dub's encoder settings and audio, nothing in between — timed right
after the dub; the dub's steady-state frames/s is printed as a ratio to it and to the 50 frames/s
goal.

``--memory-seconds 20 60`` (goal 5): the held-out clip looped to each length and scaled/padded to a
``--memory-height`` (default 1080) 16:9 frame, then dubbed from scratch (prepare included) by the
``dub`` CLI in a fresh process each; prints each run's peak RSS (the kernel's maximum resident set,
which also counts file pages the process has mapped or dirtied) and its peak anonymous RSS
(sampled: the memory only the process can free), both also per step (prepare's tracking phase, its
fit + rasterise phase, audio2expr, render — which step holds the peak), and the growth of both per
minute of video, extrapolated to 10 minutes against the 2 GiB goal. The clip's own sound is the new audio; its AAC
track rounds to a frame longer than the video, so the last frame is shown twice (a one-frame
ping-pong loop, the case that used to keep the whole decoded video).
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

import numpy as np
import torch
import yaml

from deadlib.audio2expr.stage import a2e_settings, build_model, save_a2e
from deadlib.core.config import load_params, stage_config
from deadlib.data.face3d import RASTER_ENGINES, ExpressionBasis
from deadlib.data.video import FPS, SAMPLE_RATE, iter_frames, read_audio, write_video
from deadlib.dub.dubbing import dub
from deadlib.dub.render import UPSCALE_KERNELS
from deadlib.model.inference import RENDER_DTYPES
from deadlib.model.renderer import RendererConfig
from deadlib.synth.generate import SynthSettings, generate_corpus
from deadlib.tools.machine import describe
from deadlib.train.checkpoint import TrainConfig, TrainState

REPO = Path(__file__).resolve().parents[1]
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


def engine_params(root: Path, engine: str) -> Path:
    """A copy of params.yaml whose prepare.raster.engine is ``engine``."""
    params = load_params(REPO / "params.yaml")
    params["prepare"]["raster"]["engine"] = engine
    path = root / f"params_{engine}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def render_forward(profile: str, batch: int, reps: int = 6) -> dict:
    """ms per output frame of the renderer forward: training form, inference form (float32, bfloat16)."""
    from deadlib.model.inference import freeze_for_inference, render_precision
    from deadlib.model.renderer import Renderer, dummy_inputs

    torch.manual_seed(0)
    cfg = RendererConfig.from_dict(stage_config("renderer", profile))
    trained = Renderer(cfg).eval()
    with torch.no_grad():   # styles away from their initial 1 and non-zero biases, as after training
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    frozen, inputs = freeze_for_inference(trained), dummy_inputs(cfg, batch)
    forms = {"training form (grouped)": (trained, "float32"), "inference form, float32": (frozen, "float32"),
             "inference form, bfloat16": (frozen, "bfloat16")}
    rows, reference = {}, None
    for label, (model, dtype) in forms.items():
        with torch.inference_mode(), render_precision(dtype, "cpu"):
            out = model(*inputs)                                  # warm-up (oneDNN primitive creation)
            t = time.perf_counter()
            for _ in range(reps):
                out = model(*inputs)
            ms = 1000 * (time.perf_counter() - t) / reps / (batch * cfg.window)
        out = out.float()
        reference = out if reference is None else reference
        mse = float((out - reference).pow(2).mean())
        rows[label] = {"ms_per_frame": ms, "psnr_vs_training_form": None if mse == 0 else 10 * np.log10(4 / mse)}
    return rows


def video_psnr(a: Path, b: Path) -> float:
    """PSNR (dB) of video ``b`` against ``a`` over all their frames."""
    sq, count = 0.0, 0
    for fa, fb in zip(iter_frames(a, fps=FPS), iter_frames(b, fps=FPS)):
        sq += float(((fa.astype(np.float64) - fb) ** 2).sum())
        count += fa.size
    return float("inf") if sq == 0 else 10 * np.log10(255 ** 2 * count / sq)


def io_floor(video: Path, audio: Path, n_frames: int, out: Path, profile: str) -> float:
    """Seconds to decode ``n_frames`` of ``video`` and encode them with ``audio`` as the dub does."""
    dub_cfg = stage_config("dub", profile)
    sound = read_audio(audio, SAMPLE_RATE)
    t = time.perf_counter()
    write_video(out, iter_frames(video, fps=FPS, max_frames=n_frames), FPS, audio=sound, sample_rate=SAMPLE_RATE,
                crf=int(dub_cfg["crf"]), preset=dub_cfg["preset"], lookahead=dub_cfg["lookahead"])
    return time.perf_counter() - t


# Runs the dub CLI in this (fresh) process and reports its peak RSS and that of its children, plus the
# peak resident and anonymous memory of each step (sampled every 20 ms by a thread of the process itself;
# the steps are dub()'s on_progress stages, with prepare split into its two phases).
MEMORY_CHILD = """
import json, resource, sys, threading, time
import deadlib.data.prepare as prepare
import deadlib.dub.dubbing as dubbing
step, peaks, done = ["start"], {}, threading.Event()

def status():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon")}

def sample():
    while not done.is_set():
        now, peak = status(), peaks.setdefault(step[0], {"VmRSS": 0, "RssAnon": 0})
        for k, v in now.items():
            peak[k] = max(peak[k], v)
        time.sleep(0.02)

def labelled(name, fn):
    def run(*a, **k):
        step[0] = name
        return fn(*a, **k)
    return run

prepare.analyse_video = labelled("prepare: track", prepare.analyse_video)
prepare.finish_video = labelled("prepare: fit + rasterise", prepare.finish_video)
plain = dubbing.dub
dubbing.dub = lambda *a, **k: plain(*a, on_progress=lambda name, i, n: step.__setitem__(0, name), **k)
threading.Thread(target=sample, daemon=True).start()
rc = dubbing.main(sys.argv[1:])
done.set()
usage = {who: resource.getrusage(getattr(resource, who)).ru_maxrss for who in ("RUSAGE_SELF", "RUSAGE_CHILDREN")}
print("MAXRSS_KIB " + json.dumps({"rc": rc, **usage, "steps": peaks}))
sys.exit(rc)
"""

def long_clip(source: Path, out: Path, seconds: float, height: int) -> None:
    """``source`` looped to ``seconds`` (frames and sound), scaled to ``height`` and padded to 16:9 (streamed)."""
    import cv2

    frames = list(iter_frames(source, fps=FPS))  # the short clip only
    sound = read_audio(source, SAMPLE_RATE)
    n = int(round(seconds * FPS))
    width = (height * 16 // 9) // 2 * 2

    def framed(k: int) -> np.ndarray:
        face = frames[k % len(frames)]
        face = cv2.resize(face, ((face.shape[1] * height // face.shape[0]) // 2 * 2, height), interpolation=cv2.INTER_CUBIC)
        canvas = np.zeros((height, width, 3), np.uint8)
        left = (width - face.shape[1]) // 2
        canvas[:, left:left + face.shape[1]] = face
        return canvas

    audio = np.resize(sound, int(round(seconds * SAMPLE_RATE)))  # tiled
    write_video(out, (framed(k) for k in range(n)), FPS, audio=audio, sample_rate=SAMPLE_RATE, preset="veryfast")


def memory_runs(root: Path, world: dict, profile: str, seconds: list[float], height: int, threads: int) -> list[dict]:
    """Peak RSS of dubbing the held-out clip looped to each length at a ``height`` p 16:9 frame."""
    rows, overrides = [], world["overrides"]
    for length in seconds:
        video = root / f"long_{length:g}s.mp4"
        long_clip(world["raw"] / "synth_h00.mp4", video, length, height)
        cmd = [sys.executable, "-c", MEMORY_CHILD, "--video", str(video), "--audio", str(video),
               "--identity", str(root / "actor"), "--out", str(root / f"long_{length:g}s_dub.mp4"), "--profile", profile,
               "--name", "synth_h00", "--a2e", overrides["a2e"], "--basis", overrides["basis"],
               "--cache-dir", str(root / f"long_cache_{length:g}"), "--threads", str(threads), "--device", "cpu"]
        t = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in run.stdout.splitlines() if x.startswith("MAXRSS_KIB ")]
        if run.returncode or not line:   # the dub CLI returns 2 on bad input: no memory figure then
            raise RuntimeError(f"dub of the {length:g} s clip failed (exit {run.returncode}): {run.stderr[-2000:]}")
        usage = json.loads(line[-1].split(" ", 1)[1])
        steps = {name: {"rss_mib": p["VmRSS"] / 1024, "anon_mib": p["RssAnon"] / 1024} for name, p in usage["steps"].items()}
        rows.append({"seconds": length, "wall_s": time.perf_counter() - t, "peak_rss_mib": usage["RUSAGE_SELF"] / 1024,
                     "peak_anon_rss_mib": max(p["anon_mib"] for p in steps.values()),
                     "children_peak_rss_mib": usage["RUSAGE_CHILDREN"] / 1024, "steps": steps})
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of the synthetic clips")
    ap.add_argument("--size", type=int, default=256, help="frame side of the synthetic clips (px)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--engines", nargs="+", default=["bbox"], choices=RASTER_ENGINES,
                    help="rasterisers to dub with, in the same run (prepare.raster.engine)")
    ap.add_argument("--render-dtypes", nargs="+", default=["float32"], choices=RENDER_DTYPES,
                    help="renderer precisions to dub with, in the same run (dub.render_dtype)")
    ap.add_argument("--upscales", nargs="+", default=None, choices=list(UPSCALE_KERNELS),
                    help="how the render is enlarged before the paste, in the same run (dub.blend.upscale; "
                         "default: params.yaml's)")
    ap.add_argument("--memory-seconds", type=float, nargs="*", default=[],
                    help="also dub the clip looped to these lengths (s) at --memory-height and report peak RSS")
    ap.add_argument("--memory-height", type=int, default=1080)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    with tempfile.TemporaryDirectory(prefix="bench_dub_") as tmp:
        root = Path(tmp)
        world = build(root, args.profile, args.seconds, args.size)
        runs, outputs = [], {}
        upscales = args.upscales or [stage_config("dub", args.profile)["blend"]["upscale"]]
        variants = [(e, d, u) for e in args.engines for d in args.render_dtypes for u in upscales]
        for engine, dtype, upscale in variants:
            params = engine_params(root, engine)
            tag = ", ".join(([engine] if len(args.engines) > 1 else []) + ([dtype] if len(args.render_dtypes) > 1 else [])
                            + ([f"upscale {upscale}"] if len(upscales) > 1 else []))
            out = root / f"out_{engine}_{dtype}_{upscale}.mp4"
            for label in ("first (prepares)", "steady state"):
                result = dub(world["raw"] / "synth_h00.mp4", world["raw"] / "synth_p00.mp4", root / "actor",
                             out, profile=args.profile, params_path=params, name="synth_h00",
                             device=args.device, progress=False, overrides={**world["overrides"], "render_dtype": dtype,
                                                                         "blend": {"upscale": upscale}})
                runs.append((f"{label}, {tag}" if tag else label, result))
            outputs[tag or "dub"] = out
        first_out = next(iter(outputs.values()))
        output_psnr = {tag: video_psnr(first_out, path) for tag, path in list(outputs.items())[1:]}
        forward = render_forward(args.profile, int(stage_config("dub", args.profile)["batch"]))
        floor_s = io_floor(world["raw"] / "synth_h00.mp4", world["raw"] / "synth_p00.mp4", result.n_frames,
                           root / "floor.mp4", args.profile)
        memory = memory_runs(root, world, args.profile, args.memory_seconds, args.memory_height, args.threads)
    rcfg = RendererConfig.from_dict(stage_config("renderer", args.profile))
    print(f"\nmachine: {describe()}")
    print(f"profile {args.profile}: {rcfg.resolution}px crops, T={rcfg.window}, {args.size}px frames, "
          f"{result.n_frames} output frames, {args.threads} threads, device {args.device}")
    print(f"{'run':<28}{'frames/s':>10}{'total s':>10}{'prepare s':>11}" + "".join(f"{s:>12}" for s in STAGES))
    report = {}
    for label, r in runs:
        t = r.timings
        fps = r.n_frames / t["total"]
        per_frame = {s: 1000 * t.get(s, 0.0) / r.n_frames for s in STAGES}
        print(f"{label:<28}{fps:>10.2f}{t['total']:>10.1f}{t.get('prepare', 0):>11.1f}"
              + "".join(f"{per_frame[s]:>9.1f} ms" for s in STAGES))
        report[label] = {"frames_per_s": fps, "total_s": t["total"], "prepare_s": t.get("prepare", 0.0),
                         "ms_per_frame": per_frame}
    steady_label, steady_result = runs[1]   # the first engine's steady state
    dubbing = sum(steady_result.timings.get(s, 0.0) for s in STAGES)
    print(f"{steady_label} without prepare/load: {steady_result.n_frames / dubbing:.2f} frames/s")
    for other_label, _ in runs[3::2]:
        print(f"{steady_label} / {other_label}: {report[steady_label]['frames_per_s'] / report[other_label]['frames_per_s']:.2f}x "
              "frames/s (same run)")
    for tag, value in output_psnr.items():
        print(f"output video {tag} vs {next(iter(outputs))}: PSNR {value:.2f} dB over all frames")
    report["output_psnr_db"] = output_psnr
    base_ms = next(iter(forward.values()))["ms_per_frame"]
    print(f"\nrenderer forward alone (batch {stage_config('dub', args.profile)['batch']} windows, random inputs, same run):")
    for label, row in forward.items():
        psnr = "identical" if row["psnr_vs_training_form"] is None else f"PSNR {row['psnr_vs_training_form']:.1f} dB"
        print(f"  {label:<28}{row['ms_per_frame']:8.2f} ms/frame  {base_ms / row['ms_per_frame']:5.2f}x the training form  "
              f"output vs training form: {psnr}")
    report["render_forward"] = forward
    floor_fps, steady_fps = result.n_frames / floor_s, report[steady_label]["frames_per_s"]
    print(f"I/O floor (decode + encode of the same {result.n_frames} frames, same run): {floor_fps:.1f} frames/s; "
          f"dub steady state / I/O floor = {steady_fps / floor_fps:.3f}; vs the 50 frames/s goal: {steady_fps / 50:.2f}x")
    report["io_floor"] = {"frames_per_s": floor_fps, "dub_ratio": steady_fps / floor_fps, "goal_ratio": steady_fps / 50}
    if memory:
        print(f"\npeak RSS dubbing a {args.memory_height}p 16:9 clip from scratch (prepare + dub, fresh process):")
        for row in memory:
            print(f"  {row['seconds']:>6.0f} s: peak RSS {row['peak_rss_mib']:8.0f} MiB, of it anonymous (sampled every 20 ms) "
                  f"{row['peak_anon_rss_mib']:6.0f} MiB (children {row['children_peak_rss_mib']:.0f} MiB), {row['wall_s']:.0f} s wall")
            print("        per step, peak resident / anonymous MiB: " + "; ".join(
                f"{name} {p['rss_mib']:.0f} / {p['anon_mib']:.0f}" for name, p in row["steps"].items()))
            if row["seconds"] >= 600:                # goal 5 measured, not extrapolated
                print(f"  measured at {row['seconds'] / 60:g} min of video: peak RSS {row['peak_rss_mib']:.0f} MiB "
                      f"(goal 2048 MiB: {row['peak_rss_mib'] / 2048:.2f}x), peak anonymous RSS "
                      f"{row['peak_anon_rss_mib']:.0f} MiB ({row['peak_anon_rss_mib'] / 2048:.2f}x)")
        if len(memory) > 1:
            a, b = memory[0], memory[-1]
            for key, what in (("peak_rss_mib", "peak RSS"), ("peak_anon_rss_mib", "peak anonymous RSS")):
                slope = (b[key] - a[key]) / ((b["seconds"] - a["seconds"]) / 60)
                ten = b[key] + slope * (600 - b["seconds"]) / 60
                print(f"  {what}: growth {slope:.0f} MiB per minute of video; linear extrapolation to 10 min: {ten:.0f} MiB "
                      f"(goal 2048 MiB: {ten / 2048:.2f}x)")
        report["memory"] = memory
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
