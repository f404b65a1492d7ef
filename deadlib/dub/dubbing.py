"""Visual dubbing end to end (§3.4 + §3.3): make a video's mouth follow NEW audio.

    python -m deadlib.dub --video in.mp4 --audio new.wav --identity models/adapt/<actor> --out out.mp4
    dub --video in.mp4 --audio new.wav --identity adapt-now --out out.mp4 --profile smoke

1. check every input first (``deadlib.dub.inputs``): output writable, audio and video decodable,
   models present and of this profile's sizes — nothing long runs before that;
2. prepare the video like the prepare stage (track, face3d fit with the corpus basis, crops,
   rasters), cached under ``cache_dir`` by the video's SHA-256 + the settings;
3. predict expressions from the new audio (audio2expr, or the actor's own model from its style file:
   fine-tuned copy + style layer);
4. replace the mouth/jaw coefficients, keep pose, identity and upper-face motion
   (``deadlib.dub.render``), re-rasterise UV/masks with ``face3d.raster_maps``;
5. render windows of T frames with the adapted renderer + the actor's neural texture;
6. paste back (``deadlib.data.blend``, on by default), mux the new audio: H.264/AAC mp4, 25 fps,
   written atomically. Frames without a face pass through unchanged.

Length: audio longer than the video → the video is looped ping-pong; shorter → the video is
trimmed (default) or the audio padded with silence (``shorter="pad"``). ``--identity adapt-now``
adapts the prior checkpoint to this video's first ``adapt.frames`` frames with ``deadlib.train.adapt``
(prior renderer + fresh texture, generic prior windows mixed in when the prior's cache is there)
and fits the person's audio-to-expression (fine-tune + style layer) on the video's own speech.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

from deadlib.audio2expr.model import predict as predict_expressions
from deadlib.audio2expr.stage import basis_digest, load_a2e, load_style
from deadlib.core.config import (
    ConfigError,
    load_params,
    merge_overrides,
    resolve_device,
    stage_config,
)
from deadlib.core.memory import return_freed_memory
from deadlib.core.progress import progress_bar
from deadlib.data import face3d
from deadlib.data.audio import frame_mel_windows, log_mel
from deadlib.data.blend import METHODS
from deadlib.data.dataset import load_cache
from deadlib.data.prepare import settings as prepare_settings
from deadlib.data.track import TrackError, parse_select
from deadlib.data.video import FPS, SAMPLE_RATE, write_video
from deadlib.dub.inputs import (
    SHORTER,
    DubCheckpointError,
    DubError,
    DubInputError,
    audio_frames,
    check_output_path,
    check_video,
    fit_audio,
    frame_timeline,
    inspect_checkpoint,
    load_new_audio,
    pick_identity,
)
from deadlib.dub.person import adapt_now, find_style, prepare_cached
from deadlib.dub.render import (
    MASK_MODES,
    MOUTH_BLENDS,
    UPSCALE_KERNELS,
    ChunkDubber,
    FrameSource,
    mouth_blend,
    replace_mouth,
)
from deadlib.model.inference import RENDER_DTYPES, freeze_for_inference
from deadlib.model.renderer import RendererConfig
from deadlib.train.loop import TrainConfig, load_checkpoint

__all__ = ["dub", "dub_settings", "dub_prepare_config", "DubResult", "DubError", "DubInputError", "DubCheckpointError",
           "DubCancelled", "main"]
ADAPT_NOW = "adapt-now"

def dub_settings(profile: str | None = None, params_path: str | os.PathLike | None = None,
                 params: Mapping | None = None, overrides: Mapping | None = None) -> dict:
    """Effective ``dub`` settings under ``profile`` (params.yaml's section) deep-merged with
    ``overrides``; an override params.yaml's section does not have raises."""
    dub_cfg = merge_overrides("dub", stage_config("dub", profile, params=params, params_path=params_path), overrides)
    for key, allowed in (("shorter", SHORTER), ("mask", MASK_MODES), ("mouth_blend", MOUTH_BLENDS),
                         ("render_dtype", RENDER_DTYPES)):
        if dub_cfg[key] not in allowed:
            raise ConfigError(f"dub.{key} must be one of {allowed}, got {dub_cfg[key]!r}")
    if dub_cfg["adapt"].get("train_dtype", "float32") not in RENDER_DTYPES:
        raise ConfigError(f"dub.adapt.train_dtype must be one of {RENDER_DTYPES}, "
                          f"got {dub_cfg['adapt']['train_dtype']!r}")
    if dub_cfg["blend"]["method"] not in METHODS:
        raise ConfigError(f"dub.blend.method must be one of {METHODS}, got {dub_cfg['blend']['method']!r}")
    if dub_cfg["blend"].get("upscale") not in UPSCALE_KERNELS:
        raise ConfigError(f"dub.blend.upscale must be one of {tuple(UPSCALE_KERNELS)}, "
                          f"got {dub_cfg['blend'].get('upscale')!r}")
    return dub_cfg


class DubCancelled(DubError):
    """The caller's ``cancel`` check asked to stop; the output file was not written."""


def dub_prepare_config(profile: str | None, params: Mapping, dub_cfg: Mapping, track_select: str | None = None) -> dict:
    """The prepare settings a dub prepares its video with (part of the video cache's key);
    ``track_select`` (largest | central | longest | point:X,Y) overrides prepare.track.select."""
    prep_cfg = prepare_settings(stage_config("prepare", profile, params=params))
    prep_cfg.update(max_frames=int(dub_cfg["max_frames"]), test_seconds=0, val_seconds=0, workers=1)  # all frames: train
    if track_select is not None:
        try:
            parse_select(track_select)
        except TrackError as err:
            raise DubInputError(f"face selection: {err}") from err
        prep_cfg["track"] = {**prep_cfg["track"], "select": track_select}
    return prep_cfg


@dataclass
class DubResult:
    """What ``dub`` wrote and measured; per-output-frame arrays have length ``n_frames``."""

    out: Path
    video: Path
    cache_folder: Path  # the video's prepared cache (track.npz, frames.npy, ...)
    n_frames: int
    duration_s: float  # of the muxed (new) audio
    identity: str
    checkpoint: Path
    style: str | None  # where the style layer came from, None = generic model
    timeline: np.ndarray  # video frame shown by each output frame
    valid: np.ndarray  # output frame shows a tracked face (else passed through)
    mouth_open: np.ndarray  # face3d.mouth_gap of the dubbed meshes (0 where no face)
    mouth_open_video: np.ndarray  # the same of the video's own meshes
    mouth_area: np.ndarray  # mouth-mask area of the dubbed rasters, share of the crop
    mouth_dark: np.ndarray  # 1 − mean luminance of the RENDERED crop inside its mouth mask (proxy)
    expr_audio: np.ndarray  # (n, K) audio-driven coefficients
    expr_dub: np.ndarray  # (n, K) coefficients rendered (video's with the mouth replaced)
    blend: np.ndarray  # (K, K) M of expr_dub = M expr_audio + (I − M) expr_video
    timings: dict[str, float]


# ----------------------------------------------------------------------------- dubbing


@dataclass
class DubPlan:
    """Everything ``dub`` checked before the long work: settings, inputs and models."""

    dub_cfg: dict
    params: dict
    video: Path
    out: Path
    audio: np.ndarray  # the new audio, 16 kHz mono
    has_audio: bool  # the video has its own sound track
    renderer_cfg: RendererConfig
    prep_cfg: dict
    basis: face3d.ExpressionBasis
    a2e: torch.nn.Module
    a2e_path: Path
    checkpoint: dict  # dub_inputs.inspect_checkpoint of the actor's (or, adapt-now, the prior's) checkpoint
    name: str | None  # texture to render with (None until adapt-now made it)
    adapting: bool


def plan_dub(video: str | os.PathLike, audio: str | os.PathLike, identity: str | os.PathLike, out: str | os.PathLike,
             profile: str | None = None, params_path: str | os.PathLike | None = None, name: str | None = None,
             overrides: Mapping | None = None, track_select: str | None = None) -> DubPlan:
    """Check every input in the order of the module docstring; raises a DubError naming the culprit."""
    params = load_params(params_path)
    dub_cfg = dub_settings(profile, params=params, overrides=overrides)
    profile = dub_cfg["profile"]
    video, audio = Path(video), Path(audio)
    out = check_output_path(out, [video, audio])
    new_audio = load_new_audio(audio, SAMPLE_RATE, FPS)
    info = check_video(video)
    renderer_cfg = RendererConfig.from_dict(stage_config("renderer", profile, params=params))
    prep_cfg = dub_prepare_config(profile, params, dub_cfg, track_select)
    if prep_cfg["resolution"] != renderer_cfg.resolution:
        raise DubError(f"params of profile {profile!r}: prepare.resolution={prep_cfg['resolution']} differs from "
                       f"renderer.resolution={renderer_cfg.resolution}; make them equal")
    try:
        basis = face3d.ExpressionBasis.load(dub_cfg["basis"])
    except face3d.Face3DError as err:
        raise DubCheckpointError(f"basis: {err}") from err
    a2e_path = Path(dub_cfg["a2e"])
    try:
        a2e, a2e_info = load_a2e(a2e_path)
    except (FileNotFoundError, ValueError) as err:
        raise DubCheckpointError(f"a2e: {err}") from err
    if a2e.config.K != basis.n_expr or a2e_info["basis_digest"] != basis_digest(basis):
        raise DubCheckpointError(f"audio2expr model {a2e_path} predicts K={a2e.config.K} coefficients of basis "
                                 f"{a2e_info['basis_digest']}, but {dub_cfg['basis']} is basis {basis_digest(basis)} with "
                                 f"K={basis.n_expr}; use the model trained on this basis (train_audio2expr)")
    adapting = str(identity) == ADAPT_NOW
    checkpoint = inspect_checkpoint(dub_cfg["prior"] if adapting else identity, renderer_cfg, profile,
                                    "--prior (for adapt-now)" if adapting else "--identity")
    return DubPlan(dub_cfg=dub_cfg, params=params, video=video, out=out, audio=new_audio, has_audio=info.has_audio,
                   renderer_cfg=renderer_cfg, prep_cfg=prep_cfg, basis=basis, a2e=a2e, a2e_path=a2e_path,
                   checkpoint=checkpoint, name=None if adapting else pick_identity(checkpoint, name), adapting=adapting)


def dub(video: str | os.PathLike, audio: str | os.PathLike, identity: str | os.PathLike, out: str | os.PathLike, *,
        profile: str | None = None, params_path: str | os.PathLike | None = None, name: str | None = None,
        style: str | None = None, device: str | None = None, progress: bool = True,
        overrides: Mapping | None = None, track_select: str | None = None,
        on_progress: Callable[[str, int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None) -> DubResult:
    """Dub ``video`` with ``audio`` using ``identity`` (an adapted checkpoint folder / file, or
    'adapt-now') and write ``out`` (.mp4). ``overrides``: dub settings, e.g. {"shorter": "pad",
    "postprocess": False, "a2e": ..., "basis": ..., "cache_dir": ...}. ``name``: the texture to use
    (default: see ``dub_inputs.pick_identity``); ``style``: a style-layer file (default: found
    beside the checkpoint or the a2e model). ``track_select``: which face to dub when several are
    seen (prepare.track.select). ``on_progress(stage, done, total)`` is called as the stages
    (check, prepare, adapt, audio2expr, render) advance — adapt per training step, render per output
    frame; ``cancel()`` is polled between stages, adaptation steps and output frames, and True stops
    the dub with DubCancelled before ``out`` is written (a cancelled adaptation resumes next time)."""
    t_start, timings = time.perf_counter(), defaultdict(float)

    def stage(name_: str, done: int, total: int) -> None:
        if cancel is not None and cancel():
            raise DubCancelled(f"dub cancelled during {name_}; nothing was written to {out}")
        if on_progress is not None:
            on_progress(name_, done, total)

    stage("check", 0, 1)
    plan = plan_dub(video, audio, identity, out, profile, params_path, name, overrides, track_select)
    dub_cfg, basis = plan.dub_cfg, plan.basis
    timings["check"] = time.perf_counter() - t_start

    stage("prepare", 0, 1)
    t0 = time.perf_counter()
    folder, info = prepare_cached(plan.video, plan.prep_cfg, basis, Path(dub_cfg["cache_dir"]), plan.has_audio,
                                  int(dub_cfg["max_frames"]))
    return_freed_memory()  # the preparation's per-frame arrays are freed; drop them from the resident set
    timings["prepare"] = time.perf_counter() - t0
    ckpt_path, style_path, name = plan.checkpoint["path"], None, plan.name
    if plan.adapting:
        stage("adapt", 0, 1)
        t0 = time.perf_counter()
        ckpt_path, style_path = adapt_now(folder, info, Path(dub_cfg["prior"]), dub_cfg, dub_cfg["profile"], plan.params, plan.a2e,
                                          basis, progress, on_step=lambda step, steps: stage("adapt", step, steps))
        name = info["name"]
        return_freed_memory()
        timings["adapt"] = time.perf_counter() - t0
    style_path = style_path or find_style(style, ckpt_path, plan.a2e_path, name)

    t0 = time.perf_counter()
    dev = resolve_device(device or dub_cfg.get("device") or "auto")
    state = load_checkpoint(ckpt_path, dev, TrainConfig(renderer=plan.renderer_cfg), restore_rng=False,
                            load_optimizers=False)
    state.renderer = freeze_for_inference(state.renderer)  # same function, cheaper at inference
    model = plan.a2e if style_path is None else load_style(style_path, plan.a2e)[0]
    cache = load_cache(folder)
    # the dub needs the fit, not the tracked landmarks (2 × (N, 478, 3) float32, 11 kB a frame)
    cache["track"] = {k: v for k, v in cache["track"].items() if k not in ("landmarks_raw", "landmarks")}
    timings["load"] = time.perf_counter() - t0

    stage("audio2expr", 0, 1)
    t0 = time.perf_counter()
    timeline = frame_timeline(len(cache["track"]["valid"]), audio_frames(plan.audio, SAMPLE_RATE, FPS), dub_cfg["shorter"])
    n = len(timeline)
    new_audio = fit_audio(plan.audio, n, SAMPLE_RATE, FPS)
    mel = log_mel(new_audio, SAMPLE_RATE)
    expr_audio = predict_expressions(model, mel, n)  # (n, K)
    blend = mouth_blend(basis, dub_cfg["mouth_blend"], tuple(dub_cfg["mouth_ramp"]))
    expr_dub = replace_mouth(cache["track"]["expr"][timeline].astype(np.float32), expr_audio, blend)
    timings["audio2expr"] = time.perf_counter() - t0

    mel_windows = frame_mel_windows(mel, n, window=plan.renderer_cfg.mel_window)  # (n, 16, 80)
    dubber = ChunkDubber(state, name, cache, basis, timeline, expr_dub, mel_windows, dub_cfg, plan.prep_cfg["raster"], timings)
    source = FrameSource(plan.video, timeline, FPS, tmp_dir=folder.parent.parent)
    bar = progress_bar(total=n, desc="dub") if progress else None
    frames = dubber.frames(source, bar)
    if on_progress is not None or cancel is not None:
        frames = _watched(frames, n, stage)
    stage("render", 0, n)
    t0 = time.perf_counter()
    try:
        write_video(plan.out, frames, FPS, audio=new_audio, sample_rate=SAMPLE_RATE,
                    crf=int(dub_cfg["crf"]), preset=dub_cfg["preset"], lookahead=dub_cfg["lookahead"])
    finally:
        source.close()
        if bar is not None:
            bar.close()
    timings["encode"] = time.perf_counter() - t0 - sum(timings[k] for k in ("decode", "blend", "rasterise", "render"))
    timings["total"] = time.perf_counter() - t_start
    return DubResult(out=plan.out, video=plan.video, cache_folder=folder, n_frames=n,
                     duration_s=len(new_audio) / SAMPLE_RATE, identity=name, checkpoint=Path(ckpt_path),
                     style=str(style_path) if style_path else None, timeline=timeline, valid=dubber.valid,
                     expr_audio=expr_audio, expr_dub=expr_dub, blend=blend, timings=dict(timings), **dubber.stats)


def _watched(frames: Iterable[np.ndarray], n: int, stage: Callable[[str, int, int], None]) -> Iterator[np.ndarray]:
    """``frames`` with ``stage("render", k, n)`` before output frame k (cancel check + progress) and after the last."""
    for k, frame in enumerate(frames):
        stage("render", k, n)
        yield frame
    stage("render", n, n)


def main(argv: list[str] | None = None) -> int:
    """CLI (also the ``dub`` console script); exit status 2 with a one-line message on bad input."""
    ap = argparse.ArgumentParser(prog="dub", description=__doc__.splitlines()[0])
    ap.add_argument("--video", required=True, help="video whose face is dubbed (any fps/size; needs a face)")
    ap.add_argument("--audio", required=True, help="new speech (any rate / channels; resampled to 16 kHz mono)")
    ap.add_argument("--identity", required=True,
                    help="adapted checkpoint folder (or its checkpoint.pt), or 'adapt-now' to adapt the prior here")
    ap.add_argument("--out", required=True, help="output .mp4 (written atomically)")
    ap.add_argument("--profile", default=None, help="smoke | default | full (default: params.yaml's)")
    ap.add_argument("--params", default=None, help="params.yaml (default: searched upwards from the cwd)")
    ap.add_argument("--name", default=None, help="texture (identity id) in the checkpoint (default: the actor's)")
    ap.add_argument("--style", default=None, help="style-layer file (default: beside the checkpoint / a2e model)")
    ap.add_argument("--a2e", default=None, help="audio2expr.pt (default: params dub.a2e)")
    ap.add_argument("--basis", default=None, help="expr_basis.npz (default: params dub.basis)")
    ap.add_argument("--prior", default=None, help="prior checkpoint for adapt-now (default: params dub.prior)")
    ap.add_argument("--prior-cache", default=None, help="prepared prior videos mixed into adapt-now (default: "
                    "params dub.prior_cache)")
    ap.add_argument("--cache-dir", default=None, help="prepared-video cache (default: params dub.cache_dir)")
    ap.add_argument("--face", default=None, help="which face to dub when several are seen: largest | central | "
                    "longest | point:X,Y (X, Y fractions of the frame; default: params prepare.track.select)")
    ap.add_argument("--pad-audio", action="store_true", help="audio shorter than the video: pad it with silence "
                    "instead of trimming the video")
    ap.add_argument("--no-postprocess", action="store_true", help="paste the rendered crop back without blending")
    ap.add_argument("--device", default=None, help="cpu | cuda | auto (default: params device)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, Any] = {k: v for k, v in (("a2e", args.a2e), ("basis", args.basis), ("prior", args.prior),
                                                  ("prior_cache", args.prior_cache), ("cache_dir", args.cache_dir))
                                if v is not None}
    if args.pad_audio:
        overrides["shorter"] = "pad"
    if args.no_postprocess:
        overrides["postprocess"] = False
    try:
        result = dub(args.video, args.audio, args.identity, args.out, profile=args.profile, params_path=args.params,
                     name=args.name, style=args.style, device=args.device, overrides=overrides, track_select=args.face)
    except (DubError, ConfigError) as err:
        print(f"dub: error: {err}", file=sys.stderr)
        return 2
    summary = {"out": str(result.out), "frames": result.n_frames, "seconds": round(result.duration_s, 3),
               "identity": result.identity, "style": result.style,
               "fps": round(result.n_frames / max(result.timings["total"], 1e-9), 2),
               "timings_s": {k: round(v, 2) for k, v in result.timings.items()}}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
