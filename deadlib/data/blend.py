"""Post-processing: paste a rendered face crop back into its original frame and hide the seam.

The renderer works on square crops; the dubbed video needs the crop back in the full frame.
``paste_back`` warps the crop and its mask (crop space) into the frame with the inverse of the
crop affine, shrinks and feathers the mask, optionally matches the crop's colour to the frame in
a ring just inside the mask boundary, and blends with a Laplacian pyramid (low frequencies mix
over a wide band, high frequencies over a narrow one) or a plain feathered alpha.
``method="none"`` is the paper's ablation "w/o post-processing": the whole crop square is pasted
hard, without mask, feathering or colour matching.

Affine convention. ``crop_affine`` (2, 3) maps ORIGINAL-frame pixel coordinates (x, y) to CROP
pixel coordinates: ``crop_xy = A[:, :2] @ frame_xy + A[:, 2]`` — the same direction as
``deadlib.data.crop.crop_transform``. ``coords`` says where pixel centres are:

* ``"continuous"`` (default, as in ``deadlib.data.crop``): pixel i spans [i, i+1), centre i + 0.5.
* ``"opencv"``: pixel centres at integers, i.e. the crop is ``cv2.warpAffine(frame, A, (S, S))``.

The way back is ``cv2.warpAffine(crop, A_opencv, (W, H), flags=WARP_INVERSE_MAP)``: OpenCV then
samples the crop at ``A_opencv @ frame_xy`` for every frame pixel, so no matrix is inverted.

Guarantee: a frame pixel whose back-projected location lies outside the mask's support (where
the bilinearly warped mask is exactly 0) is returned bit-identical (erosion by r followed by a
blur of radius r never grows the support; the blend is gated by the feathered alpha).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import cv2
import numpy as np

METHODS = ("laplacian", "feather", "none")
COORDS = ("continuous", "opencv")


class BlendError(ValueError):
    """Bad inputs to the paste-back step (shapes, dtypes, affine, method)."""


def to_opencv_affine(affine: np.ndarray) -> np.ndarray:
    """Continuous-coordinate affine (pixel centres at i + 0.5) → OpenCV convention (centres at i).

    If c = L f + t in continuous coordinates, then with c = c' + .5, f = f' + .5:
    c' = L f' + (t + L·[.5, .5] − .5).
    """
    a = np.asarray(affine, np.float64)
    out = a.copy()
    out[:, 2] = a[:, 2] + a[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return out


def _check_inputs(frame: np.ndarray, crop: np.ndarray, affine: np.ndarray, mask: np.ndarray | None,
                  method: str, coords: str, feather_px: int, levels: int) -> None:
    if method not in METHODS:
        raise BlendError(f"unknown blend method {method!r}; choose one of {METHODS}")
    if coords not in COORDS:
        raise BlendError(f"unknown coordinate convention {coords!r}; choose one of {COORDS}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise BlendError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1] or crop.dtype != np.uint8:
        raise BlendError(f"crop must be a square (S, S, 3) uint8 image, got {crop.shape} {crop.dtype}")
    if affine.shape != (2, 3) or not np.all(np.isfinite(affine)):
        raise BlendError(f"crop_affine must be a finite (2, 3) matrix, got shape {affine.shape}")
    if abs(np.linalg.det(affine[:, :2])) < 1e-12:
        raise BlendError("crop_affine is singular (its 2x2 part has zero determinant)")
    if mask is not None:
        if mask.shape != crop.shape[:2]:
            raise BlendError(f"mask must be (S, S) = {crop.shape[:2]} in crop space, got {mask.shape}")
        if mask.size and (np.nanmin(mask) < 0 or np.nanmax(mask) > 1 or np.isnan(mask).any()):
            raise BlendError("mask values must lie in [0, 1] (pass a float mask, not 0..255)")
    if feather_px < 0 or levels < 1:
        raise BlendError(f"need feather_px >= 0 and levels >= 1, got {feather_px}, {levels}")


def _roi(affine_cv: np.ndarray, size: int, frame_hw: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    """Frame-pixel box (x0, y0, x1, y1) covering the crop square plus ``margin``, clipped to the frame."""
    lin, off = affine_cv[:, :2], affine_cv[:, 2]
    inv = np.linalg.inv(lin)
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    pts = (corners - off) @ inv.T                                       # (4, 2) frame pixel coords
    h, w = frame_hw
    x0 = max(int(np.floor(pts[:, 0].min())) - margin, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - margin, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + margin + 1, w)
    y1 = min(int(np.ceil(pts[:, 1].max())) + margin + 1, h)
    return x0, y0, x1, y1


def warp_to_frame(image: np.ndarray, affine_cv: np.ndarray, box: tuple[int, int, int, int],
                  border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """Warp a crop-space float image into the frame box (x0, y0, x1, y1) → (y1-y0, x1-x0[, C]).

    ``affine_cv`` maps frame pixels (OpenCV convention) to crop pixels; shifting its translation
    by the box origin makes it map box pixels to crop pixels.
    """
    x0, y0, x1, y1 = box
    m = affine_cv.copy()
    m[:, 2] = affine_cv[:, 2] + affine_cv[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=border, borderValue=0)


def feather_mask(alpha: np.ndarray, feather_px: int) -> np.ndarray:
    """Erode by ``feather_px`` (square) then blur with radius ``feather_px`` → a ramp of width 2·r
    that stays inside the original support (an opening never grows a set)."""
    if feather_px == 0:
        return alpha
    k = 2 * feather_px + 1
    kernel = np.ones((k, k), np.uint8)
    eroded = cv2.erode(alpha, kernel, borderType=cv2.BORDER_REPLICATE)
    return cv2.GaussianBlur(eroded, (k, k), sigmaX=feather_px / 2.0, borderType=cv2.BORDER_REPLICATE)


def seam_ring(alpha: np.ndarray, ring_px: int) -> np.ndarray:
    """Boolean ring of width ``ring_px`` just inside the boundary of {alpha > 0.5}: (h, w) bool."""
    inside = (alpha > 0.5).astype(np.uint8)
    k = 2 * ring_px + 1
    core = cv2.erode(inside, np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return inside.astype(bool) & ~core.astype(bool)


def match_colour(source: np.ndarray, reference: np.ndarray, region: np.ndarray,
                 gain_limits: tuple[float, float] = (0.5, 2.0), min_pixels: int = 16) -> np.ndarray:
    """Per-channel mean/std transfer of ``source`` toward ``reference``, statistics measured in
    ``region`` only; applied to all of ``source`` (h, w, 3) float. The std gain is clipped to
    ``gain_limits`` so a textured ring cannot blow up the contrast. Too small a region → unchanged."""
    if region.sum() < min_pixels:
        return source
    s, r = source[region], reference[region]                            # (P, 3)
    gain = np.clip((r.std(0) + 1e-6) / (s.std(0) + 1e-6), *gain_limits)
    return (source - s.mean(0)) * gain + r.mean(0)


def _levels_for(shape: tuple[int, int], levels: int) -> int:
    """Pyramid depth so that the coarsest level keeps at least ~8 px on its short side."""
    return max(1, min(levels, int(np.log2(max(min(shape), 1) / 8)) + 1))


def laplacian_blend(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, levels: int) -> np.ndarray:
    """Burt–Adelson blend of float images (h, w, 3) with weights alpha (h, w): each Laplacian band
    is mixed with the Gaussian-pyramid mask of the same scale."""
    levels = _levels_for(alpha.shape, levels)
    g_fg, g_bg, g_a = [fg], [bg], [alpha]
    for _ in range(levels - 1):
        g_fg.append(cv2.pyrDown(g_fg[-1]))
        g_bg.append(cv2.pyrDown(g_bg[-1]))
        g_a.append(cv2.pyrDown(g_a[-1]))
    out = g_a[-1][..., None] * g_fg[-1] + (1 - g_a[-1][..., None]) * g_bg[-1]   # coarsest: Gaussian level
    for k in range(levels - 2, -1, -1):
        size = (g_fg[k].shape[1], g_fg[k].shape[0])
        lap_fg = g_fg[k] - cv2.pyrUp(g_fg[k + 1], dstsize=size)
        lap_bg = g_bg[k] - cv2.pyrUp(g_bg[k + 1], dstsize=size)
        a = g_a[k][..., None]
        out = cv2.pyrUp(out, dstsize=size) + a * lap_fg + (1 - a) * lap_bg
    return out


def paste_back(frame: np.ndarray, crop: np.ndarray, crop_affine: np.ndarray, mask: np.ndarray | None = None,
               method: str = "laplacian", feather_px: int = 6, levels: int = 5, *,
               colour_match: bool = True, ring_px: int | None = None, coords: str = "continuous") -> np.ndarray:
    """Blend a generated crop back into its frame → (H, W, 3) uint8 (a new array).

    frame (H, W, 3) uint8; crop (S, S, 3) uint8; crop_affine (2, 3) frame → crop pixels (see module
    doc for ``coords``); mask (S, S) in [0, 1] in crop space (None = the whole crop).
    ``feather_px``: erosion = blur radius of the mask (transition width 2·feather_px frame px).
    ``colour_match``: mean/std transfer measured in a ``ring_px``-wide ring (default
    2·feather_px + 2) just inside the mask boundary. Ignored by ``method="none"``.
    """
    frame, crop = np.asarray(frame), np.asarray(crop)
    affine = np.asarray(crop_affine, np.float64)
    mask = None if mask is None else np.asarray(mask, np.float32)
    _check_inputs(frame, crop, affine, mask, method, coords, feather_px, levels)
    a_cv = to_opencv_affine(affine) if coords == "continuous" else affine
    size = crop.shape[0]
    box = _roi(a_cv, size, frame.shape[:2], margin=2 ** levels + 2 * feather_px + 2)
    x0, y0, x1, y1 = box
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:                                            # crop lies outside the frame
        return out
    bg = frame[y0:y1, x0:x1].astype(np.float32)                         # (h, w, 3)
    gen = warp_to_frame(crop.astype(np.float32), a_cv, box, cv2.BORDER_REPLICATE)  # (h, w, 3)
    if method == "none":
        square = warp_to_frame(np.ones((size, size), np.float32), a_cv, box)      # (h, w)
        alpha = (square > 0.5).astype(np.float32)
        blended = gen
    else:
        m = np.ones((size, size), np.float32) if mask is None else mask
        support = warp_to_frame(m, a_cv, box)                           # (h, w) in [0, 1]
        alpha = feather_mask(support, feather_px)
        if colour_match:
            ring = seam_ring(support, ring_px if ring_px is not None else 2 * feather_px + 2)
            gen = match_colour(gen, bg, ring)
        if method == "feather":
            blended = gen
        else:
            gen = np.where(support[..., None] > 0, gen, bg)             # outside the mask: background
            blended = laplacian_blend(gen, bg, alpha, levels)
    a = alpha[..., None]
    mixed = np.clip(np.rint(bg + a * (blended - bg)), 0, 255).astype(np.uint8)
    out[y0:y1, x0:x1] = np.where(a > 0, mixed, frame[y0:y1, x0:x1])
    return out


def batch_paste_back(frames: Iterable[np.ndarray], crops: Iterable[np.ndarray], affines: Iterable[np.ndarray],
                     masks: Iterable[np.ndarray] | np.ndarray | None = None, **kwargs) -> Iterator[np.ndarray]:
    """Stream ``paste_back`` over a video, one (H, W, 3) uint8 frame at a time.

    ``masks``: None (whole crop), one (S, S) mask shared by all frames, or one mask per frame.
    All per-frame sequences must have the same length; extra keyword args go to ``paste_back``.
    """
    shared = masks is None or (isinstance(masks, np.ndarray) and masks.ndim == 2)
    its = [iter(frames), iter(crops), iter(affines)] + ([] if shared else [iter(masks)])
    names = ["frames", "crops", "affines", "masks"]
    k = 0
    while True:
        items = [next(it, None) for it in its]
        done = [x is None for x in items]
        if all(done):
            return
        if any(done):
            short = [n for n, d in zip(names, done) if d]
            raise BlendError(f"{', '.join(short)} ran out at frame {k}: all sequences must have the same length")
        mask = masks if shared else items[3]
        yield paste_back(items[0], items[1], items[2], mask, **kwargs)
        k += 1
