"""A new person, end to end (issue 18, goal 3), and the same person once adapted (issue 17).

    .venv/bin/python benchmarks/bench_new_person.py [--models realdata|synthetic] [--seconds 10] [--stand-in-a2e] \
        [--adapt-steps N] [--texture-init random|mean] [--train-dtype bfloat16]

Takes the first ``--seconds`` of a talking-head clip (default ``../shared/clips/styletalk_Obama_long50s.mp4``,
256 px; without ``../shared``: the synthetic held-out identity ``data/raw/synth_h00.mp4``) and dubs it
with ``--seconds`` of speech the clip does not contain (default: the same clip's sound from 30 s on, a
later sentence of the same speaker; synthetic: ``synth_h01``'s sound), three times, each timed:

1. **new person** — ``dub --identity adapt-now`` in an empty dub cache: prepare, adapt-now on the
   first ``--adapt-frames`` (100) frames with the profile's ``dub.adapt.steps``, the style layer,
   audio-to-expression, render, encode. Goal: ≤ 120 s on 2 cores.
2. **already adapted, studio** — the studio's Dub button (``deadlib.studio.Studio``, headless) on the
   same inputs: the preparation and the adaptation come from the dub cache. Issue 17: "a 10 s clip
   whose identity is already adapted dubs in well under a minute".
3. **already adapted, dub()** — the same call without the studio: the same-run baseline of 2.

Prints each run's wall time and per-step breakdown, run 1 against the 120 s goal and against run 3
(what a new person costs over a known one), and run 2 / run 3 (the studio's own overhead). The
models are those of the dub stage (``--models synthetic``: ``models/prior``, ``models/audio2expr``)
or of the real pipeline (``realdata``: ``real/models/...``), as ``params.yaml``'s
``reenact.model_sets`` names them; both must have been produced by ``dvc repro`` first. Quality of
adapt-now on held-out frames is measured by the real pipeline's ``reenact`` stage, not here. Prints,
never asserts; writes ``benchmarks/results/cpu<N>_bench_new_person_<models>.txt`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from deadlib.core.config import load_params
from deadlib.data.video import (
    FPS,
    SAMPLE_RATE,
    read_audio,
    read_video,
    write_audio,
    write_video,
)
from deadlib.dub.dubbing import ADAPT_NOW, dub, dub_settings
from deadlib.model.inference import RENDER_DTYPES
from deadlib.model.texture import TEXTURE_INITS
from deadlib.tools.machine import describe, save_result

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIP = REPO.parent / "shared" / "clips" / "styletalk_Obama_long50s.mp4"
GOAL_S = 120.0  # issue 18 goal 3: a new person in under two minutes on 2 cores
STEPS = ("check", "prepare", "adapt", "load", "audio2expr", "rasterise", "render", "blend", "decode", "encode")


def cut_inputs(root: Path, seconds: float, video: Path | None, speech: Path | None, speech_from: float) -> tuple[Path, Path]:
    """The clip's first ``seconds`` (video + its sound) and ``seconds`` of new speech, written under ``root``."""
    synthetic = REPO / "data" / "raw"
    if video is None:
        video = SHARED_CLIP if SHARED_CLIP.is_file() else synthetic / "synth_h00.mp4"
        if speech is None and video != SHARED_CLIP:
            speech, speech_from = synthetic / "synth_h01.mp4", 0.0
    if not video.is_file():
        raise SystemExit(f"no clip at {video}: pass --video, or generate the corpus (python -m deadlib.synth.corpus ensure)")
    speech = speech or video
    n = int(round(seconds * FPS))
    frames, _ = read_video(video, max_frames=n)
    own = read_audio(video, SAMPLE_RATE)[: round(seconds * SAMPLE_RATE)]
    new = read_audio(speech, SAMPLE_RATE)[round(speech_from * SAMPLE_RATE):][: round(seconds * SAMPLE_RATE)]
    if len(frames) < n or len(new) < round(seconds * SAMPLE_RATE) - SAMPLE_RATE // FPS:
        raise SystemExit(f"{video} / {speech} are shorter than {seconds} s (+ {speech_from} s offset of the speech)")
    clip, voice = root / "clip.mp4", root / "new_speech.wav"
    write_video(clip, frames, FPS, audio=own, sample_rate=SAMPLE_RATE)
    write_audio(voice, new, SAMPLE_RATE)
    print(f"clip: first {seconds:g} s of {video} ({frames.shape[2]}x{frames.shape[1]} px, {len(frames)} frames); "
          f"new speech: {speech} from {speech_from:g} s", file=sys.stderr)
    return clip, voice


def stand_in_a2e(root: Path, basis_path: Path, profile: str) -> str:
    """An UNTRAINED audio-to-expression model of the profile's size on ``basis_path`` (timing only: the
    weights do not change the cost; the dub's mouth is then meaningless)."""
    from deadlib.audio2expr.stage import a2e_settings, build_model, save_a2e
    from deadlib.data.face3d import ExpressionBasis

    basis = ExpressionBasis.load(basis_path)
    path = root / "stand_in_a2e" / "audio2expr.pt"
    save_a2e(path, build_model(a2e_settings(profile), basis.n_expr).eval(), basis)
    print("!!! timing with an UNTRAINED stand-in audio-to-expression model (--stand-in-a2e)", file=sys.stderr)
    return str(path)


