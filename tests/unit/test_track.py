"""Face tracking: MediaPipe on rendered synthetic heads, no-face flags, track selection, smoothing."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from deadlib.data.track import (
    FaceTrack,
    TrackError,
    TrackSettings,
    face_boxes,
    fill_gaps,
    one_euro,
    parse_select,
    smooth_series,
    track_frames,
    valid_segments,
)
from deadlib.synth.generate import SynthSettings, make_identity_video

GREY = 90


@pytest.fixture(scope="module")
def heads():
    """30 rendered frames (128 px) of two synthetic people + the true pixel mesh of the first."""
    settings = SynthSettings(duration_s=1.2, size=128)
    out = {}
    for name in ("synth_p00", "synth_p01"):
        renderer, utt, blink, pose = make_identity_video(name, settings)
        out[name] = np.stack(list(renderer.frames(utt.articulation, blink, pose)))
        if name == "synth_p00":
            out["truth"] = renderer.geometry(utt.articulation, blink, pose)[:, :468]  # (N, 468, 3) px
    return out


def test_tracks_a_face_at_its_pixel_position(heads):
    track = track_frames(heads["synth_p00"], TrackSettings())
    assert isinstance(track, FaceTrack) and track.valid.all() and track.n_tracklets == 1
    assert track.landmarks.shape == (30, 468, 3) and track.frame_size == (128, 128)
    err = np.linalg.norm(track.landmarks[..., :2] - heads["truth"][..., :2], axis=-1)
    assert np.median(err) < 1.5 and np.percentile(err, 95) < 4.0  # pixels, face ≈ 46 px wide
    # z: same convention as the renderer (larger = farther)
    assert np.corrcoef(track.landmarks[0, :, 2], heads["truth"][0, :, 2])[0, 1] > 0.9


def test_noise_has_no_face_and_partial_clips_are_flagged(heads):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (10, 128, 128, 3), dtype=np.uint8)
    frames = np.concatenate([heads["synth_p00"][:12], noise, heads["synth_p00"][12:20]])
    track = track_frames(frames, TrackSettings())
    expected = np.r_[np.ones(12, bool), np.zeros(10, bool), np.ones(8, bool)]
    assert track.n_frames == 30 and (track.valid == expected).all()  # flagged, never dropped
    assert np.isnan(track.landmarks[~track.valid]).all() and np.isfinite(track.landmarks[track.valid]).all()
    assert (track.faces_seen[12:22] == 0).all()
    assert track.n_tracklets == 1  # the face coming back continues the same track
    empty = track_frames(noise, TrackSettings())
    assert not empty.valid.any() and empty.n_tracklets == 0


def test_downscaled_tracking_maps_back_to_source_pixels(heads):
    frames = heads["synth_p00"][:8]
    big = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_LINEAR) for f in frames])
    track = track_frames(big, TrackSettings(), frame_size=(512, 512))  # as if decoded at half of 512
    assert track.frame_size == (512, 512)
    centre, size = face_boxes(track.landmarks)
    truth_centre, truth_size = face_boxes(heads["truth"][:8] * 4)
    assert np.abs(centre - truth_centre).max() < 8 and np.abs(size / truth_size - 1).max() < 0.1


def _two_faces(heads, a_from: int) -> np.ndarray:
    """(30, 160, 352, 3): person A enlarged on the left (present from frame ``a_from``), B centre-right."""
    a, b = heads["synth_p00"], heads["synth_p01"]
    canvas = np.full((len(a), 160, 352, 3), GREY, np.uint8)
    canvas[a_from:, :, :160] = np.stack([cv2.resize(f, (160, 160)) for f in a[a_from:]])
    canvas[:, 16:144, 160:288] = b
    return canvas


@pytest.mark.parametrize("select, side", [("largest", "A"), ("central", "B"), ("longest", "B"),
                                          ("point:0.2,0.5", "A"), ("point:0.65,0.5", "B")])
def test_two_faces_give_one_consistent_track(heads, select, side):
    track = track_frames(_two_faces(heads, a_from=10), TrackSettings(select=select))
    assert track.n_tracklets == 2 and track.faces_seen.max() == 2
    centre, _ = face_boxes(track.landmarks[track.valid])
    is_a = centre[:, 0] < 160
    assert is_a.all() if side == "A" else not is_a.any()  # never switches person
    assert track.valid.sum() == (20 if side == "A" else 30)


def test_settings_are_validated():
    with pytest.raises(TrackError, match="select"):
        TrackSettings.from_config({"select": "loudest"})
    with pytest.raises(TrackError, match="unknown prepare.track keys"):
        TrackSettings.from_config({"max_face": 2})
    assert TrackSettings.from_config({"select": "central"}).select == "central"
    assert TrackSettings.from_config({"select": "point:0.7,0.4"}).select == "point:0.7,0.4"
    assert parse_select("point:0.7,0.4") == ("point", (0.7, 0.4)) and parse_select("longest") == ("longest", None)
    for bad in ("point:1.5,0.2", "point:a,b", "point:0.5", "point:"):
        with pytest.raises(TrackError, match="point:X,Y"):
            TrackSettings.from_config({"select": bad})


def test_savgol_smoothing_reduces_noise_within_runs_only():
    rng = np.random.default_rng(1)
    t = np.arange(100)
    clean = np.sin(t / 8.0)[:, None].repeat(3, 1)
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    valid = np.ones(100, bool)
    valid[50:55] = False
    noisy[50:55] = 100.0  # garbage on invalid frames must not leak into neighbours
    out = smooth_series(noisy, valid, {"method": "savgol", "window": 9, "polyorder": 2})
    assert np.abs(out[valid] - clean[valid]).mean() < 0.6 * np.abs(noisy[valid] - clean[valid]).mean()
    assert (out[50:55] == 100.0).all() and np.abs(out[45:50] - clean[45:50]).max() < 0.5
    assert np.array_equal(smooth_series(noisy, valid, {"method": "none"}), noisy)
    with pytest.raises(TrackError, match="smoothing method"):
        smooth_series(noisy, valid, {"method": "kalman"})


def test_one_euro_follows_steps_and_damps_jitter():
    rng = np.random.default_rng(2)
    x = np.r_[np.zeros(50), np.ones(50)] + rng.normal(0, 0.02, 100)
    y = one_euro(x, fps=25.0, min_cutoff=1.0, beta=0.5)
    assert np.std(np.diff(y[5:45])) < np.std(np.diff(x[5:45]))
    assert abs(y[-1] - 1.0) < 0.05  # converges after the step


def test_segments_and_gap_filling():
    valid = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert [(s.start, s.stop) for s in valid_segments(valid)] == [(1, 3), (5, 6), (7, 10)]
    x = np.arange(10, dtype=float)[:, None] * 2
    x[~valid] = -1
    filled = fill_gaps(x, valid)
    assert filled[0, 0] == 2 and filled[3, 0] == 6 and filled[4, 0] == 8 and filled[6, 0] == 12


# The first mediapipe import happens inside caller(); caller's local must be freed once it returns.
FIRST_IMPORT = """
import gc, weakref
import numpy as np
from deadlib.data.track import FaceMeshDetector, TrackSettings

def caller():
    video_sized = np.zeros(1000)
    with FaceMeshDetector(TrackSettings()):
        pass
    return weakref.ref(video_sized)

ref = caller()
gc.collect()
print("freed" if ref() is None else "kept")
"""


def test_the_first_mediapipe_import_keeps_no_caller_alive():
    run = subprocess.run([sys.executable, "-c", FIRST_IMPORT], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "freed", "a caller's locals outlive it: mediapipe's stored traceback holds its frame"
