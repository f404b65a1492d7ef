"""Procedural speech: shapes, determinism, articulation targets, clean audio, and lip-sync signal.

The key test fits a ridge regression from per-frame log-MEL features of the audio to jaw_open:
it must explain most of the variance on held-out frames, and clearly less once the audio is
reversed or shuffled in 1 s blocks (so the information is real audio-visual sync, not leakage).
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from deadlib.synth.speech import (
    BILABIALS,
    BLOCK,
    CODAS,
    NOISE_FLOOR_DB,
    ONSETS,
    PHONEMES,
    VOWELS,
    Utterance,
    Voice,
    random_voice,
    synthesize_utterance,
)

SR, FPS = 16000, 25.0


@pytest.fixture(scope="module")
def corpus() -> list[Utterance]:
    """Three 40 s utterances from three random voices (fixed seed)."""
    rng = np.random.default_rng(123)
    return [synthesize_utterance(rng, random_voice(rng), 40.0, SR, FPS) for _ in range(3)]


def frame_logmel(audio: np.ndarray, n_frames: int, context: int = 2) -> np.ndarray:
    """Log-MEL (80 bands, hop 200) averaged per video frame, stacked over +-context frames."""
    hop = 200
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=512, win_length=400,
                                         hop_length=hop, n_mels=80)
    log_mel = np.log(mel + 1e-10).T  # (M, 80)
    frame = np.minimum((np.arange(len(log_mel)) * hop / SR * FPS).astype(int), n_frames - 1)
    sums = np.zeros((n_frames, 80))
    np.add.at(sums, frame, log_mel)
    feats = sums / np.maximum(np.bincount(frame, minlength=n_frames), 1)[:, None]  # (N, 80)
    padded = np.pad(feats, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([padded[i:i + n_frames] for i in range(2 * context + 1)], axis=1)


def ridge_r2(corpus: list[Utterance], transform, alpha: float = 100.0) -> float:
    """Fit ridge on the first half of every utterance, return R^2 of jaw_open on the rest."""
    train_x, train_y, test_x, test_y = [], [], [], []
    for utt in corpus:
        n = len(utt.articulation)
        x, y, half = frame_logmel(transform(utt.audio), n), utt.articulation[:, 0], n // 2
        train_x.append(x[:half]), train_y.append(y[:half])
        test_x.append(x[half:]), test_y.append(y[half:])
    x_tr, y_tr = np.concatenate(train_x), np.concatenate(train_y)
    x_te, y_te = np.concatenate(test_x), np.concatenate(test_y)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (y_tr - y_tr.mean()))
    pred = b @ w + y_tr.mean()
    return float(1 - np.sum((y_te - pred) ** 2) / np.sum((y_te - y_te.mean()) ** 2))


def block_shuffle(audio: np.ndarray) -> np.ndarray:
    """Permute 1 s blocks of the audio (keeps its statistics, breaks the alignment)."""
    blocks = audio[: len(audio) // SR * SR].reshape(-1, SR)
    perm = np.random.default_rng(0).permutation(len(blocks))
    return np.concatenate([blocks[perm].reshape(-1), audio[len(blocks) * SR:]])


def test_audio_predicts_jaw_opening(corpus):
    real = ridge_r2(corpus, lambda a: a)
    reversed_ = ridge_r2(corpus, lambda a: a[::-1].copy())
    shuffled = ridge_r2(corpus, block_shuffle)
    print(f"R2 real={real:.3f} reversed={reversed_:.3f} shuffled={shuffled:.3f}")
    assert real >= 0.6
    assert reversed_ < 0.2 and shuffled < 0.2
    assert real - max(reversed_, shuffled) > 0.4


def test_shapes_lengths_and_types():
    for sr, fps, dur in ((16000, 25.0, 3.3), (22050, 30.0, 2.0)):
        utt = synthesize_utterance(np.random.default_rng(1), Voice(), dur, sr, fps)
        n = round(dur * fps)
        assert utt.audio.shape == (round(dur * sr),) and utt.audio.dtype == np.float32
        assert utt.articulation.shape == (n, 3) and utt.articulation.dtype == np.float32
        assert utt.voiced.shape == (n,) and utt.voiced.dtype == bool
        assert utt.f0.shape == (n,) and (utt.sample_rate, utt.fps) == (sr, fps)
        assert np.all(np.abs(utt.audio) <= 1.0) and np.all(np.isfinite(utt.audio))
        starts, ends = (np.array([p[i] for p in utt.phonemes]) for i in (0, 1))
        assert starts[0] == 0.0 and ends[-1] == pytest.approx(dur)
        np.testing.assert_allclose(starts[1:], ends[:-1])
        assert np.all(ends > starts) and all(p[2] in PHONEMES for p in utt.phonemes)


def test_articulation_ranges_and_frame_centres():
    utt = synthesize_utterance(np.random.default_rng(2), Voice(), 6.0, SR, 25.0)
    jaw, width, rnd = utt.articulation.T
    assert jaw.min() >= 0 and jaw.max() <= 1 and rnd.min() >= 0 and rnd.max() <= 1
    assert width.min() >= -1 and width.max() <= 1
    assert jaw.max() > 0.5 and width.min() < -0.2 < 0.4 < width.max()  # the mouth really moves
    # Frame i is sampled at (i + 0.5) / fps: 25 fps frame i coincides with 75 fps frame 3i + 1.
    fine = synthesize_utterance(np.random.default_rng(2), Voice(), 6.0, SR, 75.0)
    np.testing.assert_allclose(utt.articulation, fine.articulation[1::3], atol=1e-5)


def test_deterministic_for_seed_and_seeds_differ():
    def make(seed: int) -> Utterance:
        rng = np.random.default_rng(seed)
        return synthesize_utterance(rng, random_voice(rng), 5.0)

    a, b, c = make(7), make(7), make(8)
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.articulation, b.articulation)
    assert a.phonemes == b.phonemes and np.array_equal(a.voiced, b.voiced)
    assert not np.array_equal(a.audio, c.audio) and a.phonemes != c.phonemes


def test_silence_is_closed_and_structure(corpus):
    for utt in corpus:
        t = (np.arange(len(utt.articulation)) + 0.5) / FPS
        silent = sum(e - s for s, e, p in utt.phonemes if p == "sil") / 40.0
        assert 0.15 <= silent <= 0.40
        for s, e, p in utt.phonemes:
            inside = (t > s + 0.05) & (t < e - 0.05)
            if p == "sil":
                assert np.all(utt.articulation[inside, 0] < 0.1)
                assert not np.any(utt.voiced[inside])
        assert any(e - s >= 0.3 for s, e, p in utt.phonemes if p == "sil")  # sentence pauses


def test_bilabials_close_and_open_vowels_open(corpus):
    at_centre = {"bilabial": [], "a": []}
    for utt in corpus:
        for s, e, p in utt.phonemes:
            i = min(int((s + e) / 2 * FPS), len(utt.articulation) - 1)  # frame holding the centre
            key = "bilabial" if p in BILABIALS else p
            if key in at_centre:
                at_centre[key].append(utt.articulation[i, 0])
    assert len(at_centre["bilabial"]) > 30
    assert np.median(at_centre["bilabial"]) < 0.1 and np.max(at_centre["bilabial"]) < 0.25
    assert np.median(at_centre["a"]) > 0.6


def test_loud_open_vowels_quiet_closures_noise_floor(corpus):
    level = {"a": [], "i": [], "p": [], "sil": []}
    for utt in corpus:
        for s, e, p in utt.phonemes:
            if p in level and e - s > 0.05:
                mid = utt.audio[int((s + e) / 2 * SR) - 160:int((s + e) / 2 * SR) + 160]
                level[p].append(10 * np.log10(np.mean(mid.astype(float) ** 2)))
    db = {p: float(np.median(v)) for p, v in level.items()}
    assert db["a"] > db["i"] + 3 > db["p"] + 20
    assert db["sil"] == pytest.approx(NOISE_FLOOR_DB, abs=3)


def test_no_clicks(corpus):
    utt = corpus[0]
    audio = utt.audio.astype(np.float64)
    rms = np.sqrt(np.mean(audio**2))
    assert np.abs(np.diff(audio)).max() < 8 * rms

    def boundary_ratio(x: np.ndarray) -> float:
        """Max/median over within-block offsets of mean |2nd difference| (1 = no block artefact)."""
        d2 = np.abs(np.diff(x, 2))
        profile = d2[: len(d2) // BLOCK * BLOCK].reshape(-1, BLOCK).mean(0)
        return float(profile.max() / np.median(profile))

    assert boundary_ratio(audio) < 1.15
    clicked = audio.copy()
    clicked[::BLOCK] += 0.1 * rms * np.random.default_rng(0).choice([-1, 1], len(clicked[::BLOCK]))
    assert boundary_ratio(clicked) > 1.5  # the check does catch small block-rate clicks


def test_voicing_and_f0(corpus):
    utt = corpus[0]
    assert 0.3 < utt.voiced.mean() < 0.8
    assert np.all(utt.f0[~utt.voiced] == 0) and np.all(utt.f0[utt.voiced] > 50)


def test_random_voice_ranges():
    rng = np.random.default_rng(0)
    voices = [random_voice(rng) for _ in range(200)]
    assert all(90 <= v.f0 <= 230 and 0.85 <= v.formant_scale <= 1.15 for v in voices)
    f0s, scales = np.array([v.f0 for v in voices]), np.array([v.formant_scale for v in voices])
    assert np.corrcoef(f0s, scales)[0, 1] > 0.5  # high voices have short vocal tracts


def test_inventory_is_consistent():
    assert 5 <= len(VOWELS) <= 8
    assert set(ONSETS) | set(CODAS) | set(VOWELS) <= set(PHONEMES)
    for ph in PHONEMES.values():
        assert 0 <= ph.jaw <= 1 and -1 <= ph.width <= 1 and 0 <= ph.round <= 1
    assert all(PHONEMES[p].jaw <= 0.06 and PHONEMES[p].occlusion == 1 for p in BILABIALS)
    assert PHONEMES["a"].jaw == max(p.jaw for p in PHONEMES.values())
    assert PHONEMES["sil"].jaw == 0 and PHONEMES["sil"].voicing == 0


def test_bad_input_raises():
    for duration, fps in ((0.0, 25.0), (0.01, 25.0), (2.0, 0.0)):
        with pytest.raises(ValueError, match="positive"):
            synthesize_utterance(np.random.default_rng(0), Voice(), duration, fps=fps)


def test_sixty_seconds_has_the_right_length():
    """(Its speed is measured by benchmarks/bench_speech.py, not asserted here.)"""
    rng = np.random.default_rng(5)
    utt = synthesize_utterance(rng, random_voice(rng), 60.0)
    assert len(utt.audio) == 60 * SR and len(utt.articulation) == 60 * 25

