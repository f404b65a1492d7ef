"""Reconstruction-mode evaluation of an adapted renderer on an actor's test part (§4, Tables 1/3/4).

The test part (last ``test_seconds`` of the video, never trained on) is rendered with its real
audio and its real tracked expressions, as non-overlapping windows of T frames that cover every
test frame with a tracked face (frames in runs shorter than T are left out and counted). Each
window's references come from the actor's first N train frames (the frames the method saw),
never from the test part.

Metrics (flat, numbers or null; why a value is null goes to ``<metrics>.reasons.json``):

* the generated region first: ``psnr_lower``, ``ssim_lower`` inside the lower-face mask and
  ``psnr_mouth``, ``ssim_mouth`` inside the mouth mask; ``psnr``, ``ssim`` on the whole 128 px
  crop, most of which the generator only has to copy through (``deadlib.eval.metrics``).
* floors, the same region metrics of two baselines that generate nothing: ``*_copy_ref`` (the
  window's reference frame as the output) and ``*_copy_input`` (the masked input as the
  generator sees it, with the reference's pixels inside the lower-face mask).
* ``lmd_mouth_px`` lip-landmark distance in crop px, ``landmark_detect_rate``,
  ``sync_conf_deadlib`` (a proxy: a ridge probe of mouth opening from MEL; ``_real`` on the ground
  truth, ``_copy_ref`` on the copy baseline) — ``deadlib.eval.lip_metrics``.
* ``sync_expert_lse_c`` / ``_lse_d`` / ``_offset``: the project's own lip-sync expert
  (``deadlib.sync.expert``, SyncNet-style, trained by the ``train_sync_expert`` stage; NOT
  comparable with published LSE numbers), for the output, the ground truth (``_real``) and the
  copy baseline (``_copy_ref``).
* ``fid`` (crops, Inception pool3), ``fvd`` (16-frame crop clips, I3D); null without weights.
* post-processing: each crop is pasted into its original frame with ``blend.paste_back``
  (``blend``); ``frame_psnr``, ``frame_ssim``, ``frame_fid`` compare pasted and original frames
  (downscaled to ``frame_max_side``) — inflated by the bit-identical background, so
  ``frame_psnr_box`` / ``frame_ssim_box`` score only the pixels under the crop square. The
  ablation "w/o post-processing" uses ``blend = "hard"``: the same ``paste_mask`` pasted with a hard
  edge and no colour matching, so it measures the blending, not a larger pasted area; ``"none"``
  pastes the whole crop square (what a pipeline without any mask would do).

Outputs: ``samples.npz`` / ``samples.png`` (ground truth | output | |error|×4 at a few frames)
and short side-by-side videos ``side_by_side.mp4`` (crops, ground truth | output, with the test
audio) and ``frames_side_by_side.mp4`` (original | pasted frames).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch

from deadlib.core.config import (
    ConfigError,
    resolve_device,
    stage_config,
    write_settings,
)
from deadlib.core.files import write_json
from deadlib.core.progress import progress_bar
from deadlib.data.blend import METHODS as PASTE_METHODS
from deadlib.data.blend import paste_back
from deadlib.data.video import MediaError, iter_frames, read_audio, write_video
from deadlib.eval import lip_metrics as lips
from deadlib.eval.feature_nets import load_i3d, load_inception
from deadlib.eval.metrics import (
    fid,
    fvd,
    i3d_features,
    inception_features,
    metric_or_null,
    psnr,
    ssim,
)
from deadlib.model.renderer import to_uint8
from deadlib.sync import expert as sync_expert
from deadlib.train.loop import load_checkpoint, predict

BLEND_METHODS = (*PASTE_METHODS, "hard")   # hard: the paste mask without feathering or colour matching
BASELINES = ("copy_ref", "copy_input")   # outputs that generate nothing: the floor of every table


@dataclass
class EvalSettings:
    """The ``evaluate`` params section (see ``deadlib.train.study_config``)."""

    blend: str = "laplacian"
    paste_mask: str = "face"
    feather_px: int = 6
    frame_max_side: int = 512
    lmd_max_frames: int = 250
    lmd_upscale: int = 256
    fvd_clip: int = 16
    inception_weights: str | None = None
    i3d_weights: str | None = None
    hub_dir: str | None = None
    batch_size: int = 8
    n_sample_frames: int = 4
    video_seconds: float = 4.0
    raw_dir: str | None = None
    sync_max_offset: int = 15
    fps: float = 25.0
    device: str = "auto"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvalSettings":
        d = {k: v for k, v in dict(d).items() if k not in ("profile", "seed", "by_profile")}
        known = {f.name for f in dataclasses.fields(cls)}
        if set(d) - known:
            raise ConfigError(f"unknown evaluate settings {sorted(set(d) - known)}; known: {sorted(known)}")
        out = cls(**{k: v for k, v in d.items() if v is not None or k in ("inception_weights", "i3d_weights",
                                                                          "hub_dir", "raw_dir")})
        if out.blend not in BLEND_METHODS:
            raise ConfigError(f"evaluate.blend must be one of {BLEND_METHODS}, got {out.blend!r}")
        if out.paste_mask not in ("face", "lower"):
            raise ConfigError(f"evaluate.paste_mask must be 'face' or 'lower', got {out.paste_mask!r}")
        return out


# ----------------------------------------------------------------------------- rendering

def cover_indices(starts: np.ndarray, window: int) -> np.ndarray:
    """Indices of non-overlapping windows (greedy, in order) among windows starting at ``starts``."""
    picks, next_free = [], -math.inf
    for i in np.argsort(starts, kind="stable"):
        if starts[i] >= next_free:
            picks.append(i)
            next_free = starts[i] + window
    return np.asarray(picks, int)


@torch.no_grad()
def render_test(state, dataset, batch_size: int = 8, progress: bool = False) -> dict[str, np.ndarray]:
    """Render a one-identity test dataset (``.index`` (W, 2) = video, start) frame by frame →
    pred / real / ref (N, S, S, 3) uint8 (ref: the window's first reference frame, repeated over
    its T frames), frame_ids (N,), face / lower / mouth masks (N, S, S) float32."""
    window = state.cfg.renderer.window
    starts = np.asarray(dataset.index)[:, 1]
    picks = cover_indices(starts, window)
    keys = ("pred", "real", "ref", "face", "lower", "mouth", "frame_ids")
    parts: dict[str, list] = {k: [] for k in keys}
    was_training = state.renderer.training
    state.renderer.eval()
    chunks = [picks[k:k + batch_size] for k in range(0, len(picks), batch_size)]
    for chunk in progress_bar(chunks, desc="evaluate: render") if progress else chunks:
        batch = torch.utils.data.default_collate([dataset[int(i)] for i in chunk])
        out = predict(state, batch)
        parts["pred"].append(to_uint8(out["pred"].flatten(0, 1)))            # (B·T, S, S, 3)
        parts["real"].append(to_uint8(out["frames"].flatten(0, 1)))
        parts["ref"].append(to_uint8(batch["refs"][:, :1].expand(-1, window, -1, -1, -1).flatten(0, 1)))
        for key in ("face", "lower", "mouth"):
            parts[key].append(batch[f"{key}_mask"].flatten(0, 1)[:, 0].numpy())  # (B·T, S, S)
        parts["frame_ids"].append((starts[chunk][:, None] + np.arange(window)).ravel())
    state.renderer.train(was_training)
    return {k: np.concatenate(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------- metrics

def _mean(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def crop_metrics(pred: np.ndarray, real: np.ndarray, lower: np.ndarray, mouth: np.ndarray,
                 suffix: str = "") -> tuple[dict, dict]:
    """Per-frame PSNR/SSIM on the whole crop, inside the lower-face mask and inside the mouth mask,
    averaged over frames (keys + ``suffix``); frames whose mask is empty are left out of that
    region's scores. pred / real (N, S, S, 3) uint8, lower / mouth (N, S, S)."""
    scores: dict[str, list[float]] = defaultdict(list)
    for p, r, low, m in zip(pred, real, lower, mouth):
        scores["psnr"].append(psnr(p, r))
        scores["ssim"].append(ssim(p, r))
        for region, mask in (("lower", low), ("mouth", m)):
            if mask.sum() > 0:
                try:
                    scores[f"psnr_{region}"].append(psnr(p, r, mask=mask))
                    scores[f"ssim_{region}"].append(ssim(p, r, mask=mask))
                except ValueError:                                         # empty at SSIM window centres
                    pass
    keys = ("psnr", "ssim", "psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth")
    out = {k + suffix: _mean(scores[k]) for k in keys}
    reasons = {k: f"the {k.split('_')[1]} mask is empty on every evaluated frame" for k in out
               if out[k] is None and "_" in k}
    return out, reasons


