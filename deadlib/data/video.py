"""Robust media IO on PyAV's bundled FFmpeg: probe, constant-fps decoding, aligned audio, atomic writes.

Time convention shared by every reader here: *video time 0* is the start time of the video
stream (its first presentation timestamp). ``iter_frames`` output frame ``k`` shows the source
frame on screen at video time ``k / fps``; ``read_audio`` sample ``n`` plays at video time
``n / sample_rate``. Frames and samples with the same time therefore belong together.
"""

from __future__ import annotations

import contextlib
import os
import warnings
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from deadlib.core import files

PathLike = str | os.PathLike
# The pipeline's media convention (as Wav2Lip / StyleSync): every video is resampled to 25 fps and
# every soundtrack to 16 kHz mono before anything else sees it.
FPS, SAMPLE_RATE = 25, 16000

# Demuxers/codecs FFmpeg exposes as "video" that are really text art (e.g. any .txt file).
_TEXT_FORMATS = {"tty"}
_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}
_VFR_PACKETS = 300  # packets inspected by probe_video for the variable-frame-rate guess


class MediaError(ValueError):
    """A media file cannot be used; the message names the file and what to do about it."""


class MediaNotFoundError(MediaError, FileNotFoundError):
    """The media path does not exist."""


class CorruptMediaError(MediaError):
    """The file is not decodable media: random bytes, a truncated container, no decodable frame."""


class NoVideoStreamError(MediaError):
    """The file holds no video stream (e.g. an audio-only or a text file)."""


class NoAudioError(MediaError):
    """The file holds no audio stream."""


class TruncatedMediaWarning(UserWarning):
    """Decoding stopped early; the frames/samples decoded so far are returned."""


@dataclass(frozen=True)
class VideoInfo:
    """What probe_video learned about a file's (first) video stream."""

    path: str
    width: int  # displayed width, i.e. after rotation
    height: int  # displayed height, i.e. after rotation
    fps: float  # average frame rate of the source
    duration_s: float
    n_frames_estimate: int  # at the source frame rate
    has_audio: bool
    rotation: int  # clockwise degrees (0/90/180/270) to turn decoded pictures upright
    codec: str
    variable_frame_rate: bool  # guess from the spacing of the first packets' timestamps
    start_time_s: float = 0.0  # video time 0 on the container clock


# ----------------------------------------------------------------------------- opening


def _open(path: PathLike) -> av.container.InputContainer:
    """Open ``path`` for reading, mapping FFmpeg's failures to the named MediaErrors."""
    path = Path(path)
    if not path.exists():
        raise MediaNotFoundError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise MediaError(f"{path} is a folder, not a media file")
    advice = "it is not a media file, or it is corrupt or truncated: re-download or re-encode it"
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as err:
        raise CorruptMediaError(f"{path} cannot be opened as audio/video ({err}); {advice}") from err
    if not (container.streams.video or container.streams.audio):  # e.g. a cut-off mp4 header
        container.close()
        raise CorruptMediaError(f"{path} holds no audio/video streams; {advice}")
    return container


def _video_stream(container: av.container.InputContainer, path: PathLike) -> av.video.stream.VideoStream:
    """The first real video stream (cover art and text 'video' excluded) or NoVideoStreamError."""
    if container.format.name not in _TEXT_FORMATS:
        for stream in container.streams.video:
            attached = stream.disposition & av.stream.Disposition.attached_pic
            if not attached and stream.codec_context.name not in _TEXT_CODECS:
                return stream
    kinds = ", ".join(s.type for s in container.streams) or "none"
    raise NoVideoStreamError(f"{path} has no video stream (streams: {kinds}); pass a video file")


def _seconds(value: int | None, time_base: Fraction | None) -> Fraction | None:
    """A timestamp in seconds, or None when it is unknown."""
    if value is None or time_base is None:
        return None
    return Fraction(value) * time_base


def _stream_origin(container: av.container.InputContainer, stream: av.stream.Stream) -> Fraction:
    """Start of ``stream`` on the container clock (falls back to the container start, then 0)."""
    start = _seconds(stream.start_time, stream.time_base)
    if start is None and container.start_time is not None:
        start = Fraction(container.start_time, av.time_base)
    return start if start is not None else Fraction(0)


def _clockwise_rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Clockwise display rotation from the frame's display matrix, else the legacy ``rotate`` tag."""
    ccw = frame.rotation  # FFmpeg's display-matrix angle, counter-clockwise, in [-180, 180]
    if ccw:
        return int(round(-ccw / 90.0)) * 90 % 360
    try:
        return int(round(float(stream.metadata.get("rotate", 0)) / 90.0)) * 90 % 360
    except ValueError:
        return 0


# ----------------------------------------------------------------------------- probing


