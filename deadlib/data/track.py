"""Face tracking: MediaPipe FaceMesh per frame → one consistent face track → temporal smoothing.

Why this shape: the dubbing pipeline needs *one* person per video (the speaker) with a landmark
mesh on every frame where that person is visible. MediaPipe's legacy FaceMesh solution (video
mode, ``max_num_faces`` ≥ 2, refined landmarks) gives per-frame meshes but no identities, so
detections are linked frame to frame into tracklets here (nearest centre, gated by face size,
surviving gaps of up to ``max_gap`` frames) and one tracklet is selected:

* ``largest`` (default) — the tracklet with the largest median face size: the main speaker
  in interview/talking-head footage is the face closest to the camera;
* ``central`` — the tracklet whose median centre is nearest the image centre;
* ``longest`` — the tracklet seen on the most frames;
* ``point:X,Y`` — the tracklet whose median centre is nearest the point (X, Y), given as fractions
  of the frame's width and height (e.g. ``point:0.7,0.4``): a face the user picked on a frame
  (the studio's face thumbnails) when it is neither the largest, the most central nor the longest.

Tracklets seen on fewer than ``min_track_fraction`` × the longest tracklet's frames are not
eligible (a background face glimpsed for a few frames never wins). Frames where the selected
face is absent are FLAGGED (``valid`` False, landmarks NaN), never dropped: they are excluded
from training windows and passed through unchanged when dubbing.

Landmarks are in pixels of the *source* frame: x right (x·W), y down (y·H), z = depth in the
same units as x (z·W, larger = farther), matching ``deadlib.data.raster``. Large inputs (4K) are
tracked on frames downscaled to ``max_side`` and the coordinates are scaled back.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

import numpy as np
from scipy.signal import savgol_filter

from deadlib.data.facemesh import N_LANDMARKS

SELECT_POLICIES = ("largest", "central", "longest")  # + "point:X,Y" (parse_select)
SMOOTHING_METHODS = ("savgol", "one_euro", "none")


class TrackError(ValueError):
    """Tracking cannot go on: bad settings, or no usable face in the video."""


class NoFaceError(TrackError):
    """No face was found on any frame of the video; the video cannot be used for training."""


@dataclass
class TrackSettings:
    """How to detect, link, select and smooth faces (the ``prepare.track`` params)."""

    max_side: int | None = 1280  # frames are downscaled so the longer side ≤ this for tracking
    max_faces: int = 2  # MediaPipe max_num_faces (≥ 2 so a second face can be seen and rejected)
    select: str = "largest"  # largest | central | longest | point:X,Y (see module docstring)
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    max_gap: int = 50  # frames a tracklet may be unseen and still be continued
    link_distance: float = 0.5  # max centre jump between linked detections, in face sizes
    min_track_fraction: float = 0.25  # eligibility: ≥ this × frames of the longest tracklet
    smoothing: dict = field(default_factory=lambda: {"method": "savgol", "window": 5, "polyorder": 2})

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> "TrackSettings":
        """Build from a params mapping; unknown keys raise so typos do not pass silently."""
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise TrackError(f"unknown prepare.track keys {sorted(unknown)}; "
                             f"valid keys: {sorted(cls.__dataclass_fields__)}")
        settings = cls(**cfg)
        parse_select(settings.select)  # raises on a typo
        if settings.max_faces < 1:
            raise TrackError(f"prepare.track.max_faces must be ≥ 1, got {settings.max_faces}")
        return settings


@dataclass
class FaceTrack:
    """The selected face of one video, frame-aligned with the decoded 25 fps frames."""

    landmarks: np.ndarray  # (N, 468, 3) float32 source pixels; NaN where not valid
    valid: np.ndarray  # (N,) bool: the selected face was detected on this frame
    faces_seen: np.ndarray  # (N,) int16: faces MediaPipe returned on this frame
    n_tracklets: int  # distinct faces (tracklets) found in the video
    frame_size: tuple[int, int]  # (H, W) of the source frames

    @property
    def n_frames(self) -> int:
        return len(self.valid)


# ----------------------------------------------------------------------------- geometry helpers


def face_boxes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding-box centre (..., 2) and size = max(width, height) (...,) of meshes (..., V, ≥2)."""
    xy = landmarks[..., :2]
    lo, hi = xy.min(axis=-2), xy.max(axis=-2)
    return (lo + hi) / 2, (hi - lo).max(axis=-1)


# ----------------------------------------------------------------------------- detection