def studio_dub(clip: Path, voice: Path, out: Path, profile: str, overrides: dict) -> tuple[float, dict]:
    """The studio's Dub button on ``clip`` + ``voice`` (identity: adapt-now, served by the dub cache)."""
    from deadlib.studio import Studio

    studio = Studio(profile=profile, roots=[clip.parent], models_root=out.parent / "no_models", out_dir=out.parent,
                    overrides=overrides)
    studio.video_path.value, studio.audio_path.value = str(clip), str(voice)
    studio.identity.value, studio.adapt_frames.value, studio.out.value = ADAPT_NOW, overrides["adapt"]["frames"], str(out)
    t = time.perf_counter()
    if not studio.start_dub() or not studio.wait(3600) or studio.result is None:
        raise RuntimeError(f"studio dub failed: {studio.message.value} {studio.last_traceback}")
    return time.perf_counter() - t, studio.result.timings


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", choices=("realdata", "synthetic"), default="realdata")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--adapt-frames", type=int, default=100)
    ap.add_argument("--adapt-steps", type=int, default=None, help="default: the profile's dub.adapt.steps")
    ap.add_argument("--texture-init", choices=TEXTURE_INITS, default=None,
                    help="the new texture's start (default: the profile's dub.adapt.texture_init)")
    ap.add_argument("--train-dtype", choices=RENDER_DTYPES, default=None,
                    help="adapt-now's autocast (default: the profile's dub.adapt.train_dtype)")
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--speech", type=Path, default=None, help="new speech (any audio or video file)")
    ap.add_argument("--speech-from", type=float, default=30.0, help="where in --speech the new speech starts (s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stand-in-a2e", action="store_true",
                    help="time with an untrained audio-to-expression model when the model set's is missing")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    models = {k: str(REPO / v) for k, v in load_params(REPO / "params.yaml")["reenact"]["model_sets"][args.models].items()}
    with tempfile.TemporaryDirectory(prefix="bench_new_person_") as tmp:
        root = Path(tmp)
        if args.stand_in_a2e and not Path(models["a2e"]).is_file():
            models["a2e"] = stand_in_a2e(root, Path(models["basis"]), args.profile)
        missing = [p for p in models.values() if not Path(p).exists()]
        if missing:
            raise SystemExit(f"missing {missing}: run dvc repro first (the '{args.models}' models of params "
                             "reenact.model_sets; --stand-in-a2e replaces a missing audio-to-expression model)")
        clip, voice = cut_inputs(root, args.seconds, args.video, args.speech, args.speech_from)
        adapt = {"frames": args.adapt_frames, **({"steps": args.adapt_steps} if args.adapt_steps else {}),
                 **({"texture_init": args.texture_init} if args.texture_init else {}),
                 **({"train_dtype": args.train_dtype} if args.train_dtype else {})}
        overrides = {**models, "cache_dir": str(root / "dub_cache"), "adapt": adapt}
        runs = {}
        t = time.perf_counter()
        new = dub(clip, voice, ADAPT_NOW, root / "new.mp4", profile=args.profile, progress=False, overrides=overrides)
        runs["new person (adapt-now)"] = (time.perf_counter() - t, new.timings)
        runs["adapted, studio"] = studio_dub(clip, voice, root / "studio.mp4", args.profile, overrides)
        t = time.perf_counter()
        known = dub(clip, voice, ADAPT_NOW, root / "known.mp4", profile=args.profile, progress=False, overrides=overrides)
        runs["adapted, dub()"] = (time.perf_counter() - t, known.timings)
        same = (root / "known.mp4").read_bytes() == (root / "studio.mp4").read_bytes()
    schedule = dub_settings(args.profile, overrides=overrides)["adapt"]
    steps = schedule["steps"]
    lines = [f"machine: {describe()}",
             f"profile {args.profile}, models {args.models}, {new.n_frames} output frames ({args.seconds:g} s), "
             f"adapt-now on the first {args.adapt_frames} frames ({steps} steps, texture from "
             f"{schedule.get('texture_init') or 'adapt.texture_init'}, {schedule['train_dtype']}), {args.threads} threads"
             + (", UNTRAINED stand-in audio-to-expression model" if "stand_in_a2e" in models["a2e"] else ""),
             f"{'run':<24}{'wall s':>8}" + "".join(f"{s:>11}" for s in STEPS)]
    for label, (wall, timings) in runs.items():
        lines.append(f"{label:<24}{wall:>8.1f}" + "".join(f"{timings.get(s, 0.0):>10.1f}s" for s in STEPS))
    new_s, studio_s, known_s = (runs[k][0] for k in runs)
    lines += [f"new person: {new_s:.1f} s = {new_s / GOAL_S:.2f}x the {GOAL_S:.0f} s goal; "
              f"{new_s / known_s:.1f}x an already adapted dub of the same clip (same run)",
              f"already adapted: studio {studio_s:.1f} s, dub() {known_s:.1f} s (studio / dub() = {studio_s / known_s:.2f}); "
              f"studio and dub() wrote identical bytes: {same}"]
    text = "\n".join(lines)
    print("\n" + text)
    report = {k: {"wall_s": w, "timings": t} for k, (w, t) in runs.items()}
    if not args.no_save:
        # a schedule other than the profile's is its own results file (the default's stays comparable)
        variant = "".join(f"_{k}{v}" for k, v in (("steps", args.adapt_steps), ("init", args.texture_init)) if v)
        variant += "_bf16" if schedule["train_dtype"] == "bfloat16" else ""
        save_result("bench_new_person.py", f"bench_new_person_{args.models}{variant}", argv, text, report)
    return report


if __name__ == "__main__":
    main()