def probe_video(path: PathLike) -> VideoInfo:
    """Describe the video stream of ``path``; raises the named MediaError for unusable files.

    Decodes the first frame so that corrupt files fail here, at open, not later mid-pipeline.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        pts: list[int] = []
        decoder = _decoded(container, stream, path, pts)
        first = next(decoder)  # raises CorruptMediaError when nothing decodes
        decoder.close()
        with contextlib.suppress(av.FFmpegError):  # demux only (cheap) for the VFR guess
            for packet in container.demux(stream):
                if len(pts) >= _VFR_PACKETS:
                    break
                if packet.pts is not None:
                    pts.append(packet.pts)

        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = _seconds(stream.duration, stream.time_base)
        if duration is None and container.duration is not None:
            duration = Fraction(container.duration, av.time_base)
        if not rate and duration and stream.frames:
            rate = stream.frames / duration
        fps = float(rate) if rate else 25.0
        duration_s = float(duration) if duration else 0.0
        rotation = _clockwise_rotation(first, stream)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=str(path), width=width, height=height, fps=fps, duration_s=duration_s,
            n_frames_estimate=int(stream.frames or round(duration_s * fps)),
            has_audio=bool(container.streams.audio), rotation=rotation,
            codec=stream.codec_context.name, variable_frame_rate=_irregular(pts),
            start_time_s=float(_stream_origin(container, stream)),
        )


def _irregular(pts: list[int]) -> bool:
    """True when presentation-time steps vary by more than 10 % of the median step (+1 tick)."""
    steps = np.diff(np.unique(np.asarray(pts, dtype=np.int64)))
    if steps.size < 2:
        return False
    median = float(np.median(steps))
    return bool(steps.max() - steps.min() > 0.1 * median + 1)


# ----------------------------------------------------------------------------- frames


def iter_frames(path: PathLike, fps: float = 25.0, max_frames: int | None = None,
                max_side: int | None = None) -> Iterator[np.ndarray]:
    """Stream upright uint8 RGB frames (H, W, 3) resampled to a constant ``fps`` by timestamps.

    Output frame ``k`` is the source frame on screen at video time ``k / fps`` (frames are
    dropped or repeated, never blended), so VFR and 30 fps sources come out at exactly ``fps``;
    the last source frame is held for its own duration. ``max_side`` downsizes (area
    interpolation, aspect kept) so the longer side is at most ``max_side``. Rotation metadata is
    applied. Unusable files raise at this call; a file that breaks off mid-way (truncated
    download) yields the frames decoded so far, then stops with a ``TruncatedMediaWarning``.
    """
    info = probe_video(path)  # raises the named errors now, not at the first next()
    return _resampled(path, info, _output_rate(fps, max_frames, max_side), max_frames, max_side)


def _output_rate(fps: float, max_frames: int | None, max_side: int | None) -> Fraction:
    """Validate the iter_frames arguments; the output rate as an exact fraction."""
    if fps <= 0 or (max_frames is not None and max_frames < 1) or (max_side is not None and max_side < 1):
        raise ValueError(f"need fps > 0, max_frames >= 1 or None, max_side >= 1 or None; "
                         f"got fps={fps}, max_frames={max_frames}, max_side={max_side}")
    return Fraction(fps).limit_denominator(1_000_000)


def _resampled(path: PathLike, info: VideoInfo, fps: Fraction, max_frames: int | None,
               max_side: int | None) -> Iterator[np.ndarray]:
    """Generator behind iter_frames: hold/drop decoded frames on the constant output clock."""
    limit = max_frames if max_frames is not None else float("inf")
    interval = 1 / Fraction(info.fps).limit_denominator(1_000_000)  # average source frame interval
    k = 0  # next output frame index; its time is k / fps

    def show(frame: av.VideoFrame, until: Fraction) -> Iterator[np.ndarray]:
        """Emit ``frame`` for every output time before ``until`` (converted once, copied on repeats)."""
        nonlocal k
        image = None
        while k < limit and k / fps < until:
            image = _to_rgb(frame, info, max_side) if image is None else image.copy()
            yield image
            k += 1

    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        origin = _stream_origin(container, stream)
        frame, start = None, Fraction(0)
        for nxt in _decoded(container, stream, path):
            t = _seconds(nxt.pts, nxt.time_base)
            t = t - origin if t is not None else start + (interval if frame is not None else 0)
            if frame is not None:
                yield from show(frame, t)  # output times before t still show the previous frame
                if k >= limit:
                    return
            frame, start = nxt, t
        # Hold the last frame for its container duration, but at least one average source frame
        # interval (muxers guess the last duration; VFR mp4s often claim ~1 ms).
        yield from show(frame, start + max(_seconds(frame.duration, frame.time_base) or 0, interval))


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
             path: PathLike, pts_log: list[int] | None = None) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order; skips damaged packets, warns when the file breaks off.

    Raises CorruptMediaError when not a single frame decodes.
    """
    count, problems = 0, []
    try:
        for packet in container.demux(stream):
            if pts_log is not None and packet.pts is not None:
                pts_log.append(packet.pts)
            try:
                frames = packet.decode()
            except av.FFmpegError as err:  # one damaged packet: skip it, keep decoding
                problems.append(err)
                continue
            for frame in frames:
                count += 1
                yield frame
    except av.FFmpegError as err:  # the demuxer cannot go on: the file ends early
        problems.append(err)
        with contextlib.suppress(av.FFmpegError):
            for frame in stream.codec_context.decode(None):  # frames still inside the decoder
                count += 1
                yield frame
    if count == 0:
        raise CorruptMediaError(f"{path}: the video stream has no decodable frame "
                                f"({problems[0] if problems else 'empty'}); re-encode or re-download it")
    if problems or (stream.frames and count < stream.frames):
        listed = f" of {stream.frames} listed" if stream.frames else ""
        warnings.warn(f"{path}: decoded {count}{listed} frames, then stopped ({problems[-1] if problems else 'EOF'});"
                      " the file is probably truncated: the frames decoded so far are returned",
                      TruncatedMediaWarning, stacklevel=3)


