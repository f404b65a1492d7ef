"""deadlib.data.video: constant-fps decoding, rotation, aligned audio, atomic deterministic writes, named errors."""

from __future__ import annotations

import hashlib
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from deadlib.data import video
from deadlib.data.video import (
    CorruptMediaError,
    MediaError,
    MediaNotFoundError,
    NoAudioError,
    NoVideoStreamError,
    TruncatedMediaWarning,
)

SR = 16000
STEP = 8  # brightness step used to encode the frame index into a frame


def indexed_frames(n: int, height: int = 32, width: int = 48) -> list[np.ndarray]:
    """n flat grey frames whose brightness encodes their index (k * STEP)."""
    return [np.full((height, width, 3), k * STEP, np.uint8) for k in range(n)]


def frame_indices(frames: np.ndarray) -> np.ndarray:
    """Recover the encoded index of each decoded (N, H, W, 3) frame."""
    return np.round(frames.reshape(len(frames), -1).mean(axis=1) / STEP).astype(int)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_timed_video(path: Path, times: list[Fraction], size: int = 32,
                      rotation_ccw: int = 0, image: np.ndarray | None = None) -> None:
    """Encode frames at explicit presentation times (VFR) and an optional display rotation."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=1000)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if image is not None:
            stream.height, stream.width = image.shape[:2]
        if rotation_ccw:
            stream.set_display_rotation(rotation_ccw)
        for k, t in enumerate(times):
            picture = image if image is not None else np.full((size, size, 3), k * STEP, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = int(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 25 fps, 20-frame 48x32 mp4 with a 440 Hz mono AAC track."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    video.write_video(path, indexed_frames(20), fps=25, audio=tone, sample_rate=SR)
    return path


# ----------------------------------------------------------------------------- decoding


def test_round_trip_keeps_count_size_fps_and_order(clip):
    frames, info = video.read_video(clip)
    assert frames.shape == (20, 32, 48, 3) and frames.dtype == np.uint8
    assert (info.width, info.height, info.fps, info.n_frames_estimate) == (48, 32, 25.0, 20)
    assert info.has_audio and info.codec == "h264" and info.rotation == 0
    assert not info.variable_frame_rate
    np.testing.assert_array_equal(frame_indices(frames), np.arange(20))


def test_iter_frames_streams_with_limits(clip):
    frames = video.iter_frames(clip, max_frames=7, max_side=24)
    assert not isinstance(frames, (list, tuple))
    frames = list(frames)
    assert len(frames) == 7 and frames[0].shape == (16, 24, 3)  # 48x32 → longer side 24, aspect kept


def test_30fps_resampled_to_25fps_by_timestamps(tmp_path):
    path = tmp_path / "thirty.mp4"
    video.write_video(path, indexed_frames(30), fps=30)
    frames, info = video.read_video(path, fps=25)
    assert info.fps == pytest.approx(30.0)
    assert len(frames) == 25  # 1 s of video
    # output frame k shows the source frame on screen at k/25 s → source index floor(1.2 k)
    np.testing.assert_array_equal(frame_indices(frames), np.floor(np.arange(25) * 30 / 25 + 1e-9))


def test_variable_frame_rate_becomes_constant_25fps(tmp_path):
    path = tmp_path / "vfr.mp4"
    starts_ms = [0, 40, 50, 130, 200, 210, 220, 300, 400, 460]
    write_timed_video(path, [Fraction(t, 1000) for t in starts_ms])
    info = video.probe_video(path)
    assert info.variable_frame_rate
    frames = video.read_video(path, fps=25)[0]
    expected = [max(i for i, s in enumerate(starts_ms) if s <= 40 * k) for k in range(12)]
    assert 12 <= len(frames) <= 13  # the last source frame (at 460 ms) is held briefly
    np.testing.assert_array_equal(frame_indices(frames)[:12], expected)


def test_rotation_metadata_is_applied_like_ffmpeg(tmp_path):
    path = tmp_path / "rotated.mp4"
    image = np.zeros((32, 64, 3), np.uint8)
    image[:8, :8] = 255  # white top-left corner on a landscape picture
    write_timed_video(path, [Fraction(k, 25) for k in range(3)], image=image, rotation_ccw=90)
    info = video.probe_video(path)
    assert info.rotation == 270 and (info.width, info.height) == (32, 64)  # clockwise; portrait
    frames = video.read_video(path)[0]
    assert frames.shape[1:] == (64, 32, 3)
    corner = np.argwhere(frames[0, :, :, 0] > 128).mean(axis=0)
    assert corner[0] > 48 and corner[1] < 16  # rotated 90° counter-clockwise → bottom-left
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    reference = subprocess.run(  # ffmpeg auto-rotates on decode
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    reference = np.frombuffer(reference, np.uint8).reshape(64, 32, 3)
    assert np.abs(reference.astype(int) - frames[0]).mean() < 2


# ----------------------------------------------------------------------------- bad input


def test_random_bytes_raise_corrupt(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for reader in (video.probe_video, video.iter_frames, video.read_audio):
        with pytest.raises(CorruptMediaError, match="noise.mp4"):
            reader(path)


def test_truncated_mp4_yields_decodable_frames_then_warns(tmp_path):
    full = tmp_path / "full.mp4"
    rng = np.random.default_rng(1)
    video.write_video(full, [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(30)])
    data = full.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    with pytest.warns(TruncatedMediaWarning, match="truncated"):
        frames = video.read_video(half)[0]
    assert 0 < len(frames) < 30
    head = tmp_path / "head.mp4"
    head.write_bytes(data[:300])
    with pytest.raises(CorruptMediaError):
        video.probe_video(head)


def test_non_video_inputs_raise_named_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a video\n" * 20)
    with pytest.raises(MediaError, match="notes.txt"):
        video.probe_video(text)
    sound = tmp_path / "speech.wav"
    video.write_audio(sound, np.zeros(SR, np.float32), SR)
    with pytest.raises(NoVideoStreamError, match="no video stream"):
        video.read_video(sound)
    with pytest.raises(MediaNotFoundError):
        video.probe_video(tmp_path / "missing.mp4")


def test_video_without_audio_raises_no_audio(tmp_path):
    path = tmp_path / "silent.mp4"
    video.write_video(path, indexed_frames(3))
    assert not video.probe_video(path).has_audio
    with pytest.raises(NoAudioError, match="no audio stream"):
        video.read_audio(path)


def test_zero_length_audio_raises(tmp_path):
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(SR)
    with pytest.raises(MediaError, match="zero length"):
        video.read_audio(path)


# ----------------------------------------------------------------------------- audio


def test_stereo_44k_wav_becomes_mono_16k(tmp_path):
    path = tmp_path / "stereo.wav"
    t = np.arange(2 * 44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 300 * t)
    video.write_audio(path, np.stack([left, np.zeros_like(left)]), 44100)  # (channels, n)
    audio = video.read_audio(path, sample_rate=SR)
    assert audio.shape == (2 * SR,) and audio.dtype == np.float32
    assert np.abs(audio[1000:-1000]).max() == pytest.approx(0.25, abs=0.01)  # channel average
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * SR / len(audio) == pytest.approx(300, abs=1)
    assert video.read_audio(path, sample_rate=SR, mono=False).shape == (2, 2 * SR)


@pytest.mark.parametrize("video_start, audio_start", [(0.0, 0.0), (0.0, 0.5), (0.4, 0.0)])
def test_click_in_muxed_audio_comes_back_at_video_time(tmp_path, video_start, audio_start):
    """A click at video time 1.0 s is found at sample 1.0·SR, whatever the streams' start offsets."""
    path = tmp_path / "click.mp4"
    clip_audio = np.zeros(2 * SR, np.float32)
    click = round((1.0 + video_start - audio_start) * SR)  # index in the audio stream's own time
    clip_audio[click:click + 80] = 0.9
    with av.open(str(path), mode="w") as container:
        pictures = container.add_stream("libx264", rate=25)
        pictures.width = pictures.height = 32
        pictures.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=SR, layout="mono")
        for k in range(50):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = k + round(video_start * 25), Fraction(1, 25)
            container.mux(pictures.encode(frame))
        container.mux(pictures.encode(None))
        chunk = av.AudioFrame.from_ndarray(clip_audio[None], format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = SR, round(audio_start * SR), Fraction(1, SR)
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    audio = video.read_audio(path)
    onset = np.argmax(np.abs(audio) > 0.3) / SR
    assert onset == pytest.approx(1.0, abs=0.04)  # within one video frame


def test_write_video_audio_alignment(tmp_path):
    path = tmp_path / "written.mp4"
    clip_audio = np.zeros(2 * SR, np.float32)
    clip_audio[SR:SR + 80] = 0.9
    video.write_video(path, [np.zeros((16, 16, 3), np.uint8)] * 50, audio=clip_audio, sample_rate=SR)
    audio = video.read_audio(path)
    assert np.argmax(np.abs(audio) > 0.3) / SR == pytest.approx(1.0, abs=0.04)
    assert len(audio) >= 2 * SR  # AAC pads the end by less than a couple of 1024-sample frames


# ----------------------------------------------------------------------------- writing


def test_write_video_is_deterministic(tmp_path):
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(10)]
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    video.write_video(first, iter(frames), audio=tone)  # a generator: streamed, length unknown
    video.write_video(second, list(frames), audio=tone)
    assert sha256(first) == sha256(second)
    wav_a, wav_b = tmp_path / "a.wav", tmp_path / "b.wav"
    video.write_audio(wav_a, tone, SR)
    video.write_audio(wav_b, tone, SR)
    assert sha256(wav_a) == sha256(wav_b)


