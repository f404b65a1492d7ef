"""Dubbing inputs: validate everything BEFORE the long work, and map output frames to video frames.

Every check here raises :class:`DubError` (or a subclass) whose message names the argument, the
file and what to do. ``deadlib.dub.dubbing`` calls them in this order: output path (writable, .mp4, not
an input), new audio (decodable, non-empty; any rate / channel count is resampled to 16 kHz mono),
video (decodable, has a video stream), models (present, sizes match the profile) — only then does
it decode, track and render.

Timeline. The output has one frame per 1/25 s of the NEW audio. When the audio is longer than
the video, the video frames are looped ping-pong (0 … N−1, N−2 … 1, 0 …): the head never jumps
back to its first pose. When it is shorter, the video is trimmed to the audio (``shorter="trim"``,
default) or the audio is padded with silence to the video's length (``shorter="pad"``; the mouth
then rests closed, the silence gate of the audio-to-expression model makes sure of it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from deadlib.data.video import MediaError, VideoInfo, probe_video, read_audio
from deadlib.model.renderer import RendererConfig

SHORTER = ("trim", "pad")
OUTPUT_SUFFIXES = (".mp4",)


class DubError(ValueError):
    """Dubbing cannot run; the message says what was wrong and what to do."""


class DubInputError(DubError):
    """A bad --video / --audio / --out argument."""


class DubCheckpointError(DubError):
    """A model file is missing or was made for another profile, shape or expression basis."""


def check_output_path(out: str | os.PathLike, inputs: list[str | os.PathLike] = ()) -> Path:
    """The output path, after checking that an .mp4 can be written there (a probe file is created
    and removed in its folder) and that it is none of the inputs."""
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DubInputError(f"--out {out}: the dub is an H.264/AAC mp4; give a path ending in .mp4")
    if out.is_dir():
        raise DubInputError(f"--out {out} is a folder; give a file path ending in .mp4")
    folder = out.parent
    if not folder.is_dir():
        raise DubInputError(f"--out {out}: folder {folder} does not exist; create it first")
    for path in inputs:
        if Path(path).exists() and out.exists() and os.path.samefile(path, out):
            raise DubInputError(f"--out {out} is one of the inputs; write the dub to another file")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".dub-probe-", suffix=".tmp"):
            pass
    except OSError as err:
        raise DubInputError(f"--out {out}: cannot write to {folder} ({err.strerror or err}); "
                            "choose a writable folder") from err
    if out.exists() and not os.access(out, os.W_OK):
        raise DubInputError(f"--out {out} exists and is read-only; remove it or choose another path")
    return out


def load_new_audio(path: str | os.PathLike, sample_rate: int = 16000, fps: float = 25.0) -> np.ndarray:
    """The driving audio as float32 mono (n,) at ``sample_rate`` (any input rate/channels resampled).

    Raises DubInputError for a missing, corrupt, silent-stream-less or zero-length file, or audio
    shorter than one video frame.
    """
    try:
        audio = read_audio(path, sample_rate)
    except MediaError as err:
        raise DubInputError(f"--audio {path}: {err}") from err
    if len(audio) < sample_rate / fps:
        raise DubInputError(f"--audio {path} lasts {len(audio) / sample_rate * 1000:.1f} ms, shorter than one "
                            f"video frame ({1000 / fps:.0f} ms); pass the speech to dub")
    if not np.all(np.isfinite(audio)):
        raise DubInputError(f"--audio {path} decodes to non-finite samples; re-encode it (e.g. as 16-bit WAV)")
    return audio


def check_video(path: str | os.PathLike) -> VideoInfo:
    """Probe the video (decodes its first frame) → VideoInfo; DubInputError when it is unusable."""
    try:
        return probe_video(path)
    except MediaError as err:
        raise DubInputError(f"--video {path}: {err}") from err


def pingpong(n_video: int, n_out: int) -> np.ndarray:
    """(n_out,) indices looping ``n_video`` frames forth and back: 0 … N−1, N−2 … 1, 0 … ."""
    if n_video < 1:
        raise ValueError("need at least one video frame")
    if n_video == 1:
        return np.zeros(n_out, np.int64)
    period = 2 * n_video - 2
    r = np.arange(n_out) % period
    return np.where(r < n_video, r, period - r).astype(np.int64)


def frame_timeline(n_video: int, n_audio_frames: int, shorter: str = "trim") -> np.ndarray:
    """Video frame index of every output frame (see the module docstring for the policy)."""
    if shorter not in SHORTER:
        raise DubError(f"shorter must be one of {SHORTER}, got {shorter!r}")
    if n_audio_frames >= n_video:
        return pingpong(n_video, n_audio_frames)
    if shorter == "trim":
        return np.arange(n_audio_frames, dtype=np.int64)
    return np.arange(n_video, dtype=np.int64)


def fit_audio(audio: np.ndarray, n_frames: int, sample_rate: int = 16000, fps: float = 25.0) -> np.ndarray:
    """Pad ``audio`` with silence to cover ``n_frames`` (never trims: the new audio is kept whole)."""
    need = int(round(n_frames * sample_rate / fps))
    return np.pad(audio, (0, max(0, need - len(audio)))).astype(np.float32)


def audio_frames(audio: np.ndarray, sample_rate: int = 16000, fps: float = 25.0) -> int:
    """Number of output frames for ``audio``: its duration in frames, rounded (≥ 1)."""
    return max(1, int(round(len(audio) * fps / sample_rate)))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _describe(cfg: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={cfg.get(k)}" for k in keys)


def inspect_checkpoint(path: str | os.PathLike, expected: RendererConfig, profile: str,
                       what: str = "--identity") -> dict:
    """Light look at a renderer checkpoint (memory-mapped): its profile, identities and renderer sizes.

    Raises DubCheckpointError when it is missing, not a renderer checkpoint, or its renderer sizes
    differ from ``expected`` (the sizes of ``profile``) — naming both profiles and the fields.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise DubCheckpointError(f"{what}: no renderer checkpoint at {path}; pass an adapted checkpoint folder "
                                 "(holding checkpoint.pt) or 'adapt-now'")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise DubCheckpointError(f"{what}: {path} is not a readable torch checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or "renderer_config" not in ckpt or "textures" not in ckpt:
        raise DubCheckpointError(f"{what}: {path} is not a renderer checkpoint of deadlib.train.loop")
    stored = RendererConfig.from_dict(ckpt["renderer_config"]).to_dict()
    want = expected.to_dict()
    diff = [k for k in want if stored.get(k) != want[k]]
    if diff:
        raise DubCheckpointError(
            f"{what}: checkpoint {path} was trained with profile {ckpt.get('profile')!r} "
            f"({_describe(stored, diff)}) but profile {profile!r} expects ({_describe(want, diff)}); "
            f"run dub with --profile {ckpt.get('profile')} or use a checkpoint of profile {profile!r}")
    return {"path": path, "profile": ckpt.get("profile"), "identities": list(ckpt["identities"]),
            "step": int(ckpt.get("step", 0)), "train_config": ckpt.get("train_config")}


def pick_identity(info: dict, name: str | None) -> str:
    """The texture to render with: ``name`` if given; else the folder's name when it is an identity
    of the checkpoint; else the identity added last (an adapted checkpoint appends the new actor)."""
    identities = info["identities"]
    if not identities:
        raise DubCheckpointError(f"{info['path']} holds no neural texture; adapt the prior to the actor first")
    if name is not None:
        if name not in identities:
            raise DubCheckpointError(f"{info['path']} has no texture for identity {name!r}; it holds {identities}")
        return name
    folder = Path(info["path"]).parent.name
    return folder if folder in identities else identities[-1]
