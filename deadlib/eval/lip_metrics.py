"""Mouth metrics of the evaluation harness: landmark distance (LMD) of generated vs real crops,
and the project's audio–mouth sync proxy with a probe fitted on the prior identities.

* Landmarks: MediaPipe FaceMesh (``deadlib.data.track.FaceMeshDetector``) on each crop, upscaled to
  ``upscale`` px first (FaceMesh is unreliable on 64–128 px faces) and mapped back to crop px.
  The same detector runs on generated and real crops, in two separate video-mode sessions.
* LMD: mean distance of the 40 lip landmarks (outer + inner contour) in crop pixels, over the
  frames where both crops were detected (``metrics.lmd``; no centring: in reconstruction mode
  both crops share the same crop window).
* Sync: a ridge probe MEL features → mouth opening (``face3d.mouth_gap`` of the fitted mesh) is
  fitted on the prior identities' training frames; ``metrics.sync_conf_deadlib`` then scores the
  opening measured by FaceMesh on the test crops against the test audio. Not SyncNet LSE-C/D.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from deadlib.data import face3d
from deadlib.data.audio import frame_mel_windows
from deadlib.data.facemesh import load_topology
from deadlib.data.lipsync_probe import ridge_fit
from deadlib.data.track import TrackSettings
from deadlib.eval.metrics import lmd, sync_conf_deadlib

SYNC_MEL_WINDOW = 8  # MEL frames per video frame feature (as lipsync_probe.mel_features)


def lip_ids() -> np.ndarray:
    """(40,) FaceMesh ids of the outer and inner lip contours."""
    topo = load_topology()
    return np.concatenate([topo.lips_outer, topo.lips_inner]).astype(int)


def detect_landmarks(crops: np.ndarray, upscale: int | None = 256, detector=None) -> np.ndarray:
    """FaceMesh landmarks (N, 468, 3) in crop px of crops (N, S, S, 3) uint8; NaN rows where no face.

    ``detector``: a callable frame → list of meshes (default: a fresh ``FaceMeshDetector``)."""
    n, size = len(crops), crops.shape[1]
    out = np.full((n, face3d.N_LANDMARKS, 3), np.nan, np.float32)
    scale = upscale / size if upscale and upscale != size else 1.0

    def run(det) -> None:
        for k, crop in enumerate(crops):
            image = cv2.resize(crop, (upscale, upscale), interpolation=cv2.INTER_CUBIC) if scale != 1 else crop
            meshes = det(np.ascontiguousarray(image))
            if meshes:
                out[k] = meshes[0] / scale

    if detector is not None:
        run(detector)
    else:
        from deadlib.data.track import FaceMeshDetector

        with FaceMeshDetector(TrackSettings(max_faces=1)) as det:
            run(det)
    return out


def landmark_distance(pred_lm: np.ndarray, real_lm: np.ndarray,
                      ids: Sequence[int] | None = None) -> tuple[float | None, float, str | None]:
    """(LMD over frames detected in both, share of such frames, reason when LMD is null)."""
    both = np.isfinite(pred_lm).all((1, 2)) & np.isfinite(real_lm).all((1, 2))   # (N,)
    rate = float(both.mean()) if len(both) else 0.0
    if not both.any():
        return None, rate, (f"FaceMesh found a face in both generated and real crops on none of "
                            f"{len(both)} frames (real: {int(np.isfinite(real_lm).all((1, 2)).sum())} detected)")
    ids = lip_ids() if ids is None else ids
    return lmd(pred_lm[both], real_lm[both], ids=ids), rate, None


def mel_frame_features(mel: np.ndarray, n_frames: int, fps: float = 25.0) -> np.ndarray:
    """(n_frames, 160) per-frame MEL features from a cached log-MEL (M, 80): mean and max of a
    centred 8-row window — ``lipsync_probe.mel_features`` computed from ``mel.npy``."""
    windows = frame_mel_windows(np.asarray(mel, np.float32), n_frames, fps=fps, window=SYNC_MEL_WINDOW)
    return np.concatenate([windows.mean(axis=1), windows.max(axis=1)], axis=1)


def fit_sync_probe(cache_root: str | os.PathLike, names: Sequence[str], fps: float = 25.0,
                   alpha: float = 10.0) -> tuple:
    """Ridge probe MEL features → mouth opening, fitted on the TRAIN frames of ``names`` (prior)."""
    xs, ys = [], []
    for name in names:
        folder = Path(cache_root) / name
        lo, hi = json.loads((folder / "report.json").read_text())["splits"]["train"]
        with np.load(folder / "track.npz") as track:
            valid, mesh = track["valid"], track["mesh_crop"]
        mel = np.load(folder / "mel.npy")
        idx = lo + np.flatnonzero(valid[lo:hi])
        xs.append(mel_frame_features(mel, len(valid), fps)[idx])
        ys.append(face3d.mouth_gap(mesh[idx]))
    if not xs or sum(map(len, ys)) < 50:
        raise ValueError(f"too few prior frames to fit the sync probe ({sum(map(len, ys))}); need >= 50")
    return ridge_fit(np.concatenate(xs), np.concatenate(ys), alpha)


def opening_series(landmarks: np.ndarray, frame_ids: np.ndarray, first: int, length: int) -> tuple[np.ndarray, float]:
    """Mouth opening on frames first..first+length-1 from landmarks of ``frame_ids``; frames
    without a detection (or not evaluated) are linearly interpolated. → (length,), coverage."""
    series = np.full(length, np.nan)
    found = np.isfinite(landmarks).all((1, 2))
    pos = np.asarray(frame_ids) - first
    series[pos[found]] = face3d.mouth_gap(landmarks[found])
    ok = np.isfinite(series)
    if not ok.any():
        return series, 0.0
    t = np.arange(length)
    return np.interp(t, t[ok], series[ok]), float(ok.mean())


def sync_confidence(landmarks: np.ndarray, frame_ids: np.ndarray, mel_feats: np.ndarray, first: int,
                    probe, min_coverage: float = 0.5) -> tuple[float | None, str | None]:
    """``sync_conf_deadlib`` of the detected mouth opening on the test span vs its audio.

    mel_feats (L, D): features of frames first..first+L-1. Null (with the reason) when fewer than
    ``min_coverage`` of the span's frames have a detected mouth or the span is too short."""
    length = len(mel_feats)
    opening, coverage = opening_series(landmarks, frame_ids, first, length)
    if coverage < min_coverage:
        return None, f"mouth detected on {coverage:.0%} of the {length} test frames (< {min_coverage:.0%})"
    try:
        return sync_conf_deadlib(opening, mel_feats, probe), None
    except ValueError as err:
        return None, f"sync_conf_deadlib not computable: {err}"
