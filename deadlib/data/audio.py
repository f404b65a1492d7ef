"""Speech features aligned to video frames: Wav2Lip-style log-MEL, per-frame MEL windows, energy.

MEL convention (Wav2Lip / StyleSync): 16 kHz audio, pre-emphasis 0.97, |STFT| with an 800-sample
(50 ms) Hann window and a 200-sample (12.5 ms) hop, centred frames (MEL frame ``m`` is centred
at ``m * hop / sample_rate`` s) → 80 MEL frames per second, 3.2 per video frame at 25 fps.
Slaney MEL filters 55–7600 Hz; the magnitude is converted to dB (20·log10, floor 1e-5), clipped to
[MEL_DB_MIN, MEL_DB_MAX] = [-80, 20] dB and mapped linearly to [MEL_MIN, MEL_MAX] = [-4, 4].
Silence therefore maps to exactly MEL_SILENCE = -4, the bottom of the range.
"""

from __future__ import annotations

import librosa
import numpy as np

MEL_DB_MIN, MEL_DB_MAX = -80.0, 20.0  # dB of MEL magnitude mapped to the ends of the range
MEL_MIN, MEL_MAX = -4.0, 4.0  # normalised range
MEL_SILENCE = MEL_MIN  # value of digital silence, also used to pad windows past the audio ends


def _mono(audio: np.ndarray) -> np.ndarray:
    """Validate a mono waveform (n,) and return it as float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got {audio.shape}; average the channels first")
    return audio


def mel_frames_per_second(sample_rate: int = 16000, hop_length: int = 200) -> float:
    """MEL frames per second (80 for 16 kHz with a 200-sample hop)."""
    return sample_rate / hop_length


def log_mel(audio: np.ndarray, sample_rate: int = 16000, n_mels: int = 80, hop_length: int = 200,
            win_length: int = 800, n_fft: int = 800, fmin: float = 55.0, fmax: float = 7600.0,
            preemphasis: float = 0.97) -> np.ndarray:
    """Normalised log-MEL spectrogram (M, n_mels) float32 in [-4, 4], M = 1 + n // hop_length.

    Frame ``m`` is centred at time ``m * hop_length / sample_rate`` (zero-padded STFT); see the
    module docstring for the dB range. ``preemphasis=0`` disables the pre-emphasis filter.
    """
    audio = _mono(audio)
    if preemphasis:
        audio = np.append(audio[:1], audio[1:] - preemphasis * audio[:-1])  # y[t] = x[t] - a·x[t-1]
    spectrum = np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                   center=True, pad_mode="constant"))  # (1 + n_fft // 2, M)
    filters = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    mel_db = 20.0 * np.log10(np.maximum(1e-5, filters @ spectrum))  # (n_mels, M)
    scaled = (mel_db - MEL_DB_MIN) / (MEL_DB_MAX - MEL_DB_MIN)  # [-80, 20] dB → [0, 1]
    normalised = MEL_MIN + (MEL_MAX - MEL_MIN) * np.clip(scaled, 0.0, 1.0)
    return np.ascontiguousarray(normalised.T, dtype=np.float32)  # (M, n_mels)


def mel_window_starts(n_frames: int, fps: float = 25.0, window: int = 16, sample_rate: int = 16000,
                      hop_length: int = 200) -> np.ndarray:
    """Index of the first MEL frame of each video frame's window (n_frames,) int64; may be < 0.

    Window of video frame ``i`` = ``window`` consecutive MEL frames whose middle lies nearest to
    the frame's centre time ``t_i = (i + 0.5) / fps``.
    """
    centres = (np.arange(n_frames) + 0.5) / fps * mel_frames_per_second(sample_rate, hop_length)
    return np.floor(centres - (window - 1) / 2 + 0.5).astype(np.int64)  # round half up


def frame_mel_windows(mel: np.ndarray, n_frames: int, fps: float = 25.0, window: int = 16,
                      sample_rate: int = 16000, hop_length: int = 200,
                      pad_value: float = MEL_SILENCE) -> np.ndarray:
    """MEL windows (n_frames, window, n_mels) centred on each video frame's centre time.

    Convention: video frame ``i`` is on screen during ``[i / fps, (i + 1) / fps)``; its window is
    centred on ``t_i = (i + 0.5) / fps`` and spans ``window / 80`` s at 16 kHz / hop 200 (16 MEL
    frames = 0.2 s = 5 video frames at 25 fps). Unlike Wav2Lip, whose window *starts* at the
    frame start, nothing is shifted. Rows before the audio start or past its end are filled with
    ``pad_value`` (the silence value of log_mel).
    """
    starts = mel_window_starts(n_frames, fps, window, sample_rate, hop_length)
    return _gather(mel, starts, window, pad_value)


def mel_window_for_frame(mel: np.ndarray, frame_index: int, fps: float = 25.0, window: int = 16,
                         sample_rate: int = 16000, hop_length: int = 200,
                         pad_value: float = MEL_SILENCE) -> np.ndarray:
    """The (window, n_mels) MEL window of one video frame (same convention as frame_mel_windows)."""
    start = mel_window_starts(frame_index + 1, fps, window, sample_rate, hop_length)[-1:]
    return _gather(mel, start, window, pad_value)[0]


def _gather(mel: np.ndarray, starts: np.ndarray, window: int, pad_value: float) -> np.ndarray:
    """Rows ``start .. start + window - 1`` of mel for each start (S, window, n_mels), padded outside."""
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2:
        raise ValueError(f"mel must be (M, n_mels), got {mel.shape}")
    rows = starts[:, None] + np.arange(window)  # (S, window)
    padded = np.concatenate([mel, np.full((1, mel.shape[1]), pad_value, np.float32)])  # (M + 1, n_mels)
    return padded[np.where((rows < 0) | (rows >= len(mel)), len(mel), rows)]


def speech_energy(audio: np.ndarray, sample_rate: int = 16000, n_frames: int | None = None,
                  fps: float = 25.0) -> np.ndarray:
    """RMS energy of the audio under each video frame (n_frames,) float32; 0 past the audio end.

    Frame ``i`` covers samples ``[round(i·sr/fps), round((i+1)·sr/fps))``, i.e. the time it is
    on screen. ``n_frames`` defaults to the number of frames the audio spans.
    """
    audio = _mono(audio).astype(np.float64)
    if n_frames is None:
        n_frames = int(np.ceil(len(audio) * fps / sample_rate))
    bounds = np.minimum(np.round(np.arange(n_frames + 1) * sample_rate / fps).astype(np.int64), len(audio))
    power = np.concatenate([[0.0], np.cumsum(audio**2)])  # running sum of squares (n + 1,)
    sums = power[bounds[1:]] - power[bounds[:-1]]
    counts = np.maximum(bounds[1:] - bounds[:-1], 1)
    return np.sqrt(np.maximum(sums, 0.0) / counts).astype(np.float32)