def test_failed_write_leaves_no_file_and_keeps_old_output(tmp_path):
    path = tmp_path / "out.mp4"

    def failing():
        yield from indexed_frames(5)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        video.write_video(path, failing())
    assert list(tmp_path.iterdir()) == []  # neither output nor temp file
    video.write_video(path, indexed_frames(4))
    before = sha256(path)
    with pytest.raises(RuntimeError):
        video.write_video(path, failing())
    assert sha256(path) == before and list(tmp_path.iterdir()) == [path]


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        video.write_video(tmp_path / "odd.mp4", [np.zeros((31, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="shape"):
        video.write_video(tmp_path / "mixed.mp4", [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)])
    with pytest.raises(ValueError, match="no frames"):
        video.write_video(tmp_path / "none.mp4", [])
    assert list(tmp_path.iterdir()) == []


def test_write_audio_round_trip(tmp_path):
    path = tmp_path / "tone.wav"
    tone = (0.4 * np.sin(2 * np.pi * 500 * np.arange(SR // 2) / SR)).astype(np.float32)
    video.write_audio(path, tone, SR)
    np.testing.assert_allclose(video.read_audio(path, sample_rate=SR), tone, atol=2 / 32767)


def test_real_clip(shared_clips):
    path = shared_clips / "grid_bbaf2n.mp4"
    frames, info = video.read_video(path, max_frames=10)
    assert frames.shape == (10, 288, 360, 3) and info.fps == 25.0 and info.n_frames_estimate == 75
    audio = video.read_audio(path)
    assert abs(len(audio) / SR - 3.0) < 0.06 and np.abs(audio).max() > 0.05