def import_mediapipe():
    """``mediapipe``, imported on first use (heavy, and only tracking needs it) without keeping its caller's stack.

    mediapipe keeps the ImportError of its optional ``sounddevice`` import (``audio_record.sd_error``);
    the error's traceback reaches, through ``f_back``, every frame on the stack at the first import —
    e.g. prepare's ``analyse_video`` with the whole video's landmarks, crop boxes and audio (≈ 28 kB a
    frame), held for the life of the process. Dropping the traceback frees them when they return.
    """
    import mediapipe

    record = sys.modules.get("mediapipe.tasks.python.audio.core.audio_record")
    error = getattr(record, "sd_error", None)
    if isinstance(error, BaseException):
        error.__traceback__ = error.__context__ = error.__cause__ = None
    return mediapipe


class FaceMeshDetector(contextlib.AbstractContextManager):
    """MediaPipe FaceMesh (legacy solution API, video mode): RGB frame → list of (468, 3) meshes."""

    def __init__(self, settings: TrackSettings):
        mp = import_mediapipe()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=settings.max_faces, refine_landmarks=True,
            min_detection_confidence=settings.min_detection_confidence,
            min_tracking_confidence=settings.min_tracking_confidence)

    def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
        """Meshes (468, 3) in pixels of ``frame`` (H, W, 3) uint8 RGB (iris points dropped)."""
        h, w = frame.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(frame))
        meshes = []
        for face in result.multi_face_landmarks or []:
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark[:N_LANDMARKS]], np.float32)
            meshes.append(pts * np.array([w, h, w], np.float32))
        return meshes

    def __exit__(self, *exc) -> None:
        self._mesh.close()


# ----------------------------------------------------------------------------- linking + selection


@dataclass
class _Tracklet:
    frames: list[int] = field(default_factory=list)
    meshes: list[np.ndarray] = field(default_factory=list)
    centres: list[np.ndarray] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)


def link_detections(detections: Iterable[list[np.ndarray]], settings: TrackSettings) -> list[_Tracklet]:
    """Greedy frame-to-frame linking of per-frame meshes into tracklets (nearest centre, gated)."""
    tracklets: list[_Tracklet] = []
    for t, meshes in enumerate(detections):
        claimed: set[int] = set()
        for mesh in meshes:
            centre, size = face_boxes(mesh)
            best, best_dist = None, settings.link_distance
            for k, tr in enumerate(tracklets):
                if k in claimed or t - tr.frames[-1] > settings.max_gap:
                    continue
                dist = np.linalg.norm(centre - tr.centres[-1]) / max(tr.sizes[-1], size, 1e-6)
                if dist < best_dist:
                    best, best_dist = k, dist
            if best is None and any(t == tr.frames[-1] and
                                    np.linalg.norm(centre - tr.centres[-1]) < 0.3 * size for tr in tracklets):
                continue  # a duplicate detection of a face already linked on this frame
            if best is None:
                tracklets.append(_Tracklet())
                best = len(tracklets) - 1
            claimed.add(best)
            tr = tracklets[best]
            tr.frames.append(t), tr.meshes.append(mesh), tr.centres.append(centre), tr.sizes.append(float(size))
    return tracklets


def parse_select(select: str) -> tuple[str, tuple[float, float] | None]:
    """``prepare.track.select`` → (policy, point): a policy of SELECT_POLICIES with point None, or
    ("point", (X, Y)) for ``point:X,Y`` with X, Y fractions of the frame's width and height."""
    if select in SELECT_POLICIES:
        return select, None
    if isinstance(select, str) and select.startswith("point:"):
        try:
            x, y = (float(v) for v in select[len("point:"):].split(","))
        except ValueError:
            x = y = float("nan")
        if 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0:
            return "point", (x, y)
    raise TrackError(f"prepare.track.select={select!r}; choose one of {SELECT_POLICIES} or point:X,Y "
                     "(X, Y fractions of the frame's width and height, e.g. point:0.7,0.4)")


def select_tracklet(tracklets: list[_Tracklet], policy: str, frame_size: tuple[int, int],
                    min_fraction: float = 0.25) -> int:
    """Index of the tracklet chosen by ``policy`` (parse_select) among those long enough to be eligible;
    ``frame_size`` (H, W) in the pixels of the tracklets' centres."""
    policy, point = parse_select(policy)
    if not tracklets:
        raise NoFaceError("no face detected on any frame")
    lengths = np.array([len(tr.frames) for tr in tracklets])
    eligible = np.flatnonzero(lengths >= min_fraction * lengths.max())
    size = np.array([np.median(tracklets[k].sizes) for k in eligible])
    if policy == "largest":
        score = size
    elif policy in ("central", "point"):
        target = np.array(frame_size[::-1], np.float32) * (np.array(point, np.float32) if point else 0.5)  # (x, y)
        offset = [np.median(np.linalg.norm(np.array(tracklets[k].centres) - target, axis=1)) for k in eligible]
        score = -np.array(offset)
    else:  # longest
        score = lengths[eligible] + size / (size.max() + 1.0)  # ties broken by size
    return int(eligible[int(np.argmax(score))])


