"""How much does the audio say about the mouth? A linear probe used to vet a corpus.

A ridge regression from the frame-centred log-MEL window (``audio.frame_mel_windows``) to a
per-frame mouth signal (synthetic ground-truth ``jaw_open`` or a tracked lip distance) is fit
on the first half of every video and scored (R²) on the second half. A control with the audio
shifted by several seconds — same statistics, no alignment — must score far lower; otherwise the
"lip-sync signal" would be leakage from slow trends rather than speech.
"""

from __future__ import annotations

import numpy as np

from deadlib.data.audio import frame_mel_windows, log_mel


def mel_features(audio: np.ndarray, n_frames: int, sample_rate: int = 16000, fps: float = 25.0,
                 window: int = 8) -> np.ndarray:
    """(N, n_mels * 2) per-frame features: mean and max of a short centred MEL window."""
    windows = frame_mel_windows(log_mel(audio, sample_rate), n_frames, fps=fps, window=window,
                                sample_rate=sample_rate)  # (N, window, 80)
    return np.concatenate([windows.mean(axis=1), windows.max(axis=1)], axis=1)


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise ``x`` and fit y ≈ w·x + b; returns (w, mean, std) for ``ridge_predict``."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return np.append(w, y.mean()), mean, std


def ridge_predict(model, x: np.ndarray) -> np.ndarray:
    w, mean, std = model
    return ((x - mean) / std) @ w[:-1] + w[-1]


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1.0 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))


def audio_predicts_mouth(clips: list[tuple[np.ndarray, np.ndarray]], sample_rate: int = 16000,
                         fps: float = 25.0, control_shift_s: float = 3.0) -> dict:
    """R² of audio → mouth signal on held-out halves, and of the misaligned control.

    clips: [(audio (S,), mouth (N,)), ...]. Returns {"r2", "r2_misaligned", "frames"}.
    """
    def split(shift_frames: int):
        train_x, train_y, test_x, test_y = [], [], [], []
        for audio, mouth in clips:
            feats = mel_features(audio, len(mouth), sample_rate, fps)
            feats = np.roll(feats, shift_frames, axis=0)
            half = len(mouth) // 2
            train_x.append(feats[:half]); train_y.append(mouth[:half])
            test_x.append(feats[half:]); test_y.append(mouth[half:])
        return (np.concatenate(train_x), np.concatenate(train_y), np.concatenate(test_x), np.concatenate(test_y))

    scores = {}
    for key, shift in (("r2", 0), ("r2_misaligned", int(control_shift_s * fps))):
        tx, ty, vx, vy = split(shift)
        scores[key] = r2_score(vy, ridge_predict(ridge_fit(tx, ty), vx))
    scores["frames"] = int(sum(len(m) for _, m in clips))
    return scores
