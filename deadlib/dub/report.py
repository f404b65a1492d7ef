"""Looking at a dub (notebook 06, tests): mouth-opening curves and frame comparisons.

Three views of the mouth opening per output frame, each correlated with the speech energy of the
NEW audio and of the video's OWN audio (on the same timeline):

* ``mouth_open``: the dubbed mesh's inner-lip gap (``face3d.mouth_gap``) — what the audio asked for;
* ``dark_out``: a PROXY of the mouth opening SEEN in the output pixels — darkness of a box around
  the lips in the output crops (``dub_render.mouth_darkness``); ``dark_src``: the same on the source;
* ``mouth_open_video``: the video's own tracked mouth opening.
A dub works when the first two follow the new audio and no longer the own audio.

Dub evaluation with UNSEEN speech (issue 15): the driving audio is a held-out speaker's test part
(``heldout_test_audio``: no model trained on it). ``expert_dub_scores`` scores the output crops
with the project's sync expert (``deadlib.sync.expert``; LSE-style confidence, distance and the
AV offset), next to the driving speaker's own test frames (``_real``: what real lips reach) and
the undubbed video (``_src``: lips that do not follow this audio). ``pause_check`` compares the
dubbed mouth opening in the driving audio's pauses and speech with the driving speaker's real
mouth at the same moments; ``noise_check`` compares dubs of the same frames with a white-noise
floor (−60 dBFS by default, README's level) and with digital silence (the silence gate's exact
neutral).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np

from deadlib.core.config import write_settings
from deadlib.core.files import write_json
from deadlib.core.measures import pearson
from deadlib.data import face3d
from deadlib.data.audio import log_mel, speech_energy
from deadlib.data.dataset import load_cache
from deadlib.data.video import (
    FPS,
    SAMPLE_RATE,
    MediaError,
    read_audio,
    read_video,
    write_audio,
)
from deadlib.dub.render import FrameSource, mouth_darkness


def source_frames(result) -> np.ndarray:
    """The video's frames on the dub's timeline (n, H, W, 3) — what the output replaced."""
    source = FrameSource(result.video, result.timeline, FPS)
    try:
        return np.stack([source[int(k)] for k in result.timeline])
    finally:
        source.close()


def mouth_curves(result, new_audio: np.ndarray, own_audio: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-output-frame curves (see the module docstring); ``own_audio`` None for a silent video."""
    cache = load_cache(result.cache_folder)
    track, res = cache["track"], cache["frames"].shape[1]
    out, _ = read_video(result.out)
    n = min(len(out), result.n_frames)
    curves = {"energy_new": speech_energy(new_audio, SAMPLE_RATE, n),
              "mouth_open": result.mouth_open[:n], "mouth_open_video": result.mouth_open_video[:n],
              "dark_out": mouth_darkness(out[:n], track, result.timeline[:n], res),
              "dark_src": mouth_darkness(source_frames(result)[:n], track, result.timeline[:n], res)}
    if own_audio is not None:
        own = speech_energy(own_audio, SAMPLE_RATE, len(track["valid"]))
        curves["energy_own"] = own[result.timeline[:n]]
    return curves


def correlations(curves: Mapping[str, np.ndarray], valid: np.ndarray | None = None) -> dict[str, float]:
    """Flat {"<curve>_r_new": r, "<curve>_r_own": r} over frames with a face."""
    keep = slice(None) if valid is None else np.asarray(valid[: len(curves["energy_new"])], bool)
    out = {}
    for name in ("mouth_open", "dark_out", "dark_src", "mouth_open_video"):
        for energy, tag in (("energy_new", "new"), ("energy_own", "own")):
            if energy in curves:
                a, b = curves[name][keep], curves[energy][keep]
                out[f"{name}_r_{tag}"] = pearson(a, b)
    return out