def _to_rgb(frame: av.VideoFrame, info: VideoInfo, max_side: int | None) -> np.ndarray:
    """Frame → upright (H, W, 3) uint8 RGB, area-downsized so the longer side ≤ max_side."""
    width, height = frame.width, frame.height
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    image = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    if info.rotation:
        image = np.ascontiguousarray(np.rot90(image, k=-info.rotation // 90))  # negative k: clockwise
    return image


def read_video(path: PathLike, fps: float = 25.0, max_frames: int | None = None,
               max_side: int | None = None) -> tuple[np.ndarray, VideoInfo]:
    """All frames (N, H, W, 3) uint8 at a constant ``fps`` (see iter_frames) and the probe info."""
    rate = _output_rate(fps, max_frames, max_side)
    info = probe_video(path)
    return np.stack(list(_resampled(path, info, rate, max_frames, max_side))), info


# ----------------------------------------------------------------------------- audio


def read_audio(path: PathLike, sample_rate: int = 16000, mono: bool = True) -> np.ndarray:
    """Decode the first audio stream as float32 in [-1, 1]: (n,) when ``mono``, else (channels, n).

    Any input rate is resampled to ``sample_rate``; mono averages the channels. When the file
    also has video, sample 0 is aligned to video time 0 (the video stream's start): audio that
    starts later is front-padded with silence, audio that starts earlier is trimmed. Encoder
    priming (AAC) is removed by FFmpeg through the container's edit list. Gaps inside the audio
    stream are not filled. Audio-only files start at their first decoded sample.
    """
    with _open(path) as container:
        if not container.streams.audio:
            kinds = ", ".join(s.type for s in container.streams) or "none"
            raise NoAudioError(f"{path} has no audio stream (streams: {kinds}); "
                               "pass a file with sound or a separate audio file")
        stream = container.streams.audio[0]
        try:
            origin = _stream_origin(container, _video_stream(container, path))
        except NoVideoStreamError:
            origin = None
        chunks, n_source, source_rate, first_time = [], 0, None, None
        resampler = None
        try:
            for frame in container.decode(stream):
                if resampler is None:
                    source_rate, first_time = frame.sample_rate, _seconds(frame.pts, frame.time_base)
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=sample_rate)
                n_source += frame.samples
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]  # (channels, n)
        except av.FFmpegError as err:
            warnings.warn(f"{path}: audio decoding stopped ({err}); the file is probably truncated",
                          TruncatedMediaWarning, stacklevel=2)
        if resampler is not None:
            chunks += [f.to_ndarray() for f in resampler.resample(None)]
    if n_source == 0:
        raise MediaError(f"{path}: the audio stream has zero length; pass a file with sound")
    audio = np.concatenate(chunks, axis=1).astype(np.float32)  # (channels, n)
    audio = _fit_length(audio, 0, round(n_source * sample_rate / source_rate))  # drop resampler tail
    if origin is not None and first_time is not None:
        audio = _fit_length(audio, round((first_time - origin) * sample_rate), None)
    audio = np.clip(audio, -1.0, 1.0)
    return audio.mean(axis=0) if mono else audio


def _fit_length(audio: np.ndarray, shift: int, length: int | None) -> np.ndarray:
    """Delay (channels, n) audio by ``shift`` samples (negative trims), then pad/trim to ``length``."""
    if shift > 0:
        audio = np.pad(audio, ((0, 0), (shift, 0)))
    elif shift < 0:
        audio = audio[:, -shift:]
    if length is not None:
        audio = np.pad(audio, ((0, 0), (0, max(0, length - audio.shape[1]))))[:, :length]
    return audio


