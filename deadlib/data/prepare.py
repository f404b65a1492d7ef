"""Prepare stage: raw talking-head videos → per-video training caches (frames, UV rasters, masks, MEL).

Per video (``<out>/<name>/``, written to a temporary folder and renamed when complete):

===============  ==========================================================================
frames.npy       (N, R, R, 3) uint8 square face crops at 25 fps (memory-mapped by the Dataset)
raster.npz       uncompressed: ``uv`` (N, R, R, 2) float16, ``masks`` (N, R, R) uint8 bits
                 (1 face, 2 lower face, 4 mouth), ``weight_levels`` (3,) L1 weights
                 (base, lower, mouth); all zero on frames without a face
track.npz        landmarks_raw / landmarks (N, 468, 3) source px (NaN when no face), valid (N,),
                 faces_seen (N,), pose (N, 7), identity (468, 3), expr (N, K), crop (N, 2, 3) float64
                 source px → crop px, mesh_crop (N, 468, 3) decoded mesh in crop px
mel.npy          (M, 80) float16 log-MEL (deadlib.data.audio, 80 frames/s)
report.json      frames, no-face count, faces seen, fps in/out, warnings, timings, checks
===============  ==========================================================================

Why ``frames.npy`` and not an mp4: training reads random windows; an uncompressed memmap
gives any frame with no decoding and no second lossy generation, and its size (R²·3 bytes per
frame) is below that of the UV raster every frame needs anyway. Stage level: ``expr_basis.npz``
(face3d PCA fitted on the prior videos only), ``splits.json``, ``summary.json`` and the flat
metrics JSON. A bad file (no audio, no face, corrupt, too short) is reported and skipped unless
``strict``. Run: ``python -m deadlib.data.prepare --profile smoke --raw data/raw/synthetic --out data/prepared``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import multiprocessing
import os
import shutil
import time
import warnings
from collections import defaultdict
from concurrent.futures import Executor, ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from deadlib.core.config import (
    ConfigError,
    load_params,
    require_keys,
    stage_config,
    without_globals,
    write_settings,
)
from deadlib.core.files import atomic_output, write_json
from deadlib.core.progress import progress_bar
from deadlib.data import face3d
from deadlib.data.audio import log_mel
from deadlib.data.corpus_report import list_videos
from deadlib.data.crop import (
    crop_boxes,
    crop_frames,
    crop_jitter,
    crop_transform,
    map_points,
)
from deadlib.data.raster_store import RasterWriter, write_npy_rows
from deadlib.data.track import (
    NoFaceError,
    TrackError,
    TrackSettings,
    smooth_series,
    track_frames,
)
from deadlib.data.video import (
    MediaError,
    NoAudioError,
    iter_frames,
    probe_video,
    read_audio,
)

# The keys of params.yaml's `prepare` section that this module reads (values live only there).
KEYS = ("fps", "sample_rate", "max_frames", "resolution", "test_seconds", "val_seconds", "window", "strict", "workers",
        "ram_budget_mb", "metric_frames", "track", "face3d", "crop", "raster")


# A prior video trains the prior renderer, the basis, the sync expert and audio-to-expression;
# a held-out video is a new person: adaptation frames, validation, and the test part reported on.
GROUPS = ("prior", "heldout")


class PrepareError(ValueError):
    """A video (or the corpus) cannot be prepared; the message says why and what to do."""


class TooShortError(PrepareError):
    """Fewer usable frames than two training windows."""


def settings(cfg: Mapping | None) -> dict:
    """The prepare settings in ``cfg`` (params.yaml's section, see ``stage_config``) without the
    global keys; a missing or unknown key raises, naming it."""
    cfg = without_globals(cfg or {})
    require_keys("prepare", cfg, KEYS)
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown prepare settings {unknown}; valid keys: {sorted(KEYS)}")
    return copy.deepcopy(cfg)


@contextlib.contextmanager
def _timed(timings: dict, step: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[step] += time.perf_counter() - start


def _timed_iter(frames, timings: dict, step: str = "decode") -> Iterator[np.ndarray]:
    """Pass frames through, charging the time spent producing each one to ``step``."""
    it = iter(frames)
    while True:
        with _timed(timings, step):
            frame = next(it, None)
        if frame is None:
            return
        yield frame


# Wall-clock figures differ on every run, so they never enter the cached, DVC-tracked files
# (data/prepared must be byte-identical when the inputs are): reports keep them in memory and
# the stage's metrics JSON (cache: false) records them.
TIMING_METRICS = ("seconds", "frames_per_second")


def _write_report(folder: Path, report: Mapping) -> None:
    """report.json of a cache folder: the report without its (run-dependent) timings."""
    write_json(folder / "report.json", {k: v for k, v in report.items() if k != "timings"})


# ----------------------------------------------------------------------------- one video, phase 1


def _decode_plan(info, cfg: Mapping, max_side: int | None) -> tuple[dict, float, bool]:
    """iter_frames arguments, tracking px per source px, and whether the decoded frames fit in RAM."""
    work_side = max_side if max_side and max(info.width, info.height) > max_side else None
    scale = work_side / max(info.width, info.height) if work_side else 1.0
    frames = min(cfg["max_frames"], info.n_frames_estimate * cfg["fps"] / max(info.fps, 1e-3) + 2)
    keep = frames * info.width * info.height * scale**2 * 3 <= cfg["ram_budget_mb"] * 2**20
    return dict(fps=cfg["fps"], max_frames=cfg["max_frames"], max_side=work_side), scale, keep


def _check_usable(path: Path, track, window: int) -> None:
    """NoFaceError / TooShortError for videos training cannot use."""
    if not track.valid.any():
        raise NoFaceError(f"{path}: no face found on any of its {track.n_frames} frames; it cannot be used for training")
    if track.valid.sum() < 2 * window:
        raise TooShortError(f"{path}: {int(track.valid.sum())} frames with a face, fewer than two training "
                            f"windows ({2 * window}); use a longer clip")


def analyse_video(path: str | os.PathLike, out_dir: str | os.PathLike, cfg: Mapping,
                  group: str = "heldout") -> dict:
    """Decode, track, fit pose/identity, crop and write frames/mel/track of one video (phase 1).

    ``group`` (prior | heldout) decides the splits (``split_ranges``), hence which frames the
    identity offset is averaged over. Writes ``<out_dir>/<stem>/`` and returns its report. Raises
    MediaError (corrupt, no video, no audio), NoFaceError or TooShortError for unusable videos.
    """
    cfg, path = settings(cfg), Path(path)
    fps, res, crop_cfg = float(cfg["fps"]), int(cfg["resolution"]), cfg["crop"]
    timings: dict = defaultdict(float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _timed(timings, "decode"):
            info = probe_video(path)
        if not info.has_audio:
            raise NoAudioError(f"{path} has no audio stream; training needs the speech: "
                               "remux the clip with its sound track or remove it from the corpus")
        track_cfg = TrackSettings.from_config(cfg["track"])
        decode, scale, keep = _decode_plan(info, cfg, track_cfg.max_side)
        kept: list[np.ndarray] = []
        frames = (kept.append(f) or f for f in iter_frames(path, **decode)) if keep else iter_frames(path, **decode)
        decoded = timings["decode"]
        with _timed(timings, "track"):
            track = track_frames(_timed_iter(frames, timings), track_cfg, frame_size=(info.height, info.width))
        timings["track"] -= timings["decode"] - decoded  # decoding happened inside the tracking loop
        _check_usable(path, track, cfg["window"])
        n, valid = track.n_frames, track.valid
        with _timed(timings, "fit"):
            landmarks = smooth_series(track.landmarks, valid, track_cfg.smoothing, fps)
            # the identity offset is averaged over train-part frames only: test frames never shape it
            train_lo, train_hi = split_ranges(n, cfg, group)[0]["train"]
            identity_frames = valid & (np.arange(n) >= train_lo) & (np.arange(n) < train_hi)
            fit = face3d.fit_pose_identity(landmarks, valid, cfg["face3d"]["pose_smoothing"], fps,
                                           identity_frames=identity_frames)
        with _timed(timings, "crop"):
            # box of the posed neutral face (mean + identity): speech opens the jaw, never moves the crop
            neutral = face3d.posed_neutral(fit.pose, fit.identity)
            centres, sides = crop_boxes(neutral, valid, crop_cfg["scale"], crop_cfg["shift_down"], crop_cfg["smoothing"], fps)
            transforms = crop_transform(centres, sides, res)
        folder = Path(out_dir) / f".{path.stem}.partial"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        source = kept if keep else iter_frames(path, **decode)  # second decode when too big for RAM
        decoded = timings["decode"]
        with _timed(timings, "crop"):  # crops stream into frames.npy (written as they come, timed as crop)
            crops = crop_frames(_timed_iter(source, timings), transforms, res, crop_cfg["pad"], 1 / scale)
            write_npy_rows(folder / "frames.npy", crops, (n, res, res, 3), np.uint8)
        timings["crop"] -= timings["decode"] - decoded
        del kept, source
        with _timed(timings, "mel"):
            sr = int(cfg["sample_rate"])
            audio = read_audio(path, sr)[: round(n / fps * sr)]  # the audio of the kept frames
            mel = log_mel(audio, sr)
        with _timed(timings, "write"):
            np.save(folder / "mel.npy", mel.astype(np.float16))
            np.savez(folder / "track.npz", landmarks_raw=track.landmarks, landmarks=landmarks, valid=valid,
                     faces_seen=track.faces_seen, pose=fit.pose, identity=fit.identity,
                     crop=transforms, frame_size=np.array(track.frame_size))  # crop: float64, exact
    raw_boxes = crop_boxes(landmarks, valid, crop_cfg["scale"], crop_cfg["shift_down"], {"method": "none"}, fps)
    notes = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
    audio_s, video_s = len(audio) / sr, n / fps
    if audio_s < video_s - 0.5:
        notes.append(f"audio lasts {audio_s:.2f} s, video {video_s:.2f} s: MEL windows past the audio are silence")
    if info.variable_frame_rate:
        notes.append("variable frame rate source: resampled to constant fps by timestamps")
    if track.n_tracklets > 1:
        notes.append(f"{track.n_tracklets} faces tracked; kept the '{track_cfg.select}' one")
    report = {"name": path.stem, "source": str(path), "group": group, "frames": n, "valid_frames": int(valid.sum()),
              "no_face_frames": int(n - valid.sum()), "faces_seen_max": int(track.faces_seen.max()),
              "multi_face_frames": int((track.faces_seen > 1).sum()), "tracked_faces": track.n_tracklets,
              "fps_in": info.fps, "fps_out": fps, "source_size": [info.width, info.height],
              "tracking_size": [round(info.width * scale), round(info.height * scale)],
              "variable_frame_rate": info.variable_frame_rate, "duration_s": video_s, "audio_s": audio_s,
              "truncated_to_max_frames": bool(n >= cfg["max_frames"] and info.duration_s * fps > n + 1),
              "resolution": res, "warnings": notes, "timings": dict(timings),
              "checks": {"crop_jitter_px": crop_jitter(centres, sides, res, valid),
                         "crop_jitter_raw_px": crop_jitter(*raw_boxes, res, valid)}}
    _write_report(folder, report)
    final = Path(out_dir) / path.stem
    shutil.rmtree(final, ignore_errors=True)
    os.replace(folder, final)
    return report


# ----------------------------------------------------------------------------- splits + basis


def split_ranges(n_frames: int, cfg: Mapping, group: str = "heldout") -> tuple[dict[str, list[int]], str | None]:
    """Frame ranges [lo, hi) of a video's three parts, in time order, and a note when shortened:

    ``train`` (the first part: adaptation frames, the N-frame subsets, the identity offset),
    ``val`` (the ``val_seconds`` before the test part: in-training validation, early stopping,
    every choice of a setting) and ``test`` (the last ``test_seconds``: reported numbers only).
    Only held-out videos have a test part: nothing is ever reported on a prior video, so its test
    part is empty ([n, n]) and its frames train the prior (the paper trains it on all of them).
    Short clips: the test part is at most half the clip and the validation part at most a
    quarter of what is left, so the train part always keeps ≥ 3/8 of the frames."""
    if group not in GROUPS:
        raise ValueError(f"unknown split group {group!r}; one of {GROUPS}")
    cfg = settings(cfg)
    wanted = round(cfg["test_seconds"] * cfg["fps"])
    test = wanted if group == "heldout" else 0
    val = round(cfg["val_seconds"] * cfg["fps"])
    notes = []
    if test > n_frames // 2:
        test = n_frames // 2
        notes.append(f"clip of {n_frames} frames is short for a {wanted}-frame "
                     f"test span; the last {test} frames are the test split")
    if val > (n_frames - test) // 4:
        val = (n_frames - test) // 4
        notes.append(f"validation span shortened to {val} frames (a quarter of the frames before the test part)")
    val_lo, test_lo = n_frames - test - val, n_frames - test
    return {"train": [0, val_lo], "val": [val_lo, test_lo], "test": [test_lo, n_frames]}, "; ".join(notes) or None


def _residuals(folder: Path, cfg: Mapping, limit: int | None = None) -> np.ndarray:
    """Expression residuals (M, 468, 3) of a prepared video's valid TRAIN frames, ≤ ``limit`` evenly spaced."""
    with np.load(folder / "track.npz") as d:
        valid, landmarks, pose, identity = d["valid"], d["landmarks"], d["pose"], d["identity"]
    group = json.loads((folder / "report.json").read_text()).get("group", "heldout")
    train_end = split_ranges(len(valid), cfg, group)[0]["train"][1]
    idx = np.flatnonzero(valid[:train_end])
    if limit is not None and len(idx) > limit:
        idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
    keep = np.zeros(len(valid), bool)
    keep[idx] = True
    return face3d.residuals(landmarks, keep, pose, identity)[idx]


def fit_corpus_basis(out_dir: str | os.PathLike, prior: list[str], cfg: Mapping) -> face3d.ExpressionBasis:
    """Fit the expression PCA on the train frames of the PRIOR videos; saves ``expr_basis.npz``."""
    cfg = settings(cfg)
    if not prior:
        raise PrepareError("no usable prior video: the expression basis is fitted on the prior identities; "
                           "add prior videos or check why they were skipped (summary.json)")
    face_cfg = cfg["face3d"]
    per_video = max(1, face_cfg["max_fit_frames"] // len(prior))
    res = np.concatenate([_residuals(Path(out_dir) / name, cfg, per_video) for name in prior])
    basis = face3d.fit_basis(res, face_cfg["n_expr"], face_cfg["lower_weight"], face_cfg["upper_weight"])
    basis.save(Path(out_dir) / "expr_basis.npz")
    return basis


# ----------------------------------------------------------------------------- one video, phase 2

FIT_CHUNK = 512  # frames whose (k, 468, 3) meshes and float64 temporaries phase 2 holds at a time


def _crop_meshes(track: Mapping[str, np.ndarray], expr: np.ndarray, basis: face3d.ExpressionBasis) -> np.ndarray:
    """The modelled meshes (N, 468, 3) in crop pixels, decoded ``FIT_CHUNK`` frames at a time."""
    out = np.empty((len(expr), face3d.N_LANDMARKS, 3), np.float32)
    for lo in range(0, len(expr), FIT_CHUNK):
        rows = slice(lo, lo + FIT_CHUNK)
        out[rows] = map_points(face3d.decode(track["pose"][rows], track["identity"], expr[rows], basis), track["crop"][rows])
    return out


def finish_video(folder: str | os.PathLike, basis: face3d.ExpressionBasis, cfg: Mapping,
                 group: str | None = None, pool: Executor | None = None,
                 timings: Mapping[str, float] | None = None) -> dict:
    """Phase 2 of one video: expression coefficients, decoded meshes, UV/mask rasters, checks
    (rasterised in ``raster.batch`` chunks, spread over ``pool``'s processes when given).
    ``timings``: phase 1's, continued in the returned report (never written to report.json)."""
    cfg, folder = settings(cfg), Path(folder)
    report = json.loads((folder / "report.json").read_text())
    timings = defaultdict(float, timings or {})
    res, raster_cfg = int(cfg["resolution"]), cfg["raster"]
    with _timed(timings, "fit"):
        with np.load(folder / "track.npz") as d:
            track = {k: d[k] for k in d.files if k not in ("expr", "mesh_crop")}  # phase-1 arrays
        valid = track["valid"]
        expr = face3d.smooth_expression(
            face3d.expression_coefficients(track["landmarks"], valid, track["pose"], track["identity"], basis, FIT_CHUNK),
            valid, cfg["face3d"]["expr_smoothing"], cfg["fps"])
        mesh_crop = _crop_meshes(track, expr, basis)
    group = group or report.get("group", "heldout")
    ranges, note = split_ranges(len(valid), cfg, group)
    report["warnings"] += [note] if note else []
    report["splits"] = {**ranges, **{f"valid_{part}": int(valid[lo:hi].sum()) for part, (lo, hi) in ranges.items()}}
    # acceptance checks against the tracked (not modelled) landmarks, gathered chunk by chunk while the
    # rasters stream to disk (RasterWriter): the video's rasters are never all in memory
    idx = np.flatnonzero(valid)
    sample = idx[np.linspace(0, len(idx) - 1, min(len(idx), cfg["metric_frames"])).round().astype(int)]
    lips_in_mask = []  # (k,) bool per chunk
    sample_uv = np.zeros((len(sample), res, res, 2), np.float16)
    sample_masks = np.zeros((len(sample), res, res), np.uint8)
    levels = np.array([raster_cfg["weight_base"], raster_cfg["weight_lower"], raster_cfg["weight_mouth"]], np.float32)
    with _timed(timings, "rasterise"), atomic_output(folder / "raster.npz") as tmp, \
            RasterWriter(tmp, len(valid), res, levels) as out:
        chunks = [np.arange(k, min(k + raster_cfg["batch"], len(idx))) for k in range(0, len(idx), raster_cfg["batch"])]
        rest = (repeat(res), repeat(raster_cfg["batch"]), repeat(raster_cfg["mouth_margin"]), repeat(raster_cfg["tile"]),
                repeat(raster_cfg["engine"]))
        run = pool.map if pool is not None else map  # chunks in parallel processes: pytorch3d holds the GIL
        meshes = (mesh_crop[idx[c]] for c in chunks)  # lazy: one chunk's (k, 468, 3) copy at a time (map)
        for at, (u, m) in zip(chunks, run(face3d.raster_maps, meshes, *rest)):
            frames = idx[at]  # (k,) video frames of this chunk, ascending
            out.write(frames, u, m)  # u (k, S, S, 2) float16, m (k, S, S) uint8
            tracked = map_points(track["landmarks_raw"][frames], track["crop"][frames])  # (k, 468, 3) crop px
            lips_in_mask.append(face3d.lips_in_mouth_mask(tracked, m))
            here = np.isin(sample, frames)  # the check's sample frames in this chunk
            pos = np.searchsorted(frames, sample[here])
            sample_uv[here], sample_masks[here] = u[pos], m[pos]
    with _timed(timings, "write"):
        np.savez(folder / "track.npz", **track, expr=expr, mesh_crop=mesh_crop)
    with _timed(timings, "checks"):
        agreement = face3d.raster_agreement(map_points(track["landmarks"][sample], track["crop"][sample]),
                                            sample_masks, sample_uv, raster_cfg["batch"], raster_cfg["mouth_margin"],
                                            raster_cfg["tile"], raster_cfg["engine"])
        lips = np.concatenate(lips_in_mask) if lips_in_mask else np.zeros(0, bool)
        report["checks"].update({"mouth_in_mask_rate": float(lips.mean()),
                                 **{f"roundtrip_{k}": v for k, v in agreement.items()}})
    report["n_expr"] = basis.n_expr
    report["group"] = group
    _write_report(folder, report)
    report["timings"] = dict(timings)
    return report


def prepare_video(path: str | os.PathLike, out_dir: str | os.PathLike, cfg: Mapping,
                  basis: face3d.ExpressionBasis | str | os.PathLike) -> dict:
    """Both phases for one new video with an existing basis (e.g. a clip to dub)."""
    basis = basis if isinstance(basis, face3d.ExpressionBasis) else face3d.ExpressionBasis.load(basis)
    report = analyse_video(path, out_dir, cfg)
    return finish_video(Path(out_dir) / report["name"], basis, cfg, timings=report["timings"])


# ----------------------------------------------------------------------------- corpus


def list_inputs(raw_dir: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """Video files of ``raw_dir`` (by suffix, sorted) and the names of its other files (ignored)."""
    if not Path(raw_dir).is_dir():
        raise PrepareError(f"raw folder {raw_dir} does not exist; generate the corpus "
                           "(python -m deadlib.synth.corpus ensure) or point --raw at your videos")
    videos = [p for p in list_videos(raw_dir) if p.is_file()]
    return videos, sorted(p.name for p in Path(raw_dir).iterdir() if p.is_file() and p not in videos)


def heldout_names(names: list[str], raw_dir: str | os.PathLike, heldout: list[str] | None = None,
                  n_heldout: int = 3) -> list[str]:
    """Held-out identities: ``heldout`` (params data.heldout) if given, else corpus.json's
    ``splits.heldout``, else the last ``n_heldout`` sorted names."""
    if heldout:
        return [n for n in heldout if n in names]
    manifest = Path(raw_dir) / "corpus.json"
    if manifest.is_file():
        splits = json.loads(manifest.read_text()).get("splits", {})
        if "heldout" in splits:
            return [n for n in splits["heldout"] if n in names]
    return sorted(names)[len(names) - min(n_heldout, max(len(names) - 1, 0)):]


def _metrics(reports: dict[str, dict], skipped: dict, basis: face3d.ExpressionBasis, seconds: float) -> dict:
    """Flat stage metrics (numbers only) for dvc metrics."""
    rep = list(reports.values())
    frames = sum(r["frames"] for r in rep)
    mean = lambda key: float(np.mean([r["checks"][key] for r in rep])) if rep else 0.0  # noqa: E731
    return {"videos": len(rep), "videos_skipped": len(skipped), "frames": frames,
            "valid_frames": sum(r["valid_frames"] for r in rep), "no_face_frames": sum(r["no_face_frames"] for r in rep),
            "crop_jitter_px": mean("crop_jitter_px"), "crop_jitter_raw_px": mean("crop_jitter_raw_px"),
            "mouth_in_mask_rate": mean("mouth_in_mask_rate"), "expr_roundtrip_iou": mean("roundtrip_iou_face"),
            "expr_roundtrip_iou_mouth": mean("roundtrip_iou_mouth"), "expr_roundtrip_uv_error": mean("roundtrip_uv_error"),
            "n_expr": basis.n_expr, "expr_explained_variance": float(basis.explained_variance_ratio.sum()),
            "seconds": seconds, "frames_per_second": frames / max(seconds, 1e-9)}


SKIPPABLE = (MediaError, TrackError, PrepareError, face3d.Face3DError)  # bad input, not a bug


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # the processes share the cores


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[Executor | None]:
    """``workers`` spawned processes (None for 1). Spawn, not fork: a forked copy of a process that
    already ran MediaPipe/TFLite crashes."""
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init) as pool:
        yield pool


def _map_videos(fn, jobs: list[tuple], cfg: Mapping, pool: Executor | None, desc: str) -> Iterator[tuple]:
    """Yield (first job argument, fn(*job) or its SKIPPABLE error) per job, in order; in ``pool``'s
    processes when given (MediaPipe and the CPU rasteriser are single-threaded)."""
    def outcome(job, call):
        try:
            return job[0], call()
        except SKIPPABLE as err:
            if cfg["strict"]:
                raise PrepareError(f"{Path(job[0]).name}: {err} (strict mode: fix or remove the file)") from err
            return job[0], err

    if pool is None:
        for job in progress_bar(jobs, desc=desc):
            yield outcome(job, lambda: fn(*job))
        return
    futures = [pool.submit(fn, *job) for job in jobs]
    for job, future in zip(jobs, progress_bar(futures, desc=desc)):
        yield outcome(job, future.result)


def prepare_corpus(cfg: Mapping, raw_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   heldout: list[str] | None = None, n_heldout: int = 3,
                   metrics_path: str | os.PathLike | None = None) -> dict:
    """Prepare every video of ``raw_dir`` into ``out_dir``; returns (and writes) the summary.

    Phase 1 per video (track, crop, frames, MEL), then the expression basis on the prior videos,
    then phase 2 per video (expression, rasters, checks). Unusable videos are skipped with the
    reason in summary.json — or raise on the first one when ``cfg["strict"]``. ``cfg["workers"]``
    > 1 spawns processes: call it from a notebook, the CLI or under ``if __name__ == "__main__":``.
    """
    cfg, out_dir, start = settings(cfg), Path(out_dir), time.perf_counter()
    videos, ignored = list_inputs(raw_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [p.stem for p in videos]
    held = heldout_names(names, raw_dir, heldout, n_heldout)
    unique = [p for k, p in enumerate(videos) if p.stem not in names[:k]]
    skipped = {p.name: f"PrepareError: another file already has the name {p.stem!r}; rename one"
               for p in videos if p not in unique}
    unique.sort(key=lambda p: -p.stat().st_size)  # biggest first: better balance over the workers
    reports = {}
    with _pool(int(cfg["workers"])) as pool:
        jobs = [(p, out_dir, cfg, "heldout" if p.stem in held else "prior") for p in unique]
        for path, result in _map_videos(analyse_video, jobs, cfg, pool,
                                        "prepare: track"):
            if isinstance(result, Exception):
                skipped[path.name] = f"{type(result).__name__}: {result}"
                shutil.rmtree(out_dir / path.stem, ignore_errors=True)
            else:
                reports[path.stem] = result
        reports = dict(sorted(reports.items()))
        for stale in out_dir.iterdir():  # caches of videos not (or no longer) prepared
            if stale.is_dir() and stale.name not in reports and (stale / "report.json").is_file():
                shutil.rmtree(stale)
        prior = [n for n in reports if n not in held]
        basis = fit_corpus_basis(out_dir, prior, cfg)
        for name in progress_bar(list(reports), desc="prepare: raster"):  # chunks in parallel
            reports[name] = finish_video(out_dir / name, basis, cfg, "heldout" if name in held else "prior", pool,
                                         reports[name]["timings"])
    splits = {"fps": cfg["fps"], "window": cfg["window"], "test_seconds": cfg["test_seconds"],
              "prior": prior, "heldout": [n for n in held if n in reports],
              "videos": {n: {"group": r["group"], "n_frames": r["frames"], **r["splits"]} for n, r in reports.items()}}
    write_json(out_dir / "splits.json", splits)
    metrics = _metrics(reports, skipped, basis, time.perf_counter() - start)
    summary = {"raw_dir": str(raw_dir), "settings": {k: v for k, v in cfg.items() if k != "workers"},  # run-time knob
               "ok": sorted(reports),
               "skipped": skipped, "ignored": ignored, "prior": splits["prior"], "heldout": splits["heldout"],
               "expr_basis": {"n_expr": basis.n_expr, "jaw_index": basis.jaw_index,
                              "explained_variance_ratio": basis.explained_variance_ratio.tolist()},
               "metrics": {k: v for k, v in metrics.items() if k not in TIMING_METRICS}}
    write_json(out_dir / "summary.json", summary)
    summary["metrics"] = metrics  # the returned summary (and the metrics JSON) keep the timings
    summary["timings"] = {n: r["timings"] for n, r in reports.items()}
    if metrics_path:
        write_json(metrics_path, metrics)
        write_settings(metrics_path, cfg)
    return summary


def config_from_params(profile: str | None = None, params_path: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """(prepare settings, data section) of params.yaml under ``profile``."""
    params = load_params(params_path)
    return settings(stage_config("prepare", profile, params=params)), dict(params.get("data") or {})


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m deadlib.data.prepare --profile smoke --raw data/raw/synthetic --out data/prepared``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="smoke | default | full (default: params.yaml's switch)")
    parser.add_argument("--params", default=None, help="params.yaml path (default: searched upwards)")
    parser.add_argument("--raw", default=None, help="folder of videos (default: data.raw_dir/data.source)")
    parser.add_argument("--out", default="data/prepared")
    parser.add_argument("--metrics", default="metrics/prepare.json")
    parser.add_argument("--strict", action="store_true", help="abort on the first unusable video")
    args = parser.parse_args(argv)
    cfg, data = config_from_params(args.profile, args.params)
    cfg["strict"] = cfg["strict"] or args.strict
    raw = args.raw or Path(data.get("raw_dir", "data/raw")) / data.get("source", "synthetic")
    summary = prepare_corpus(cfg, raw, args.out, data.get("heldout"), data["n_heldout"], args.metrics)
    print(json.dumps({"ok": len(summary["ok"]), "skipped": summary["skipped"], **summary["metrics"]}, indent=2))


if __name__ == "__main__":
    main()
