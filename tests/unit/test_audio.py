"""deadlib.data.audio: MEL shape/rate/range, frame-centred MEL windows, per-frame speech energy."""

from __future__ import annotations

import numpy as np
import pytest

from deadlib.data import audio as A

SR, FPS = 16000, 25.0


def burst(frames: tuple[int, int], seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Silence with white noise (std 0.3) while video frames frames[0]..frames[1] are on screen."""
    audio = np.zeros(int(seconds * SR), np.float32)
    start, stop = round(frames[0] * SR / FPS), round((frames[1] + 1) * SR / FPS)
    audio[start:stop] = 0.3 * np.random.default_rng(seed).standard_normal(stop - start)
    return audio


def test_log_mel_shape_and_rate():
    assert A.mel_frames_per_second(16000, 200) == 80.0
    mel = A.log_mel(burst((10, 12)))
    assert mel.shape == (1 + SR // 200, 80) and mel.dtype == np.float32
    assert A.mel_frames_per_second() / FPS == pytest.approx(3.2)


def test_silence_is_bottom_of_range_and_speech_stays_inside():
    silence = A.log_mel(np.zeros(SR, np.float32))
    assert np.all(silence == A.MEL_SILENCE) and A.MEL_SILENCE == A.MEL_MIN == -4.0
    loud = A.log_mel(0.9 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR).astype(np.float32))
    assert loud.min() >= A.MEL_MIN and loud.max() <= A.MEL_MAX and loud.max() > 0


def test_log_mel_rejects_stereo():
    with pytest.raises(ValueError, match="mono"):
        A.log_mel(np.zeros((2, SR), np.float32))


def test_mel_window_energy_peaks_on_the_frames_with_sound():
    mel = A.log_mel(burst((10, 12)))
    windows = A.frame_mel_windows(mel, 25, fps=FPS, window=16)
    assert windows.shape == (25, 16, 80)
    energy = (windows - A.MEL_SILENCE).sum(axis=(1, 2))
    assert set(np.argsort(energy)[-3:]) == {10, 11, 12}  # a start-aligned window would pick 8–10
    assert energy[:5].max() == 0 and energy[16:].max() == 0  # far frames see only silence


def test_window_is_centred_on_the_frame_centre():
    audio = np.zeros(SR, np.float32)
    centre = round(11.5 / FPS * SR)  # centre time of video frame 11
    audio[centre - 40:centre + 40] = 0.9
    window = A.mel_window_for_frame(A.log_mel(audio, preemphasis=0.0), 11, fps=FPS, window=16)
    loudest_row = np.argmax((window - A.MEL_SILENCE).sum(axis=1))
    assert loudest_row in (7, 8)  # middle of the 16 rows
    np.testing.assert_array_equal(window, A.frame_mel_windows(A.log_mel(audio, preemphasis=0.0), 12)[11])


def test_windows_past_the_ends_are_silence_padded():
    mel = A.log_mel(burst((0, 24)))  # noise for the whole second
    windows = A.frame_mel_windows(mel, 40, fps=FPS)  # 40 frames = 1.6 s > 1 s of audio
    first = A.mel_window_starts(1)[0]
    assert first < 0 and np.all(windows[0, :-first] == A.MEL_SILENCE)
    assert np.all(windows[-1] == A.MEL_SILENCE) and np.all(windows[10] > A.MEL_SILENCE)


def test_speech_energy_is_rms_per_video_frame():
    audio = np.zeros(SR, np.float32)
    audio[10 * 640:13 * 640] = 0.5 * np.sin(2 * np.pi * 400 * np.arange(3 * 640) / SR)  # frames 10–12
    energy = A.speech_energy(audio, SR, 30, FPS)
    assert energy.shape == (30,)
    np.testing.assert_allclose(energy[10:13], 0.5 / np.sqrt(2), rtol=0.01)
    assert energy[:10].max() == 0 and energy[13:].max() == 0  # incl. frames 25–29 past the end
    assert A.speech_energy(audio, SR, fps=FPS).shape == (25,)
