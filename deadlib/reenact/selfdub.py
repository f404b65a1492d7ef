"""Self-reenactment: dub a held-out person's test part with speech and score it against the real frames.

The product test of issue 14 ("real speech in, real mouth out"). For one held-out actor of a
prepared corpus and one model set (prior + audio-to-expression + expression basis + generic
windows), exactly as a user runs ``dub --identity adapt-now``:

1. cut the actor's raw video into a *train clip* (its first ``frames`` frames) and a *test clip*
   (the test split recorded by prepare, frames [lo, hi)), both with their own sound;
2. adapt the prior to the train clip (``dub`` with ``adapt-now``: fresh texture, fine-tuned
   renderer, generic windows mixed in, style layer fitted on the clip's own speech) — no frame
   of the test part is seen;
3. dub the test clip with the adapted checkpoint, driven by
   ``own``     its own speech (self-reenactment: the real frames are the ground truth),
   ``silence`` digital silence (the floor: a still, neutral mouth),
   ``other``   another held-out actor's test speech (the leakage control: a dub that follows its
               audio must NOT correlate with this clip's real mouth; a high value means the
               original mouth leaks through the input or the blending),
   ``tts``     ``tts_text`` spoken by espeak-ng (a synthetic voice no model trained on);
   ``tracked`` its own speech, but the clip's own tracked expressions instead of the audio-driven
               ones (``dub.mouth_blend: none``): not a dub but the renderer's ceiling — how much
               of the real mouth it reproduces when the geometry is right;
4. score each dub against the real test frames, on the test clip's own face crops:
   ``mouth_open_r``      Pearson r of the mouth opening (FaceMesh inner-lip gap / eye distance) of
                         dub vs real, frames where both are detected; ``_lo`` / ``_hi``: its 95 %
                         moving-block bootstrap interval (blocks of ``r_block`` frames, ``r_resamples``
                         resamples: how far one 10 s test part pins r down);
   ``mouth_lag``         the lag (frames, |lag| ≤ ``max_lag``) maximising that correlation — the AV
                         offset of the dubbed mouth against the real mouth (0 = in sync);
   ``mouth_open_pause`` / ``_speech``: mean opening where the driving audio is quieter / louder
                         than ``pause_dbfs`` (a dub must close its mouth in the new audio's pauses);
   ``lmd_mouth_px``      mean distance of the 40 lip landmarks at ``lmd_size`` px crops;
   ``psnr_lower`` / ``ssim_lower`` / ``psnr_mouth`` / ``ssim_mouth`` / ``psnr`` / ``ssim`` on the
                         prepare-resolution crops (the real face's masks);
   ``sync_expert_lse_c`` / ``_lse_d`` / ``_offset``: the judge sync expert on the dub's crops with
                         the driving audio (the real frames with their audio: ``groundtruth_*``);
   ``mesh_mouth_open_r`` Pearson r of the dubbed MESH's mouth opening (face3d.mouth_gap of the
                         geometry handed to the renderer) vs the real FaceMesh opening: where the
                         mouth is lost — before the renderer (audio → expression → mesh) when it is
                         low, in the renderer when ``mouth_open_r`` is much lower than it.

Keys are ``<model set>_<drive>_<metric>``; every model set uses the same judge and the same clips.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from deadlib.core.config import stage_config, write_settings
from deadlib.core.files import write_json
from deadlib.core.measures import pearson, pearson_block_interval
from deadlib.data import face3d
from deadlib.data.audio import log_mel, speech_energy
from deadlib.data.crop import crop_frame
from deadlib.data.dataset import load_cache
from deadlib.data.face3d import MASK_LOWER, MASK_MOUTH
from deadlib.data.video import (
    FPS,
    SAMPLE_RATE,
    read_audio,
    read_video,
    write_audio,
    write_video,
)
from deadlib.dub.dubbing import DubResult, dub
from deadlib.dub.report import heldout_test_audio, noise_audio
from deadlib.eval.evaluate import crop_metrics
from deadlib.eval.lip_metrics import detect_landmarks, landmark_distance

DRIVES = ("own", "silence", "other", "tts", "tracked")
# dub settings a drive changes; 'tracked' renders the clip's own expressions (module docstring)
DRIVE_OVERRIDES = {"tracked": {"mouth_blend": "none"}}
MODEL_KEYS = ("prior", "a2e", "basis", "prior_cache")
# the frame grid's close-up: top, bottom, left, right as fractions of the aligned face crop
# (prepared crops hold the lips at x 0.36-0.63, y 0.53-0.71: params.yaml's sync_expert note)
GRID_MOUTH_BOX = (0.45, 0.85, 0.25, 0.75)
# fewest frames a mouth-opening correlation (r, its lag, the mesh's r) is computed on; fewer → None
MIN_CORR_FRAMES = 10


class ReenactError(ValueError):
    """A missing input of the self-reenactment; the message says which and what to run."""


def split_span(cache_root: str | os.PathLike, actor: str, split: str = "test") -> tuple[int, int]:
    """The actor's ``split`` (train | val | test) as frames [lo, hi) at 25 fps, recorded by prepare."""
    path = Path(cache_root) / actor / "report.json"
    if not path.is_file():
        raise ReenactError(f"{path} not found: prepare the corpus first (its prepare stage)")
    lo, hi = json.loads(path.read_text())["splits"][split]
    return int(lo), int(hi)