# ----------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """``deadlib.core.files.atomic_output`` for media: a missing folder is a ``MediaError``."""
    if not Path(path).parent.is_dir():
        raise MediaError(f"cannot write {path}: folder {Path(path).parent} does not exist; create it first")
    with files.atomic_output(path, make_parent=False) as tmp:
        yield tmp


def _check_frame(frame: np.ndarray, shape: tuple[int, ...] | None, index: int) -> np.ndarray:
    """Validate one (H, W, 3) uint8 frame with even sides, matching the first frame's shape."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame {index}: expected (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    if frame.shape[0] % 2 or frame.shape[1] % 2:
        raise ValueError(f"frame {index}: H.264/yuv420p needs even height and width, got "
                         f"{frame.shape[:2]}; crop or pad the frames by one pixel")
    if shape is not None and frame.shape != shape:
        raise ValueError(f"frame {index} has shape {frame.shape}, the first frame had {shape}")
    return frame


def _mono_float(audio: np.ndarray) -> np.ndarray:
    """Audio as a contiguous float32 mono vector (n,) clipped to [-1, 1]."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio must be a non-empty mono vector (n,), got shape {audio.shape}")
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0))


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps: float = 25,
                audio: np.ndarray | None = None, sample_rate: int = 16000, crf: int = 18,
                preset: str = "medium", lookahead: int | None = None) -> None:
    """Encode RGB frames (streamed) to H.264/yuv420p + optional mono AAC, atomically and deterministically.

    ``lookahead``: x264's rc-lookahead in frames (None: the preset's, 40 for medium). x264 holds that
    many frames and their analysis: ≈ 400 MiB at 1080p with the preset's 40, ≈ 300 MiB at 20.

    Writing the same frames and audio twice gives byte-identical files (single-threaded x264,
    bit-exact muxing, no creation time). Frame ``k`` gets time ``k / fps`` and audio sample 0 is
    video time 0, matching the readers. The file appears only once complete.
    """
    rate = Fraction(fps).limit_denominator(1_000_000)
    audio = _mono_float(audio) if audio is not None else None
    stream_in = iter(frames)
    first = next(stream_in, None)
    if first is None:
        raise ValueError(f"cannot write {path}: no frames given")
    first = _check_frame(first, None, 0)
    with atomic_output(path) as tmp:
        options = {"fflags": "+bitexact"}
        if Path(path).suffix.lower() in (".mp4", ".mov", ".m4v"):
            options["movflags"] = "+faststart"
        with av.open(str(tmp), mode="w", container_options=options) as container:
            video = container.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
            video.codec_context.thread_count = 1
            video.codec_context.options = {"crf": str(crf), "preset": preset,
                                           **({"rc-lookahead": str(int(lookahead))} if lookahead is not None else {})}
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=sample_rate, layout="mono")
                sound.bit_rate = 96_000
                sound.codec_context.flags |= av.codec.context.Flags.bitexact
            written = 0  # audio samples sent to the encoder so far

            def push_audio(until: int) -> None:
                """Encode audio samples [written, until) so audio interleaves with the video."""
                nonlocal written
                if sound is None or min(until, audio.size) <= written:
                    return
                until = min(until, audio.size)
                chunk = av.AudioFrame.from_ndarray(audio[None, written:until], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = sample_rate, written, Fraction(1, sample_rate)
                container.mux(sound.encode(chunk))
                written = until

            index, frame = 0, first
            while frame is not None:
                picture = av.VideoFrame.from_ndarray(_check_frame(frame, first.shape, index), format="rgb24")
                picture.pts, picture.time_base = index, 1 / rate
                container.mux(video.encode(picture))
                index += 1
                push_audio(round(index / rate * sample_rate))
                frame = next(stream_in, None)
            container.mux(video.encode(None))
            if sound is not None:
                push_audio(audio.size)
                container.mux(sound.encode(None))


def write_audio(path: PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write float audio in [-1, 1], (n,) or (channels, n), as 16-bit PCM WAV, atomically and deterministically."""
    audio = np.asarray(audio, dtype=np.float64)
    audio = audio[None] if audio.ndim == 1 else audio  # (channels, n)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise ValueError(f"audio must be (n,) or (channels, n) with n > 0, got shape {audio.shape}")
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").T  # (n, channels) interleaved
    with atomic_output(path) as tmp:
        with wave.open(str(tmp), "wb") as out:
            out.setnchannels(pcm.shape[1])
            out.setsampwidth(2)
            out.setframerate(int(sample_rate))
            out.writeframes(pcm.tobytes())


def configure_mediapy() -> None:
    """Point mediapy (notebook video previews) at the registry ffmpeg binary from imageio-ffmpeg."""
    import imageio_ffmpeg
    import mediapy

    mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())