def baseline_outputs(rendered: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The two outputs that generate nothing (N, S, S, 3) uint8: ``copy_ref`` = the reference
    frame; ``copy_input`` = the ground truth outside the lower-face mask, the reference inside."""
    inside = rendered["lower"][..., None] > 0.5
    return {"copy_ref": rendered["ref"], "copy_input": np.where(inside, rendered["ref"], rendered["real"])}


def expert_scores(model, frames: np.ndarray, frame_ids: np.ndarray, mel: np.ndarray, max_offset: int) -> dict:
    """``deadlib.sync.expert.sync_scores`` of frames (n, S, S, 3) at video frame ids ``frame_ids``
    (ascending, gaps allowed) with the whole video's MEL (row 0 at frame 0)."""
    step = sync_expert.FRAMES_PER_ALIGN
    lo, hi = int(frame_ids.min()) // step * step, int(frame_ids.max()) + 1     # MEL rows align at lo
    full = np.zeros((hi - lo, *frames.shape[1:]), np.uint8)
    valid = np.zeros(hi - lo, bool)
    full[frame_ids - lo], valid[frame_ids - lo] = frames, True
    return sync_expert.sync_scores(model, full, mel[sync_expert.mel_rows(lo, hi)], max_offset, valid)


def expert_metrics(rendered: Mapping[str, np.ndarray], baselines: Mapping[str, np.ndarray], cache_root,
                   identity: str, expert_path: str | os.PathLike | None, max_offset: int) -> tuple[dict, dict]:
    """Sync-expert LSE-C / LSE-D / offset of the output, the ground truth (``_real``) and the copy
    baseline (``_copy_ref``); null with the reason when no expert is given or it cannot score."""
    suffixes = ("", "_real", "_copy_ref")
    named = {s: [f"{sync_expert.PREFIX}{k}{s}" for k in ("lse_c", "lse_d", "offset")] for s in suffixes}
    keys = [k for s in suffixes for k in named[s]]
    if expert_path is None:
        why = "no sync expert given (evaluate --sync-expert; the train_sync_expert stage makes it)"
        return dict.fromkeys(keys), dict.fromkeys(keys, why)
    try:
        model, _ = sync_expert.load_expert(expert_path)
    except (OSError, ValueError) as err:
        return dict.fromkeys(keys), dict.fromkeys(keys, f"sync expert not loaded: {err}")
    mel = np.load(Path(cache_root) / identity / "mel.npy")
    metrics, reasons = {}, {}
    for suffix, frames in (("", rendered["pred"]), ("_real", rendered["real"]), ("_copy_ref", baselines["copy_ref"])):
        try:
            scores = expert_scores(model, frames, rendered["frame_ids"], mel, max_offset)
            metrics.update({k + suffix: v for k, v in scores.items()})
        except ValueError as err:                                          # no window of T consecutive frames
            metrics.update(dict.fromkeys(named[suffix]))
            reasons.update(dict.fromkeys(named[suffix], f"sync expert cannot score: {err}"))
    return metrics, reasons


def clip_slices(frame_ids: np.ndarray, length: int) -> list[slice]:
    """Non-overlapping runs of ``length`` consecutive frame ids (positions into frame_ids)."""
    out, p = [], 0
    while p + length <= len(frame_ids):
        if frame_ids[p + length - 1] - frame_ids[p] == length - 1:
            out.append(slice(p, p + length))
            p += length
        else:
            p += 1
    return out


def feature_metrics(rendered: Mapping[str, np.ndarray], settings: EvalSettings, device) -> tuple[dict, dict, Any]:
    """FID of crops and FVD of crop clips (null without offline weights); returns the Inception net too."""
    metrics, reasons = {"fid": None, "fvd": None}, {}
    net, why = metric_or_null(load_inception, settings.inception_weights, settings.hub_dir, device=device)
    if net is None:
        reasons["fid"] = why
    else:
        metrics["fid"] = fid(inception_features(rendered["pred"], net), inception_features(rendered["real"], net))
    clips = clip_slices(rendered["frame_ids"], settings.fvd_clip)
    if len(clips) < 2:
        reasons["fvd"] = f"{len(clips)} clip(s) of {settings.fvd_clip} consecutive evaluated frames; FVD needs >= 2"
    else:
        i3d, why = metric_or_null(load_i3d, settings.i3d_weights, device=device)
        if i3d is None:
            reasons["fvd"] = why
        else:
            videos = {k: np.stack([rendered[k][s] for s in clips]) for k in ("pred", "real")}  # (M, L, S, S, 3)
            metrics["fvd"] = fvd(i3d_features(videos["pred"], i3d), i3d_features(videos["real"], i3d))
    return metrics, reasons, net


def mouth_metrics(rendered: Mapping[str, np.ndarray], cache_root, identity: str, prior_names: Sequence[str],
                  settings: EvalSettings, detector_factory=None) -> tuple[dict, dict]:
    """LMD on FaceMesh lip landmarks and the sync proxy, on ≤ lmd_max_frames evenly spaced frames."""
    n = len(rendered["frame_ids"])
    sel = np.linspace(0, n - 1, min(n, settings.lmd_max_frames)).round().astype(int)
    pred_lm, real_lm, ref_lm = (lips.detect_landmarks(rendered[k][sel], settings.lmd_upscale,
                                                      detector_factory() if detector_factory else None)
                                for k in ("pred", "real", "ref"))
    metrics, reasons = {}, {}
    metrics["lmd_mouth_px"], metrics["landmark_detect_rate"], why = lips.landmark_distance(pred_lm, real_lm)
    if why:
        reasons["lmd_mouth_px"] = why
    metrics["lmd_mouth_px_copy_ref"], _, why = lips.landmark_distance(ref_lm, real_lm)
    if why:
        reasons["lmd_mouth_px_copy_ref"] = why
    folder = Path(cache_root) / identity
    lo, hi = json.loads((folder / "report.json").read_text())["splits"]["test"]
    with np.load(folder / "track.npz") as track:
        n_frames = len(track["valid"])
    feats = lips.mel_frame_features(np.load(folder / "mel.npy"), n_frames, settings.fps)[lo:hi]
    try:
        probe = lips.fit_sync_probe(cache_root, prior_names, settings.fps)
    except (ValueError, OSError, KeyError) as err:
        probe, no_probe = None, f"sync probe not fitted on the prior data: {err}"
    for key, lm in (("sync_conf_deadlib", pred_lm), ("sync_conf_deadlib_real", real_lm),
                    ("sync_conf_deadlib_copy_ref", ref_lm)):
        value, reason = (None, no_probe) if probe is None else \
            lips.sync_confidence(lm, rendered["frame_ids"][sel], feats, lo, probe)
        metrics[key] = value
        if reason:
            reasons[key] = reason
    return metrics, reasons


# ----------------------------------------------------------------------------- post-processing

def source_video(cache_root, identity: str, raw_dir: str | os.PathLike | None) -> Path | None:
    """The original video of a prepared identity: ``raw_dir/<file name>`` or the recorded path."""
    source = Path(json.loads((Path(cache_root) / identity / "report.json").read_text())["source"])
    path = Path(raw_dir) / source.name if raw_dir else source
    return path if path.is_file() else None


def shrink(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (area) so the longer side is ≤ max_side, with even sides (H.264 needs them)."""
    h, w = frame.shape[:2]
    s = min(1.0, max_side / max(h, w))
    size = (max(2, int(w * s) // 2 * 2), max(2, int(h * s) // 2 * 2))
    return frame if size == (w, h) else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def crop_square(frame_shape: tuple[int, int], affine: np.ndarray, size: int) -> np.ndarray:
    """(H, W) float32 {0, 1}: the frame pixels whose centre maps inside the S×S crop (``affine``
    frame → crop px, continuous coordinates as ``deadlib.data.crop``)."""
    inverse = cv2.invertAffineTransform(np.asarray(affine, np.float64))             # crop → frame
    # the centres of the crop's corner pixels; the filled polygon includes its boundary
    corners = np.array([[0.5, 0.5], [size - 0.5, 0.5], [size - 0.5, size - 0.5], [0.5, size - 0.5]])
    polygon = corners @ inverse[:, :2].T + inverse[:, 2] - 0.5                      # frame px, centres at i
    mask = np.zeros(frame_shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(polygon * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def paste_metrics(video: Path, cache_root, identity: str, rendered: Mapping[str, np.ndarray],
                  settings: EvalSettings, keep_ids: set[int], inception=None) -> tuple[dict, dict]:
    """Paste every generated crop into its original frame; per-frame PSNR/SSIM of pasted vs original
    (downscaled to frame_max_side) and frame FID. Returns metrics and {id: (original, pasted)} of
    ``keep_ids``."""
    with np.load(Path(cache_root) / identity / "track.npz") as track:
        affines = track["crop"]                                              # (N, 2, 3) source → crop px
    mask_key = "face" if settings.paste_mask == "face" else "lower"
    position = {int(t): k for k, t in enumerate(rendered["frame_ids"])}
    scores, kept, small = defaultdict(list), {}, {"a": [], "b": []}
    last = int(rendered["frame_ids"].max())
    for t, frame in enumerate(iter_frames(video, fps=settings.fps, max_frames=last + 1)):
        k = position.get(t)
        if k is None:
            continue
        hard = settings.blend == "hard"
        pasted = paste_back(frame, rendered["pred"][k], affines[t], rendered[mask_key][k],
                            method="feather" if hard else settings.blend, feather_px=0 if hard else settings.feather_px,
                            colour_match=not hard)
        a, b = shrink(frame, settings.frame_max_side), shrink(pasted, settings.frame_max_side)
        box = shrink(crop_square(frame.shape[:2], affines[t], rendered["pred"].shape[1]), settings.frame_max_side)
        scores["frame_psnr"].append(psnr(b, a))
        scores["frame_ssim"].append(ssim(b, a))
        scores["frame_psnr_box"].append(psnr(b, a, mask=box))
        scores["frame_ssim_box"].append(ssim(b, a, mask=box))
        if t in keep_ids:
            kept[t] = (a, b)
        if inception is not None:
            small["a"].append(shrink(frame, 299))
            small["b"].append(shrink(pasted, 299))
    metrics = {k: _mean(v) for k, v in scores.items()}
    metrics["frame_fid"] = None
    if inception is not None and small["a"]:
        metrics["frame_fid"] = fid(inception_features(np.stack(small["b"]), inception),
                                   inception_features(np.stack(small["a"]), inception))
    metrics["frames_pasted"] = len(scores["frame_psnr"])
    return metrics, kept


# ----------------------------------------------------------------------------- outputs

def longest_run(frame_ids: np.ndarray, max_len: int) -> slice:
    """Positions of the longest run of consecutive frame ids (≤ max_len)."""
    breaks = np.flatnonzero(np.diff(frame_ids) != 1) + 1
    bounds = np.concatenate([[0], breaks, [len(frame_ids)]])
    k = int(np.argmax(np.diff(bounds)))
    return slice(int(bounds[k]), int(min(bounds[k + 1], bounds[k] + max_len)))


def save_outputs(out_dir: Path, rendered: Mapping[str, np.ndarray], samples: np.ndarray, run: slice,
                 kept: Mapping[int, tuple], video: Path | None, settings: EvalSettings) -> dict[str, str]:
    """samples.npz / samples.png and the side-by-side videos; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = rendered["frame_ids"]
    pred, real = rendered["pred"][samples], rendered["real"][samples]
    extra = {}
    if all(int(t) in kept for t in ids[samples]) and len(samples):
        extra = {"original": np.stack([kept[int(t)][0] for t in ids[samples]]),
                 "pasted": np.stack([kept[int(t)][1] for t in ids[samples]])}
    np.savez_compressed(out_dir / "samples.npz", frame_ids=ids[samples], pred=pred, real=real,
                        mouth=rendered["mouth"][samples], **extra)
    err = np.clip(np.abs(pred.astype(int) - real.astype(int)) * 4, 0, 255).astype(np.uint8)
    grid = np.concatenate([np.concatenate([r, p, e], 1) for r, p, e in zip(real, pred, err)], 0)
    cv2.imwrite(str(out_dir / "samples.png"), grid[..., ::-1])
    paths = {"samples": str(out_dir / "samples.npz"), "grid": str(out_dir / "samples.png")}
    audio = None
    if video is not None:
        first, sr = int(ids[run.start]), 16000
        try:
            audio = read_audio(video, sr)[round(first / settings.fps * sr):round(int(ids[run.stop - 1] + 1)
                                                                                 / settings.fps * sr)]
        except MediaError:                                                    # a clip without usable audio
            audio = None
    frames = np.concatenate([rendered["real"][run], rendered["pred"][run]], 2)   # (L, S, 2S, 3)
    write_video(out_dir / "side_by_side.mp4", frames, fps=settings.fps, audio=audio)
    paths["video"] = str(out_dir / "side_by_side.mp4")
    pairs = [kept[int(t)] for t in ids[run] if int(t) in kept]
    if pairs and len(pairs) == run.stop - run.start:
        write_video(out_dir / "frames_side_by_side.mp4", (np.concatenate(p, 1) for p in pairs), fps=settings.fps,
                    audio=audio)
        paths["frames_video"] = str(out_dir / "frames_side_by_side.mp4")
    return paths


def evaluate_identity(state, cache_root: str | os.PathLike, identity: str, settings: EvalSettings,
                      out_dir: str | os.PathLike, prior_names: Sequence[str], n_train_frames: int,
                      sync_expert_path: str | os.PathLike | None = None, progress: bool = False,
                      detector_factory=None) -> tuple[dict, dict, dict]:
    """Evaluate ``state`` on ``identity``'s test part, references drawn from its first
    ``n_train_frames`` train frames → (flat metrics, reasons for nulls, output paths)."""
    from deadlib.data.dataset import WindowDataset

    start, r, out_dir = time.perf_counter(), state.cfg.renderer, Path(out_dir)
    test = WindowDataset(cache_root, [identity], split="test", window=r.window, n_refs=r.n_refs, seed=state.cfg.seed,
                         n_train_frames=n_train_frames, ref_split="train")
    rendered = render_test(state, test, settings.batch_size, progress)
    lo, hi = json.loads((Path(cache_root) / identity / "report.json").read_text())["splits"]["test"]
    metrics = {"n_test_frames": hi - lo, "n_eval_frames": len(rendered["frame_ids"]),
               "post_processing": int(settings.blend not in ("none", "hard"))}
    values, reasons = crop_metrics(rendered["pred"], rendered["real"], rendered["lower"], rendered["mouth"])
    metrics.update(values)
    baselines = baseline_outputs(rendered)
    for name, frames in baselines.items():
        values, why = crop_metrics(frames, rendered["real"], rendered["lower"], rendered["mouth"], f"_{name}")
        metrics.update(values)
        reasons.update(why)
    values, why = expert_metrics(rendered, baselines, cache_root, identity, sync_expert_path, settings.sync_max_offset)
    metrics.update(values)
    reasons.update(why)
    values, why = mouth_metrics(rendered, cache_root, identity, prior_names, settings, detector_factory)
    metrics.update(values)
    reasons.update(why)
    values, why, inception = feature_metrics(rendered, settings, state.device)
    metrics.update(values)
    reasons.update(why)
    ids = rendered["frame_ids"]
    samples = np.linspace(0, len(ids) - 1, min(len(ids), settings.n_sample_frames)).round().astype(int)
    run = longest_run(ids, max(1, int(settings.video_seconds * settings.fps)))
    video, kept = source_video(cache_root, identity, settings.raw_dir), {}
    frame_keys = ("frame_psnr", "frame_ssim", "frame_psnr_box", "frame_ssim_box", "frame_fid")
    if video is None:
        metrics.update(dict.fromkeys(frame_keys))
        reasons.update(dict.fromkeys(frame_keys, f"original video of {identity} not found (set evaluate.raw_dir)"))
    else:
        keep = {int(t) for t in ids[samples]} | {int(t) for t in ids[run]}
        values, kept = paste_metrics(video, cache_root, identity, rendered, settings, keep, inception)
        metrics.update(values)
        if inception is None:
            reasons["frame_fid"] = reasons.get("fid", "no Inception network")
    outputs = save_outputs(out_dir, rendered, samples, run, kept, video, settings)
    metrics["eval_seconds"] = time.perf_counter() - start
    return metrics, reasons, outputs


def _number(value: Any) -> float | int | None:
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def write_metrics(path: str | os.PathLike, metrics: Mapping[str, Any], reasons: Mapping[str, str],
                  cell: Mapping[str, Any] | None = None) -> Path:
    """Flat metrics JSON (numbers or null) + ``<stem>.reasons.json`` with {"reasons", "cell"}.
    A non-finite number becomes null with a reason."""
    path, reasons = Path(path), dict(reasons)
    flat = {}
    for key, value in metrics.items():
        flat[key] = _number(value)
        if flat[key] is None and value is not None:
            reasons.setdefault(key, f"not finite ({value})")
    write_json(path, flat)
    write_json(path.with_suffix(".reasons.json"),
               {"reasons": {k: v for k, v in reasons.items() if flat.get(k) is None}, "cell": dict(cell or {})})
    return path


def main(argv: list[str] | None = None) -> dict:
    """``python -m deadlib.eval.evaluate`` — evaluate an adapted checkpoint (e.g. the w/o post-processing variant)."""
    from deadlib.train.study_config import cell_name

    ap = argparse.ArgumentParser(prog="python -m deadlib.eval.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--params", default=None)
    ap.add_argument("--checkpoint", required=True, help="an adapted cell's checkpoint.pt")
    ap.add_argument("--identity", required=True)
    ap.add_argument("--method", choices=("prior", "scratch"), required=True, help="how the checkpoint was trained")
    ap.add_argument("--n-frames", type=int, required=True, help="its N: evaluation references come from these frames")
    ap.add_argument("--seed", type=int, default=0, help="the cell's seed (its name)")
    ap.add_argument("--sync-expert", default=None, help="the train_sync_expert stage's sync_expert.pt")
    ap.add_argument("--variant", default=None, help="label, e.g. nopost")
    ap.add_argument("--blend", default=None, choices=BLEND_METHODS, help="override evaluate.blend")
    ap.add_argument("--cache-root", default="data/prepared")
    ap.add_argument("--out", required=True, help="folder for samples and videos")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args(argv)
    raw = stage_config("evaluate", args.profile, params_path=args.params)
    settings = EvalSettings.from_dict({**raw, **({"blend": args.blend} if args.blend else {})})
    state = load_checkpoint(args.checkpoint, resolve_device(settings.device), restore_rng=False, load_optimizers=False)
    prior = json.loads((Path(args.cache_root) / "splits.json").read_text())["prior"]
    metrics, reasons, _ = evaluate_identity(state, args.cache_root, args.identity, settings, args.out, prior,
                                            args.n_frames, args.sync_expert)
    metrics = {"n_frames": args.n_frames, "steps": state.step, "init_prior": int(args.method == "prior"), **metrics}
    cell = {"method": args.method, "identity": args.identity, "n_frames": args.n_frames, "seed": args.seed,
            "variant": args.variant or "",
            "name": cell_name(args.method, args.identity, args.n_frames, args.variant, args.seed), "profile": raw["profile"],
            "blend": settings.blend}
    write_metrics(args.metrics, metrics, reasons, cell)
    write_settings(args.metrics, raw)
    print(json.dumps(metrics), file=sys.stderr)
    return metrics


if __name__ == "__main__":
    main()