def cut_clip(frames: np.ndarray, audio: np.ndarray, lo: int, hi: int, out: Path) -> Path:
    """Frames [lo, hi) with their sound as a near-lossless mp4 (x264 crf 0)."""
    a, b = round(lo / FPS * SAMPLE_RATE), round(hi / FPS * SAMPLE_RATE)
    write_video(out, frames[lo:hi], FPS, audio=audio[a:b], sample_rate=SAMPLE_RATE, crf=0, preset="veryfast")
    return out


def crops_of(frames: np.ndarray, affines: np.ndarray, timeline: np.ndarray, res: int, size: int) -> np.ndarray:
    """(n, size, size, 3) face crops of ``frames`` with the clip's crop boxes (made for ``res`` px)."""
    scale = np.diag([size / res, size / res])
    return np.stack([crop_frame(f, scale @ affines[t], size) for f, t in zip(frames, timeline)])


def mouth_lag(dub_open: np.ndarray, real_open: np.ndarray, both: np.ndarray, max_lag: int) -> tuple[int, float]:
    """(lag, r) maximising r(dub[t + lag], real[t]) over |lag| ≤ max_lag on frames detected in both."""
    best = (0, -2.0)
    n = len(dub_open)
    for lag in range(-max_lag, max_lag + 1):
        t = np.arange(max(0, -lag), min(n, n - lag))
        keep = both[t] & both[t + lag]
        if keep.sum() >= MIN_CORR_FRAMES:
            r = pearson(dub_open[t + lag][keep], real_open[t][keep])
            if r > best[1]:
                best = (lag, r)
    return best


class RealTest:
    """The real test frames of one actor, measured once: crops, masks, landmarks, mouth opening."""

    def __init__(self, clip_cache: Path, frames: np.ndarray, settings: Mapping):
        cache = load_cache(clip_cache)
        self.affines, self.res = cache["track"]["crop"], cache["frames"].shape[1]
        self.valid = np.asarray(cache["track"]["valid"], bool)
        self.n = len(self.valid)
        timeline = np.arange(self.n)
        self.crops = crops_of(frames[: self.n], self.affines, timeline, self.res, self.res)
        self.big = crops_of(frames[: self.n], self.affines, timeline, self.res, int(settings["lmd_size"]))
        bits = np.asarray(cache["masks"])
        self.lower, self.mouth = ((bits & MASK_LOWER) > 0), ((bits & MASK_MOUTH) > 0)
        self.landmarks = detect_landmarks(self.big, upscale=None)
        self.found = np.isfinite(self.landmarks).all((1, 2))
        self.opening = np.where(self.found, face3d.mouth_gap(np.nan_to_num(self.landmarks)), np.nan)