def track_frames(frames: Iterable[np.ndarray], settings: TrackSettings,
                 frame_size: tuple[int, int] | None = None, progress=None) -> FaceTrack:
    """Detect, link and select one face over frames (N, h, w, 3) → FaceTrack in source pixels.

    ``frame_size`` (H, W) is the source size when ``frames`` were downscaled for tracking;
    coordinates are scaled back to it. Raises NoFaceError when no face is found at all.
    """
    detections, seen, shape = [], [], None
    with FaceMeshDetector(settings) as detect:
        for frame in frames:
            shape = frame.shape[:2]
            meshes = detect(frame)
            detections.append(meshes)
            seen.append(len(meshes))
            if progress:
                progress(1)
    if shape is None:
        raise TrackError("no frames to track")
    frame_size = tuple(frame_size or shape)
    scale = frame_size[1] / shape[1]  # source px per tracking px (aspect ratio is kept)
    n = len(detections)
    tracklets = link_detections(detections, settings)
    landmarks = np.full((n, N_LANDMARKS, 3), np.nan, np.float32)
    valid = np.zeros(n, bool)
    if tracklets:
        chosen = tracklets[select_tracklet(tracklets, settings.select, shape, settings.min_track_fraction)]
        landmarks[chosen.frames] = np.stack(chosen.meshes) * scale
        valid[chosen.frames] = True
    return FaceTrack(landmarks=landmarks, valid=valid, faces_seen=np.array(seen, np.int16),
                     n_tracklets=len(tracklets), frame_size=frame_size)


# ----------------------------------------------------------------------------- smoothing


def valid_segments(valid: np.ndarray) -> Iterator[slice]:
    """Maximal runs of consecutive True in ``valid`` (N,) as slices."""
    padded = np.concatenate([[False], np.asarray(valid, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2]):
        yield slice(int(start), int(stop))


def one_euro(x: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.05,
             d_cutoff: float = 1.0) -> np.ndarray:
    """Causal One-Euro filter along axis 0 of (N, ...) (Casiez et al. 2012): less lag when moving fast."""
    def alpha(cutoff):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)

    out = np.empty_like(x, dtype=np.float64)
    out[0] = prev = x[0]
    deriv = np.zeros_like(x[0], dtype=np.float64)
    for t in range(1, len(x)):
        deriv = deriv + alpha(d_cutoff) * ((x[t] - prev) * fps - deriv)
        a = alpha(min_cutoff + beta * np.abs(deriv))
        prev = out[t] = prev + a * (x[t] - prev)
    return out.astype(x.dtype)


def smooth_series(x: np.ndarray, valid: np.ndarray, spec: Mapping | None, fps: float = 25.0) -> np.ndarray:
    """Smooth (N, ...) along time within each valid run; invalid frames are returned unchanged.

    ``spec``: ``{"method": "savgol", "window": 5, "polyorder": 2}`` (zero-lag, window in frames,
    shrunk to the run length), ``{"method": "one_euro", "min_cutoff": 1.0, "beta": 0.05}``
    (causal, adaptive) or ``{"method": "none"}``. Runs are smoothed separately so a face that
    leaves and comes back is never blended across the gap.
    """
    spec = dict(spec or {"method": "none"})
    method = spec.pop("method", "savgol")
    if method not in SMOOTHING_METHODS:
        raise TrackError(f"unknown smoothing method {method!r}; choose one of {SMOOTHING_METHODS}")
    out = np.array(x, copy=True)
    if method == "none":
        return out
    for seg in valid_segments(valid):
        run = x[seg]
        if method == "savgol":
            polyorder = int(spec.get("polyorder", 2))
            window = min(int(spec.get("window", 5)), len(run) - (1 - len(run) % 2))  # odd, ≤ run
            if window > polyorder and window >= 3:
                out[seg] = savgol_filter(run, window, polyorder, axis=0, mode="interp")
        else:
            out[seg] = one_euro(run, fps, **spec)
    return out


def fill_gaps(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, ...) with invalid frames filled by linear interpolation between valid neighbours
    (held constant before the first / after the last valid frame). Needs ≥ 1 valid frame."""
    valid = np.asarray(valid, bool)
    if not valid.any():
        raise NoFaceError("cannot fill gaps: no valid frame")
    idx = np.flatnonzero(valid)
    flat = x.reshape(len(x), -1)
    out = np.empty_like(flat)
    t = np.arange(len(x))
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t, idx, flat[idx, j])
    return out.reshape(x.shape)
