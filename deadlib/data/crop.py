"""Temporally stable square face crops and their 2x3 affine transforms (source pixels → crop pixels).

The crop of frame t is a square of side ``scale`` × the face size (max side of the landmark
bounding box), centred on the box centre shifted down by ``shift_down`` × face size so that
the chin and an opened jaw stay inside. The prepare stage passes the *posed neutral* mesh
(``face3d.posed_neutral``: the video's identity shape under each frame's pose), so talking —
the jaw opening and closing — does not move or scale the crop; only head motion does. Centre and (log) side are smoothed over time (strongly:
the renderer must not see the background swim) and interpolated across frames without a face,
so every frame — including pass-through frames — has a crop. The transform maps continuous
source coordinates (0 at the left/top edge, pixel i spans [i, i+1)) to crop coordinates of a
``resolution``² image: ``crop_xy = T[:, :2] @ xy + T[:, 2]``; ``invert_transform`` gives the way
back (used to paste rendered crops into the original frames). Parts of the crop outside the
frame are padded (``edge`` or ``reflect``).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import cv2
import numpy as np

from deadlib.data.track import face_boxes, fill_gaps, smooth_series

PAD_MODES = {"edge": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}


class CropError(ValueError):
    """Bad crop settings or inputs."""


def crop_boxes(landmarks: np.ndarray, valid: np.ndarray, scale: float = 1.6, shift_down: float = 0.1,
               smoothing: Mapping | None = None, fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed crop centres (N, 2) and sides (N,) in source pixels from meshes (N, V, ≥2)."""
    valid = np.asarray(valid, bool)
    if scale <= 0:
        raise CropError(f"prepare.crop.scale must be > 0, got {scale}")
    centre = np.zeros((len(valid), 2), np.float64)
    side = np.ones(len(valid), np.float64)
    c, size = face_boxes(landmarks[valid].astype(np.float64))
    centre[valid] = c + np.stack([np.zeros_like(size), shift_down * size], -1)
    side[valid] = scale * size
    # smooth centre and log-side together: (N, 3)
    track = np.concatenate([centre, np.log(np.maximum(side, 1e-6))[:, None]], 1)
    track = fill_gaps(smooth_series(track, valid, smoothing, fps), valid)
    return track[:, :2], np.exp(track[:, 2])


def crop_transform(centres: np.ndarray, sides: np.ndarray, resolution: int) -> np.ndarray:
    """(N, 2) centres, (N,) sides → (N, 2, 3) affines mapping source pixels to ``resolution``² crops."""
    r = resolution / np.asarray(sides, np.float64)  # crop px per source px
    out = np.zeros((len(r), 2, 3), np.float64)
    out[:, 0, 0] = out[:, 1, 1] = r
    out[:, :, 2] = resolution / 2 - r[:, None] * centres
    return out


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of (N, 2, 3) affines (crop pixels → source pixels)."""
    lin = np.linalg.inv(transform[:, :, :2])  # (N, 2, 2)
    return np.concatenate([lin, -np.einsum("nij,nj->ni", lin, transform[:, :, 2])[..., None]], -1)


def map_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply (N, 2, 3) affines to points (N, V, 2 or 3); z (if any) is scaled like x and y."""
    out = np.array(points, dtype=np.float32, copy=True)
    xy = np.einsum("nij,nvj->nvi", transform[:, :, :2], points[..., :2]) + transform[:, None, :, 2]
    out[..., :2] = xy
    if points.shape[-1] > 2:
        out[..., 2] = points[..., 2] * np.sqrt(np.abs(np.linalg.det(transform[:, :, :2])))[:, None]
    return out


def crop_frame(frame: np.ndarray, transform: np.ndarray, resolution: int, pad: str = "edge") -> np.ndarray:
    """Crop one (H, W, 3) frame with one (2, 3) affine → (resolution, resolution, 3) uint8.

    Only the region under the crop is touched: it is cut (padded where it leaves the frame),
    area-downsampled when the crop shrinks it more than 2× (no aliasing), then warped bilinearly
    with the exact sub-pixel transform.
    """
    if pad not in PAD_MODES:
        raise CropError(f"unknown pad mode {pad!r}; choose one of {sorted(PAD_MODES)}")
    t = np.asarray(transform, np.float64)
    inv = invert_transform(t[None])[0]
    corners = inv[:, :2] @ np.array([[0, resolution, 0, resolution], [0, 0, resolution, resolution]]) + inv[:, 2:]
    x0, y0 = np.floor(corners.min(1)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(1)).astype(int) + 2
    h, w = frame.shape[:2]
    sub = frame[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
    if sub.size == 0:  # crop entirely outside the frame: pad from the nearest edge pixels
        sub = frame[np.clip(y0, 0, h - 1):np.clip(y0, 0, h - 1) + 1, np.clip(x0, 0, w - 1):np.clip(x0, 0, w - 1) + 1]
        sub = cv2.copyMakeBorder(sub, 0, y1 - y0 - 1, 0, x1 - x0 - 1, PAD_MODES["edge"])
    else:
        sub = cv2.copyMakeBorder(sub, max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w), PAD_MODES[pad])
    lin, off = t[:, :2], t[:, 2] + t[:, :2] @ np.array([x0, y0], np.float64)  # sub-image coords → crop
    shrink = 1.0 / np.sqrt(abs(np.linalg.det(lin)))  # source px per crop px
    if shrink > 2.0:
        size = (max(1, round(sub.shape[1] / (shrink / 1.5))), max(1, round(sub.shape[0] / (shrink / 1.5))))
        factor = np.array([sub.shape[1] / size[0], sub.shape[0] / size[1]])  # old px per new px
        sub = cv2.resize(sub, size, interpolation=cv2.INTER_AREA)
        lin = lin * factor[None, :]
    # continuous coords (pixel i spans [i, i+1)) → OpenCV's integer pixel centres
    matrix = np.concatenate([lin, (off + lin @ np.array([0.5, 0.5]) - 0.5)[:, None]], 1)
    return cv2.warpAffine(sub, matrix, (resolution, resolution), flags=cv2.INTER_LINEAR,
                          borderMode=PAD_MODES[pad])


def crop_frames(frames: Iterable[np.ndarray], transforms: np.ndarray, resolution: int,
                pad: str = "edge", source_scale: float = 1.0) -> Iterator[np.ndarray]:
    """Crop a stream of frames with per-frame transforms (N, 2, 3) → (resolution, resolution, 3) each.

    ``source_scale`` = source pixels per pixel of the given frames (> 1 when the frames were
    decoded downscaled, e.g. for 4K input): the transforms stay in source pixels.
    """
    for k, frame in enumerate(frames):
        if k >= len(transforms):
            raise CropError(f"more frames than crop transforms ({len(transforms)})")
        t = np.array(transforms[k], np.float64)
        t[:, :2] *= source_scale
        yield crop_frame(frame, t, resolution, pad)


def crop_jitter(centres: np.ndarray, sides: np.ndarray, resolution: int, valid: np.ndarray | None = None) -> float:
    """Mean |second temporal difference| of the crop centre in crop pixels (0 = perfectly steady
    or uniformly moving). Only triples of consecutive valid frames count."""
    valid = np.ones(len(centres), bool) if valid is None else np.asarray(valid, bool)
    if len(centres) < 3:
        return 0.0
    accel = np.linalg.norm(centres[2:] - 2 * centres[1:-1] + centres[:-2], axis=1) * resolution / sides[1:-1]
    ok = valid[2:] & valid[1:-1] & valid[:-2]
    return float(accel[ok].mean()) if ok.any() else 0.0