def score(result: DubResult, real: RealTest, audio: np.ndarray, judge, settings: Mapping) -> dict:
    """The metrics of one dub against the real test frames (module docstring)."""
    from deadlib.sync import expert as sx

    out, _ = read_video(result.out)
    n = min(len(out), real.n, result.n_frames)
    timeline = np.asarray(result.timeline[:n])
    if not np.array_equal(timeline, np.arange(n)):
        raise ReenactError("the dub's timeline is not the clip's frames in order; the driving audio must be "
                           "at least as long as the test clip")
    keep = real.valid[:n] & np.asarray(result.valid[:n], bool)
    crops = crops_of(out[:n], real.affines, timeline, real.res, real.res)
    metrics, _ = crop_metrics(crops[keep], real.crops[:n][keep], real.lower[:n][keep], real.mouth[:n][keep])
    big = crops_of(out[:n], real.affines, timeline, real.res, int(settings["lmd_size"]))
    landmarks = detect_landmarks(big, upscale=None)
    found = np.isfinite(landmarks).all((1, 2))
    both = found & real.found[:n]
    opening = np.where(found, face3d.mouth_gap(np.nan_to_num(landmarks)), np.nan)
    lmd, rate, _ = landmark_distance(landmarks, real.landmarks[:n])
    lag, lag_r = mouth_lag(np.nan_to_num(opening), np.nan_to_num(real.opening[:n]), both, int(settings["max_lag"]))
    r, interval = None, None
    if both.sum() >= MIN_CORR_FRAMES:   # frames where both mouths were found: (m,) each
        dub_open, real_open = opening[both], real.opening[:n][both]
        r = pearson(dub_open, real_open)
        interval = pearson_block_interval(dub_open, real_open, int(settings["r_block"]), int(settings["r_resamples"]))
    # the geometry the renderer was given: (n,) mesh openings, on frames where the real mouth was found
    mesh = real.found[:n] & np.asarray(result.valid[:n], bool)
    mesh_r = pearson(np.asarray(result.mouth_open[:n])[mesh], real.opening[:n][mesh]) if mesh.sum() >= MIN_CORR_FRAMES else None
    metrics.update({
        "mouth_open_r": r, "mesh_mouth_open_r": mesh_r,
        "mouth_open_r_lo": interval[0] if interval else None, "mouth_open_r_hi": interval[1] if interval else None,
        "mouth_lag": lag, "mouth_lag_r": lag_r, "lmd_mouth_px": lmd, "landmark_rate": rate,
        "mouth_open_mean": float(np.nanmean(opening)) if found.any() else None,
        "mouth_open_std": float(np.nanstd(opening)) if found.any() else None,
        "frames": int(n), "frames_dubbed": int(keep.sum())})
    metrics.update(pause_openings(opening, found, audio, n, float(settings["pause_dbfs"])))
    mel = log_mel(audio, SAMPLE_RATE)
    metrics.update(sx.sync_scores(judge, crops, mel, int(settings["sync_max_offset"]), keep))
    return metrics


def pause_openings(opening: np.ndarray, found: np.ndarray, audio: np.ndarray, n: int, pause_dbfs: float) -> dict:
    """Mean mouth opening (n,) in the driving audio's pauses (frames quieter than ``pause_dbfs`` RMS)
    and in its speech: a dub must close its mouth where the new audio is silent."""
    level = 20 * np.log10(np.maximum(speech_energy(audio, SAMPLE_RATE, n), 1e-10))   # (n,) dBFS per frame
    out = {}
    for tag, keep in (("pause", level < pause_dbfs), ("speech", level >= pause_dbfs)):
        use = keep & found[:n]
        out[f"mouth_open_{tag}"] = float(opening[:n][use].mean()) if use.any() else None
        out[f"{tag}_frames"] = int(use.sum())
    return out


def models_overrides(models: Mapping, cache_dir: Path, frames: int) -> dict:
    """dub settings for a model set: its prior / a2e / basis / generic windows, a private cache."""
    missing = [f"{k}={models[k]}" for k in MODEL_KEYS if not Path(models[k]).exists()]
    if missing:
        raise ReenactError(f"model set lacks {missing}; run the stages that make them (prior, audio2expr, prepare)")
    return {**{k: str(models[k]) for k in MODEL_KEYS}, "cache_dir": str(cache_dir), "adapt": {"frames": int(frames)}}


