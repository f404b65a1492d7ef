"""benchmarks/probe_a2e_features.py: the linear probe's plumbing and that it can tell signal from noise."""

import numpy as np
import pytest
from support import fake_a2e_corpus, load_benchmark


@pytest.fixture(scope="module")
def probe():
    return load_benchmark("probe_a2e_features")


def test_phone_shares_split_each_frame_among_its_phones(probe):
    shares = probe.phone_shares([("SIL", 0, 5), ("AA", 6, 9), ("M", 10, 40)], ["AA", "M", "SIL"], n_frames=3)
    assert shares.shape == (3, 3)
    assert np.allclose(shares.sum(1), 1.0)                             # every 10 ms step of a frame counted once
    assert np.allclose(shares[0], [0, 0, 1]) and np.allclose(shares[1], [0.5, 0, 0.5]) and np.allclose(shares[2], [0.5, 0.5, 0])


def test_context_stacks_neighbours_with_repeated_edges(probe):
    x = np.arange(4, dtype=float)[:, None]
    stacked = probe.with_context(x, 1)
    assert stacked.tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def _people(rng, related: bool) -> dict:
    people = {}
    for k in range(6):
        mel = rng.normal(size=(300, 80)).astype(np.float32)
        jaw = mel[:, :5].sum(1) if related else rng.normal(size=300)
        people[f"p{k}"] = {"mel": mel, "jaw": jaw + 0.1 * rng.normal(size=300), "valid": np.ones(300, bool),
                           "splits": {"train": [0, 200], "val": [200, 250], "test": [250, 300]}}
    return people


def test_the_probe_finds_a_linear_relation_and_not_noise(probe):
    rng = np.random.default_rng(0)
    found = probe.probe(_people(rng, related=True), "mel", context=1, lam=10.0, fraction=1.0, repeats=1)
    noise = probe.probe(_people(rng, related=False), "mel", context=1, lam=10.0, fraction=1.0, repeats=1)
    assert found["mean_jaw_corr"] > 0.9
    assert abs(noise["mean_jaw_corr"]) < 0.2
    part = probe.probe(_people(rng, related=True), "mel", context=1, lam=10.0, fraction=0.5, repeats=3)
    assert len(part["per_draw"]) == 3 and part["mean_jaw_corr"] > 0.8


def test_linear_prediction_finds_the_resonances_of_a_two_formant_signal(probe):
    """White noise through two resonators (700 Hz and 1800 Hz, 60 Hz bandwidth): every frame's F1 and F2
    land near them, and silence takes the clip's median instead of a made-up formant."""
    from scipy.signal import lfilter
    sr, rng = 16000, np.random.default_rng(0)
    a = np.array([1.0])
    for freq in (700.0, 1800.0):
        radius = np.exp(-np.pi * 60.0 / sr)
        a = np.convolve(a, [1.0, -2 * radius * np.cos(2 * np.pi * freq / sr), radius ** 2])
    audio = lfilter([1.0], a, rng.normal(size=sr)) * 0.01
    audio[sr // 2:sr // 2 + 4000] = 0.0                                   # a quarter second of digital silence
    formants = probe.lpc_formants(audio, 25)                              # 25 video frames = 1 s
    voiced = np.r_[0:12, 19:25]
    assert np.all(np.abs(formants[voiced, 0] - 700) < 80) and np.all(np.abs(formants[voiced, 1] - 1800) < 120)
    assert np.allclose(formants[13:17, :3], np.median(formants[:, :3], axis=0))
    assert formants[14, 3] < formants[5, 3] - 10                          # log energy drops in the silence


def test_per_clip_normalised_features_have_zero_mean_and_unit_spread(probe):
    rng = np.random.default_rng(1)
    mel = rng.normal(3.0, 2.0, size=(50, 80))
    person = {"mel": mel, "mel_cmvn": probe.standardise(mel), "energy": mel.mean(1, keepdims=True),
              "formants": probe.standardise(rng.normal(500, 100, size=(50, 4)))}
    cmvn = probe.features(person, "mel_cmvn", context=0)
    assert cmvn.shape == (50, 80) and np.allclose(cmvn.mean(0), 0, atol=1e-9) and np.allclose(cmvn.std(0), 1, atol=1e-3)
    both = probe.features(person, "mel_cmvn+formants", context=1)
    assert both.shape == (50, 3 * 84)


def test_a_loaded_person_carries_its_clip_normalised_mel_and_loudness(probe, tmp_path):
    fake_a2e_corpus(tmp_path / "cache", ["a"], frames=60)
    person = probe.load_person(tmp_path / "cache", "a", jaw=0)
    assert person["mel"].shape == (60, 80) and person["jaw"].shape == (60,)
    assert np.allclose(person["mel_cmvn"].mean(0), 0, atol=1e-5) and np.allclose(person["mel_cmvn"].std(0), 1, atol=1e-3)
    assert np.allclose(probe.features(person, "energy", context=0)[:, 0], person["mel"].mean(1))