def plot_mouth_curves(curves: Mapping[str, np.ndarray], title: str = ""):
    """Standardised curves over time: the new audio's energy against the dubbed / rendered / own mouth."""
    z = lambda x: (x - x.mean()) / (x.std() + 1e-9)  # noqa: E731
    t = np.arange(len(curves["energy_new"])) / FPS
    fig, axes = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
    axes[0].plot(t, z(curves["energy_new"]), "k", lw=2, label="new audio energy")
    axes[0].plot(t, z(curves["mouth_open"]), label="dubbed mesh mouth opening")
    axes[0].plot(t, z(curves["dark_out"]), label="output pixels: mouth-darkness proxy")
    if "energy_own" in curves:
        axes[1].plot(t, z(curves["energy_own"]), "k", lw=2, label="video's own audio energy")
    axes[1].plot(t, z(curves["mouth_open_video"]), label="video's own mouth opening")
    axes[1].plot(t, z(curves["dark_src"]), label="source pixels: mouth-darkness proxy")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
        ax.set_ylabel("z-score")
    axes[1].set_xlabel("output time (s)")
    axes[0].set_title(title)
    fig.tight_layout()
    return fig


def output_crops(frames: np.ndarray, result) -> np.ndarray:
    """Face crops (n, S, S, 3) of full frames shown at the dub's output times (the video's crop boxes)."""
    from deadlib.data.crop import crop_frame

    cache = load_cache(result.cache_folder)
    affines, res = cache["track"]["crop"], cache["frames"].shape[1]
    return np.stack([crop_frame(f, affines[k], res) for f, k in zip(frames, result.timeline)])


def side_by_side(source: np.ndarray, dubbed: np.ndarray) -> np.ndarray:
    """(n, H, 2W, 3) frames: source | dub."""
    n = min(len(source), len(dubbed))
    h, w = min(source.shape[1], dubbed.shape[1]), min(source.shape[2], dubbed.shape[2])
    return np.concatenate([source[:n, :h, :w], dubbed[:n, :h, :w]], axis=2)


