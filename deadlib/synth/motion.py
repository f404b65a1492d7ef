"""Non-speech facial motion for the embedded corpus: eye blinks and head pose tracks.

Real talking-head footage has blinks and head motion that the mouth model must learn to ignore;
the synthetic corpus therefore adds them, independently of the speech (except for an optional,
mild speech-correlated nod). Tracks are sampled at video-frame centres, (i + 0.5) / fps.

Head pose columns and bounds (hard limits, reached only asymptotically through a tanh):

=======  ==========  ======  ===========================================
column   unit        bound   notes
=======  ==========  ======  ===========================================
yaw      degrees     ±15     turning left/right
pitch    degrees     ±8      nodding; carries the optional speech nod
roll     degrees     ±5      tilting
tx, ty   face width  ±0.04   image-plane translation of the head
scale    relative    ±0.05   scale delta (distance to camera)
=======  ==========  ======  ===========================================
"""

from __future__ import annotations

import numpy as np
from scipy import signal
from scipy.ndimage import gaussian_filter1d

POSE_COLUMNS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
POSE_LIMITS = np.array([15.0, 8.0, 5.0, 0.04, 0.04, 0.05])  # (6,) hard bounds, see table
POSE_SPREAD = 0.45  # std of the pre-limit motion, as a fraction of each bound
POSE_TAU_S = np.array([0.8, 0.6, 1.0, 1.0, 1.0, 1.3])  # (6,) per-stage time constants
NOD_DEG = 3.0  # pitch (deg) per unit of smoothed speech activity above its mean


def _raised_cosine(x: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 ramp over x in [0, 1] (clipped outside)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def blink_track(rng: np.random.Generator, n_frames: int, fps: float,
                interval_s: tuple[float, float] = (2.0, 6.0),
                duration_s: tuple[float, float] = (0.15, 0.25)) -> np.ndarray:
    """Eyelid closure per frame, (N,) in [0, 1] (1 = closed).

    Blinks start every ``interval_s`` seconds (uniform) and last ``duration_s``: a fast close
    (35 %), a short full closure (15 %) and a slower re-opening (50 %), as in real blinks.
    """
    if n_frames < 0 or fps <= 0:
        raise ValueError(f"need n_frames >= 0 and fps > 0, got {n_frames}, {fps}")
    t = (np.arange(n_frames) + 0.5) / fps  # (N,) frame-centre times
    closure = np.zeros(n_frames)
    start = rng.uniform(0.0, interval_s[1])
    while start < n_frames / fps:
        dur = rng.uniform(*duration_s)
        close, hold = 0.35 * dur, 0.15 * dur
        u = t - start
        shape = np.where(u < close, _raised_cosine(u / close),
                         1.0 - _raised_cosine((u - close - hold) / (dur - close - hold)))
        closure = np.maximum(closure, np.where((u >= 0) & (u <= dur), shape, 0.0))
        start += rng.uniform(*interval_s)
    return closure


def _smooth_noise(rng: np.random.Generator, n: int, tau: float, stages: int = 3) -> np.ndarray:
    """Stationary unit-variance noise (n,) through ``stages`` identical one-pole low-passes.

    ``tau`` is each stage's time constant in samples. Three stages make velocity and
    acceleration continuous (no jerky head); a burn-in removes the start-up transient.
    """
    a = np.exp(-1.0 / max(tau, 1e-3))
    burn = int(12 * tau) + 1
    y, impulse = rng.standard_normal(n + burn), np.eye(1, 2 * burn + 1)[0]
    for _ in range(stages):
        y = signal.lfilter([1.0 - a], [1.0, -a], y)
        impulse = signal.lfilter([1.0 - a], [1.0, -a], impulse)
    return y[burn:] / np.sqrt(np.sum(impulse**2))  # stationary std = ||impulse response||


def head_pose_track(rng: np.random.Generator, n_frames: int, fps: float,
                    speech_activity: np.ndarray | None = None) -> np.ndarray:
    """Smooth random head pose per frame, (N, 6) [yaw, pitch, roll, tx, ty, scale].

    Each column is smooth band-limited noise soft-limited by tanh to POSE_LIMITS. When
    ``speech_activity`` (N,) is given (e.g. jaw_open), a mild nod follows its slow envelope.
    """
    if n_frames < 0 or fps <= 0:
        raise ValueError(f"need n_frames >= 0 and fps > 0, got {n_frames}, {fps}")
    motion = np.stack([_smooth_noise(rng, n_frames, tau * fps) for tau in POSE_TAU_S], axis=1)
    motion *= POSE_SPREAD * POSE_LIMITS  # (N, 6) in the units of each column
    if speech_activity is not None:
        activity = np.asarray(speech_activity, dtype=float)
        if activity.shape != (n_frames,):
            raise ValueError(f"speech_activity must have shape ({n_frames},), "
                             f"got {activity.shape}")
        if n_frames:
            envelope = gaussian_filter1d(activity, 0.15 * fps, mode="nearest")
            motion[:, 1] += NOD_DEG * (envelope - envelope.mean())
    return POSE_LIMITS * np.tanh(motion / POSE_LIMITS)