def reenact_actor(actor: str, other: str | None, cache_root: str | os.PathLike, raw_dir: str | os.PathLike,
                  model_sets: Mapping[str, Mapping], judge_path: str | os.PathLike, out_dir: str | os.PathLike,
                  grid_path: str | os.PathLike, settings: Mapping, profile: str | None = None,
                  params_path: str | os.PathLike | None = None, progress: bool = False) -> dict:
    """Run the protocol of the module docstring for ``actor`` → flat metrics; the dubs go to
    ``out_dir``, the mouth close-up grid (real | each dub) to ``grid_path``."""
    from deadlib.sync import expert as sx

    out_dir, work = Path(out_dir), Path(out_dir) / "work"
    work.mkdir(parents=True, exist_ok=True)
    lo, hi = split_span(cache_root, actor, "test")
    frames_n, train_end = int(settings["frames"]), split_span(cache_root, actor, "train")[1]
    if frames_n > train_end:
        raise ReenactError(f"{actor}: {frames_n} adaptation frames reach past its train part (frames 0-{train_end}); "
                           "lower reenact.frames")
    video = Path(raw_dir) / f"{actor}.mp4"
    frames, _ = read_video(video, FPS, max_frames=hi)
    audio = read_audio(video, SAMPLE_RATE)
    train_clip = cut_clip(frames, audio, 0, frames_n, work / f"{actor}_train.mp4")
    test_clip = cut_clip(frames, audio, lo, hi, work / f"{actor}_test.mp4")
    # the test part's own speech, exactly as long as the clip (the clip's AAC track would add a frame)
    own, _ = heldout_test_audio(cache_root, raw_dir, actor, work / "own.wav")
    drives = {"own": own, "silence": noise_audio(work / "silence.wav", (hi - lo) / FPS, None)}
    if other:  # the other speaker's test speech, as long as this test clip (looped if shorter)
        other_test, _ = heldout_test_audio(cache_root, raw_dir, other, work / "other_test.wav")
        need = round((hi - lo) / FPS * SAMPLE_RATE)
        write_audio(work / "other.wav", np.resize(read_audio(other_test, SAMPLE_RATE), need).astype(np.float32), SAMPLE_RATE)
        drives["other"] = work / "other.wav"
    tts = synthesise_speech(settings.get("tts_text"), work / "tts.wav", hi - lo, settings)
    if tts is not None:
        drives["tts"] = tts
    drives["tracked"] = own
    drive_audio = {drive: read_audio(path, SAMPLE_RATE) for drive, path in drives.items()}  # (samples,) each
    judge, _ = sx.load_expert(judge_path)
    metrics: dict = {"test_frames": hi - lo, "adapt_frames": frames_n}
    real, dubs = None, {}
    for set_name, models in model_sets.items():
        over = models_overrides(models, work / f"cache_{set_name}", frames_n)
        adapted = dub(train_clip, train_clip, "adapt-now", work / f"{set_name}_train_dub.mp4", profile=profile,
                      params_path=params_path, overrides=over, progress=progress)
        for drive, audio_path in drives.items():
            result = dub(test_clip, audio_path, adapted.checkpoint, out_dir / f"{set_name}_{drive}.mp4",
                         profile=profile, params_path=params_path, name=adapted.identity,
                         style=adapted.style, overrides={**over, **DRIVE_OVERRIDES.get(drive, {})}, progress=progress)
            if real is None:
                real = RealTest(result.cache_folder, frames[lo:hi], settings)
                metrics.update({f"groundtruth_{k}": v for k, v in sx.sync_scores(
                    judge, real.crops, log_mel(drive_audio["own"], SAMPLE_RATE),
                    int(settings["sync_max_offset"]), real.valid).items()})
                metrics["groundtruth_landmark_rate"] = float(real.found.mean())
                metrics.update({f"groundtruth_{k}": v for k, v in pause_openings(
                    np.nan_to_num(real.opening), real.found, drive_audio["own"], real.n,
                    float(settings["pause_dbfs"])).items()})
            scores = score(result, real, drive_audio[drive], judge, settings)
            metrics.update({f"{set_name}_{drive}_{k}": v for k, v in scores.items()})
            dubs[(set_name, drive)] = result.out
    save_grid(Path(grid_path), real, dubs, frames[lo:hi], settings, actor)
    shutil.rmtree(work, ignore_errors=True)
    return metrics


