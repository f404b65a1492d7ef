"""FrameSource: the dub's full-resolution frames in output order, decoded once, keeping only the
frames a ping-pong timeline shows again (issue 18 goal 5: memory must not grow with the video)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from deadlib.data.video import read_video, write_video
from deadlib.dub import render
from deadlib.dub.inputs import frame_timeline, pingpong
from deadlib.dub.render import FrameSource, FrameSpillError, revisited_frames

N = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 12-frame clip whose frames differ (a moving bar on noise) and its decoded frames."""
    rng = np.random.default_rng(0)
    frames = []
    for k in range(N):
        frame = rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)
        frame[:, 4 * k:4 * k + 4] = 255
        frames.append(frame)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, frames, fps=25)
    decoded, _ = read_video(path)
    assert len(decoded) == N and len({f.tobytes() for f in decoded}) == N
    return path, decoded


def test_revisited_frames_are_only_the_backward_passes():
    assert revisited_frames(np.arange(N)).tolist() == []  # trim / pad / audio as long as the video
    assert revisited_frames(pingpong(N, N + 1)).tolist() == [N - 2]  # one frame of rounding
    assert revisited_frames(pingpong(N, N + 5)).tolist() == list(range(N - 6, N - 1))
    assert revisited_frames(pingpong(N, 3 * N)).tolist() == list(range(N - 1))  # ≥ twice as long: all but the last
    assert revisited_frames(np.array([3])).tolist() == []


@pytest.mark.parametrize("n_out", [5, N, N + 1, N + 5, 2 * N - 2, 3 * N + 1])
def test_frames_in_timeline_order_equal_the_decoded_video(clip, tmp_path, n_out):
    path, decoded = clip
    timeline = frame_timeline(N, n_out, "trim")
    source = FrameSource(path, timeline, tmp_dir=tmp_path)
    try:
        for k, f in enumerate(timeline):
            got = source[int(f)]
            assert got.shape == decoded[f].shape and np.array_equal(got, decoded[f]), (n_out, k, f)
        spill_files = list(tmp_path.rglob("revisited.rgb"))
        expected = len(revisited_frames(timeline))
        assert len(spill_files) == (1 if expected else 0)
        if expected:  # the spill file holds the revisited frames only, not the video
            assert spill_files[0].stat().st_size == expected * decoded[0].nbytes
    finally:
        source.close()
    assert not list(tmp_path.rglob("revisited.rgb"))  # close removes it


def test_each_frame_is_decoded_once(clip, tmp_path, monkeypatch):
    path, _ = clip
    served = collections.Counter()
    real = render.iter_frames

    def counting(*args, **kwargs):
        for k, frame in enumerate(real(*args, **kwargs)):
            served[k] += 1
            yield frame

    monkeypatch.setattr(render, "iter_frames", counting)
    timeline = pingpong(N, 3 * N)
    source = FrameSource(path, timeline, tmp_dir=tmp_path)
    for f in timeline:
        source[int(f)]
    source.close()
    assert sorted(served) == list(range(N)) and set(served.values()) == {1}


def test_out_of_order_request_outside_the_timeline_is_refused(clip, tmp_path):
    path, decoded = clip
    source = FrameSource(path, np.arange(N), tmp_dir=tmp_path)
    try:
        assert np.array_equal(source[5], decoded[5])
        with pytest.raises(IndexError, match="not kept"):
            source[2]
    finally:
        source.close()


def test_not_enough_disk_for_the_revisited_frames_is_a_clear_error_before_decoding(clip, tmp_path, monkeypatch):
    path, _ = clip
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(render.shutil, "disk_usage", lambda _: usage(1 << 30, 1 << 30, 1 << 20))
    monkeypatch.setattr(render, "iter_frames", lambda *a, **k: pytest.fail("decoded before the space check"))
    with pytest.raises(FrameSpillError, match="free") as err:
        FrameSource(path, pingpong(N, 3 * N), tmp_dir=tmp_path)
    assert "shorten the audio" in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing left behind


def test_truncated_decode_holds_the_last_frame(clip, tmp_path, monkeypatch):
    path, decoded = clip
    real = render.iter_frames
    monkeypatch.setattr(render, "iter_frames", lambda *a, **k: (f for k_, f in zip(range(8), real(*a, **k))))
    source = FrameSource(path, pingpong(N, N + 3), tmp_dir=tmp_path)
    try:
        assert np.array_equal(source[11], decoded[7])  # past the end: the last decoded frame
        assert np.array_equal(source[10], decoded[7])
    finally:
        source.close()
