"""Pure parts of deadlib.reenact.selfdub: the mouth-lag search, the leakage-control speaker, crops."""

from __future__ import annotations

import numpy as np
import pytest

from deadlib.data.crop import crop_transform
from deadlib.reenact.selfdub import (
    ReenactError,
    crops_of,
    mouth_lag,
    next_actor,
    split_span,
)


def test_mouth_lag_finds_a_known_delay():
    rng = np.random.default_rng(0)
    real = np.convolve(rng.standard_normal(300), np.ones(5) / 5, mode="same")
    both = np.ones(300, bool)
    for delay in (-3, 0, 2):
        dub = np.roll(real, delay)                   # dub[t + delay] = real[t]
        lag, r = mouth_lag(dub, real, both, max_lag=5)
        assert lag == delay and r > 0.99


def test_mouth_lag_ignores_frames_without_detection():
    rng = np.random.default_rng(1)
    real = np.convolve(rng.standard_normal(200), np.ones(4) / 4, mode="same")
    dub = np.roll(real, 1)
    both = np.ones(200, bool)
    both[50:150] = False
    dub[50:150] = 100.0                                # garbage where nothing was detected
    assert mouth_lag(dub, real, both, max_lag=3)[0] == 1


def test_next_actor_is_cyclic():
    assert next_actor("b", ["a", "b", "c"]) == "c"
    assert next_actor("c", ["a", "b", "c"]) == "a"
    assert next_actor("a", ["a"]) is None


def test_crops_at_another_size_show_the_same_region():
    yy, xx = np.mgrid[0:240, 0:320]
    frame = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    affine = crop_transform(np.array([[160.0, 120.0]]), np.array([100.0]), 64)[0]
    small = crops_of(frame[None], affine[None], np.array([0]), 64, 64)[0].astype(float)
    big = crops_of(frame[None], affine[None], np.array([0]), 64, 128)[0].astype(float)
    down = big.reshape(64, 2, 64, 2, 3).mean((1, 3))
    assert np.abs(down - small)[4:-4, 4:-4].mean() < 3.0


def test_split_span_says_to_prepare_first(tmp_path):
    with pytest.raises(ReenactError, match="prepare"):
        split_span(tmp_path, "nobody")


def test_mouth_r_interval_covers_the_truth_and_widens_with_fewer_frames():
    """The moving-block bootstrap interval of r: slow (syllable-long) series with a known correlation;
    the interval holds the full-length r, 10 s gives a wider one than 40 s, and series shorter than
    two blocks give none."""
    from deadlib.core.measures import pearson, pearson_block_interval

    rng = np.random.default_rng(3)
    smooth = lambda n: np.convolve(rng.standard_normal(n + 24), np.ones(25) / 25, mode="valid")  # noqa: E731
    a, noise = smooth(1000), smooth(1000)
    b = a + 1.5 * noise
    lo, hi = pearson_block_interval(a, b)
    assert lo < pearson(a, b) < hi
    lo10, hi10 = pearson_block_interval(a[:250], b[:250])
    assert hi10 - lo10 > hi - lo
    assert pearson_block_interval(a[:40], b[:40]) is None
    assert pearson_block_interval(a, b) == (lo, hi)  # seeded: the same interval each run
    with pytest.raises(ValueError, match="different lengths"):
        pearson_block_interval(a, b[:-1])