def synthesise_speech(text: str | None, path: Path, n_frames: int, settings: Mapping) -> Path | None:
    """``text`` spoken by espeak-ng (Debian's TTS; scripts/setup.sh installs it), resampled to 16 kHz
    and cut / padded with silence to ``n_frames`` → the 'tts' drive. None when no text is set;
    raises when text is set but espeak-ng is missing (a dropped drive would go unnoticed)."""
    if not text:
        return None
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ReenactError("reenact.tts_text is set but espeak-ng is not installed: apt-get install espeak-ng "
                           "(scripts/setup.sh does it as root) or set reenact.tts_text: null")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run([exe, "-v", str(settings.get("tts_voice", "en-us")), "-s", str(int(settings.get("tts_wpm", 150))),
                    "-w", str(raw), text], check=True, capture_output=True)
    speech = read_audio(raw, SAMPLE_RATE)
    need = round(n_frames / FPS * SAMPLE_RATE)
    write_audio(path, np.pad(speech[:need], (0, max(0, need - len(speech)))).astype(np.float32), SAMPLE_RATE)
    return path


def save_grid(path: Path, real: RealTest, dubs: Mapping[tuple[str, str], Path], frames: np.ndarray,
              settings: Mapping, title: str, n_cols: int = 6) -> Path:
    """Mouth close-ups on ``n_cols`` evenly spaced frames with a face: real | each dub (rows)."""
    ids = np.flatnonzero(real.valid)
    ids = ids[np.linspace(0, len(ids) - 1, n_cols).round().astype(int)]
    size = int(settings["lmd_size"])
    top, bottom, left, right = (round(f * size) for f in GRID_MOUTH_BOX)

    def row(images: np.ndarray) -> np.ndarray:
        return np.concatenate([images[k][top:bottom, left:right] for k in ids], axis=1)

    rows = [("real", row(real.big))]
    for (set_name, drive), video in dubs.items():
        out, _ = read_video(video)
        n = min(len(out), real.n)
        rows.append((f"{set_name} · {drive}", row(crops_of(out[:n], real.affines, np.arange(n), real.res, size))))
    fig = Figure(figsize=(1.6 * n_cols, 1.0 * len(rows) + 0.6))   # no pyplot: no GUI backend, no global state
    axes = fig.subplots(len(rows), 1)
    for ax, (label, image) in zip(np.atleast_1d(axes), rows):
        ax.imshow(image)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{title}: test frames {', '.join(map(str, ids))}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def next_actor(actor: str, actors: Sequence[str]) -> str | None:
    """The held-out actor after ``actor`` (cyclic) whose speech drives the 'other' dub; None when alone."""
    others = [a for a in actors if a != actor]
    if not others:
        return None
    return actors[(actors.index(actor) + 1) % len(actors)] if actor in actors else others[0]


def reenact_settings(profile: str | None, params_path: str | os.PathLike | None) -> dict:
    return stage_config("reenact", profile, params_path=params_path)


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--actor", required=True)
    ap.add_argument("--study-section", default="real_study",
                    help="params section whose identities are the held-out actors (the next one drives 'other')")
    ap.add_argument("--cache-root", required=True)
    ap.add_argument("--raw-dir", required=True)
    ap.add_argument("--out", required=True, help="folder for the dubs and the frame grid")
    ap.add_argument("--grid", required=True, help="PNG of mouth close-ups: real | every dub")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args(argv)
    settings = reenact_settings(args.profile, args.params)
    actors = list(stage_config(args.study_section, args.profile, params_path=args.params)["identities"])
    other = next_actor(args.actor, actors)
    try:
        metrics = reenact_actor(args.actor, other, args.cache_root, args.raw_dir, settings["model_sets"],
                                settings["judge"], args.out, args.grid, settings, settings["profile"], args.params)
    except ReenactError as err:
        raise SystemExit(f"error: {err}") from None
    write_json(args.metrics, metrics)
    write_settings(args.metrics, settings)
    return metrics


if __name__ == "__main__":
    main()