def frame_grid(source: np.ndarray, dubbed: np.ndarray, indices, crops: np.ndarray | None = None, title: str = ""):
    """Static grid: one column per frame index; rows source, dub (+ the rendered crops when given)."""
    rows = [("source", source), ("dub", dubbed)] + ([("rendered crop", crops)] if crops is not None else [])
    fig, axes = plt.subplots(len(rows), len(indices), figsize=(2.2 * len(indices), 2.3 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c, k in enumerate(indices):
            axes[r, c].imshow(images[k])
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            axes[0, c].set_title(f"frame {k}", fontsize=8)
        axes[r, 0].set_ylabel(label)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def own_audio(video) -> np.ndarray | None:
    """The video's own sound track (16 kHz mono), None when it has none."""
    try:
        return read_audio(video, SAMPLE_RATE)
    except MediaError:  # a video without sound simply has no own-audio curve
        return None


def heldout_test_audio(cache_root: str | os.PathLike, raw_dir: str | os.PathLike, name: str,
                       out_path: str | os.PathLike) -> tuple[Path, tuple[int, int]]:
    """Write the audio of prepared identity ``name``'s test part (frames [lo, hi) of its report)
    from its source video under ``raw_dir`` as a 16 kHz wav → (path, (lo, hi))."""
    report = json.loads((Path(cache_root) / name / "report.json").read_text())
    lo, hi = report["splits"]["test"]
    if hi <= lo:
        raise ValueError(f"{name} has no test part: it is a {report.get('group', 'prior')} video and prepare "
                         "gives a test part to held-out videos only; drive with a held-out identity's speech")
    audio = read_audio(Path(raw_dir) / Path(report["source"]).name, SAMPLE_RATE)
    write_audio(out_path, audio[round(lo / FPS * SAMPLE_RATE):round(hi / FPS * SAMPLE_RATE)], SAMPLE_RATE)
    return Path(out_path), (int(lo), int(hi))


def expert_dub_scores(expert_path: str | os.PathLike, result, dubbed: np.ndarray, audio: np.ndarray,
                      cache_root: str | os.PathLike, speaker: str, span: tuple[int, int],
                      max_offset: int = 15) -> dict[str, float]:
    """Sync-expert LSE-C / LSE-D / offset of the dub's crops with the driving ``audio``
    (``sync_expert_*``), of the driving ``speaker``'s real frames ``span`` with the same audio
    (``*_real``) and of the undubbed source frames with it (``*_src``)."""
    from deadlib.sync import expert as sx

    model, _ = sx.load_expert(expert_path)
    mel = log_mel(audio, SAMPLE_RATE)
    n = min(len(dubbed), result.n_frames)
    valid = np.asarray(result.valid[:n], bool)
    out = dict(sx.sync_scores(model, output_crops(dubbed[:n], result), mel, max_offset, valid))
    out.update({f"{k}_src": v for k, v in sx.sync_scores(model, output_crops(source_frames(result)[:n], result),
                                                         mel, max_offset, valid).items()})
    cache = load_cache(Path(cache_root) / speaker)
    clip = sx.SyncClip.from_range(speaker, cache["frames"], cache["mel"], cache["track"]["valid"], *span)
    out.update({f"{k}_real": v for k, v in sx.sync_scores(model, clip.frames, clip.mel, max_offset, clip.valid).items()})
    return out


def pause_check(result, audio: np.ndarray, cache_root: str | os.PathLike, speaker: str, span: tuple[int, int],
                pause_dbfs: float = -45.0) -> dict[str, float]:
    """Mouth opening (``face3d.mouth_gap``) of the dubbed meshes in the driving audio's pauses
    (frames quieter than ``pause_dbfs`` RMS) and in its speech, and the driving speaker's real
    tracked mouth at the same frames of its test part (``*_real``)."""
    n = result.n_frames
    level = 20 * np.log10(np.maximum(speech_energy(audio, SAMPLE_RATE, n), 1e-10))   # dBFS per frame
    with np.load(Path(cache_root) / speaker / "track.npz") as track:
        real = face3d.mouth_gap(track["mesh_crop"][span[0]:span[1]])[:n]
        real_valid = track["valid"][span[0]:span[1]][:n]
    pause, face = level[: len(real)] < pause_dbfs, np.asarray(result.valid[: len(real)], bool)
    out = {"pause_frames": int((pause & face).sum()), "speech_frames": int((~pause & face).sum())}
    for tag, keep in (("pause", pause), ("speech", ~pause)):
        dubbed, truth = keep & face, keep & real_valid
        out[f"mouth_open_{tag}"] = float(result.mouth_open[: len(real)][dubbed].mean()) if dubbed.any() else None
        out[f"mouth_open_{tag}_real"] = float(real[truth].mean()) if truth.any() else None
    return out


def noise_check(noisy, silent) -> dict[str, float]:
    """Two dubs of the same frames, one driven by a noise floor, one by digital silence (the
    gate's exact neutral): the largest and mean |difference| of their dubbed mouth opening."""
    n = min(noisy.n_frames, silent.n_frames)
    keep = np.asarray(noisy.valid[:n], bool) & np.asarray(silent.valid[:n], bool)
    dev = np.abs(noisy.mouth_open[:n] - silent.mouth_open[:n])[keep]
    return {"max_dev": float(dev.max()), "mean_dev": float(dev.mean()),
            "mouth_open_silence": float(silent.mouth_open[:n][keep].mean())}


def noise_audio(path: str | os.PathLike, seconds: float, dbfs: float | None, seed: int = 0) -> Path:
    """Write ``seconds`` of white noise at ``dbfs`` RMS (None: digital silence) as a 16 kHz wav."""
    n = int(seconds * SAMPLE_RATE)
    noise = np.zeros(n, np.float32) if dbfs is None else \
        (10 ** (dbfs / 20) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    write_audio(path, noise, SAMPLE_RATE)
    return Path(path)


def write_stage_metrics(metrics_path: str | os.PathLike, result, scores: dict, settings: dict, real=None,
                        real_scores: dict | None = None, extra: Mapping[str, float] | None = None) -> dict:
    """The dub stage's flat metrics — frames, end-to-end frames/s, the synthetic dub's sync
    correlations (``synth_*``), ``extra`` (e.g. sync-expert, pause and noise checks, already
    prefixed) and, when a real clip was dubbed, its own (``real_*``) — and the dub settings it
    ran with, both written atomically."""
    metrics = {"frames": result.n_frames, "frames_per_s": result.n_frames / result.timings["total"],
               **{f"synth_{k}": v for k, v in scores.items()}, **dict(extra or {})}
    if real is not None:
        metrics.update({f"real_{k}": v for k, v in (real_scores or {}).items()}, real_frames=real.n_frames)
    write_json(metrics_path, metrics)
    write_settings(metrics_path, settings)
    return metrics
