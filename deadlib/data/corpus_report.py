"""Corpus overview: what videos a raw folder holds and whether their audio predicts the mouth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deadlib.core.config import write_settings
from deadlib.core.files import write_json
from deadlib.data.lipsync_probe import audio_predicts_mouth
from deadlib.data.video import (
    FPS,
    SAMPLE_RATE,
    MediaError,
    probe_video,
    read_audio,
    read_video,
)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".mpg", ".mpeg", ".webm")


def list_videos(raw_dir: str | Path) -> list[Path]:
    """Video files directly inside ``raw_dir`` (sorted), by suffix."""
    return sorted(p for p in Path(raw_dir).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def inventory(videos: list[Path]) -> list[dict]:
    """One row per video: size, fps, duration, audio, or the error that makes it unusable."""
    rows = []
    for path in videos:
        try:
            info = probe_video(path)
            rows.append({"video": path.stem, "size": f"{info.width}x{info.height}", "fps": round(info.fps, 2),
                         "seconds": round(info.duration_s, 2), "audio": info.has_audio, "error": ""})
        except MediaError as err:
            rows.append({"video": path.stem, "size": "", "fps": 0, "seconds": 0, "audio": False, "error": str(err)})
    return rows


def first_frames(videos: list[Path], at_s: float = 1.0) -> list[np.ndarray]:
    """One frame per video (``at_s`` seconds in, 25 fps) for a thumbnail grid."""
    return [read_video(p, max_frames=int(at_s * FPS) + 1)[0][-1] for p in videos]


def lipsync_signal(videos: list[Path], max_seconds: float) -> dict | None:
    """Audio→jaw R² (and misaligned control) over videos that carry synthetic ground truth."""
    clips = []
    for path in videos:
        truth = path.with_suffix(".truth.npz")
        if not truth.exists():
            continue
        n = int(max_seconds * FPS)
        jaw = np.load(truth)["articulation"][:n, 0]
        audio = read_audio(path)[: int(len(jaw) / FPS * SAMPLE_RATE)]
        clips.append((audio, jaw))
    return audio_predicts_mouth(clips) if clips else None


def write_report(metrics_path: str | Path, rows: list[dict], signal: dict | None, settings: dict) -> dict:
    """The corpus_report stage's flat metrics (video count, unusable videos, seconds, the audio→jaw
    probe when the corpus has synthetic ground truth) and its settings, both written atomically."""
    metrics = {"videos": len(rows), "unusable_videos": sum(bool(r["error"]) or not r["audio"] for r in rows),
               "total_seconds": round(sum(r["seconds"] for r in rows), 2)}
    if signal:
        metrics.update({"audio_to_jaw_r2": round(signal["r2"], 4),
                        "audio_to_jaw_r2_misaligned": round(signal["r2_misaligned"], 4)})
    write_json(metrics_path, metrics)
    write_settings(metrics_path, settings)
    return metrics
