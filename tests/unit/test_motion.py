"""Blink and head-pose tracks: ranges, plausible blink statistics, bounded smooth pose."""

from __future__ import annotations

import numpy as np
import pytest

from deadlib.synth.motion import POSE_LIMITS, blink_track, head_pose_track

FPS = 25.0


def test_blinks_plausible():
    track = blink_track(np.random.default_rng(0), int(120 * FPS), FPS)  # two minutes
    assert track.shape == (3000,) and track.min() >= 0 and track.max() <= 1
    closed = track > 0.5
    n_blinks = int(np.sum(closed[1:] & ~closed[:-1]) + closed[0])
    assert 120 / 6 - 2 <= n_blinks <= 120 / 2 + 1  # one blink every 2-6 s
    assert 0.01 <= closed.mean() <= 0.08  # eyes closed ~150-250 ms per blink
    assert np.mean(track == 0) > 0.85  # open most of the time
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, closed, 0].astype(int))))[::2]
    assert runs.max() * 1000 / FPS <= 250  # no blink stays shut longer than 250 ms


def test_blink_deterministic_and_fps_independent_rate():
    a = blink_track(np.random.default_rng(3), 500, FPS)
    assert np.array_equal(a, blink_track(np.random.default_rng(3), 500, FPS))
    fast = blink_track(np.random.default_rng(3), 1000, 2 * FPS)  # same 20 s, finer sampling
    assert abs(np.mean(fast > 0.5) - np.mean(a > 0.5)) < 0.02


def test_pose_bounded_and_moving():
    pose = head_pose_track(np.random.default_rng(1), int(120 * FPS), FPS)
    assert pose.shape == (3000, 6)
    assert np.all(np.abs(pose) < POSE_LIMITS)
    np.testing.assert_allclose(POSE_LIMITS[:3], [15.0, 8.0, 5.0])
    assert np.all(pose.std(0) > 0.15 * POSE_LIMITS)  # every column really moves


def test_pose_smooth():
    pose = head_pose_track(np.random.default_rng(2), int(120 * FPS), FPS)
    step = np.abs(np.diff(pose, axis=0)).max(0)
    assert np.all(step < 0.1 * POSE_LIMITS)  # e.g. yaw < 1.5 deg per frame
    accel = np.abs(np.diff(pose, 2, axis=0)).max(0)
    assert np.all(accel < 0.3 * step)  # no kinks: velocity itself changes slowly


def test_pose_speech_nod_and_validation():
    rng = np.random.default_rng(4)
    n = int(60 * FPS)
    activity = (np.arange(n) // int(2 * FPS) % 2).astype(float)  # 2 s talk / 2 s silence
    nod = head_pose_track(np.random.default_rng(5), n, FPS, speech_activity=activity)
    still = head_pose_track(np.random.default_rng(5), n, FPS)
    diff = nod[:, 1] - still[:, 1]
    assert np.corrcoef(diff, activity)[0, 1] > 0.8 and np.all(np.abs(nod) < POSE_LIMITS)
    np.testing.assert_array_equal(nod[:, [0, 2, 3, 4, 5]], still[:, [0, 2, 3, 4, 5]])
    with pytest.raises(ValueError, match="speech_activity"):
        head_pose_track(rng, n, FPS, speech_activity=np.zeros(n + 1))
    with pytest.raises(ValueError, match="fps"):
        blink_track(rng, 10, 0.0)
