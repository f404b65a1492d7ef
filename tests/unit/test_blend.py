"""Post-processing (paste-back) properties: round trip, untouched outside, seams, colour, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deadlib.data.blend import (
    BlendError,
    batch_paste_back,
    match_colour,
    paste_back,
    seam_ring,
    to_opencv_affine,
    warp_to_frame,
)

H, W, S = 96, 128, 64


def smooth_frame(seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 with smooth gradients plus blurred texture (no sharp edges of its own)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    base = np.stack([60 + 0.8 * xx, 80 + 0.9 * yy, 120 + 0.3 * (xx - yy)], -1)
    tex = cv2.GaussianBlur(rng.normal(0, 20, (H, W, 3)).astype(np.float32), (0, 0), 3)
    return np.clip(base + tex, 0, 255).astype(np.uint8)


def face_affine(scale: float = 0.8, cx: float = 60.0, cy: float = 50.0) -> np.ndarray:
    """Continuous-convention (2, 3) frame → crop affine: a square of side S/scale centred at (cx, cy)."""
    return np.array([[scale, 0.0, S / 2 - scale * cx], [0.0, scale, S / 2 - scale * cy]])


def disc_mask(radius: float = 22.0) -> np.ndarray:
    yy, xx = np.mgrid[0:S, 0:S]
    return (((xx + 0.5 - S / 2) ** 2 + (yy + 0.5 - S / 2) ** 2) < radius**2).astype(np.float32)


def crop_of(frame: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Crop with plain cv2.warpAffine (continuous affine converted to OpenCV's convention)."""
    return cv2.warpAffine(frame, to_opencv_affine(affine), (S, S), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def warped_support(affine: np.ndarray, mask: np.ndarray, dilate: int = 0, opencv: bool = False) -> np.ndarray:
    """Independent full-frame warp of the mask support (H, W) bool, optionally dilated."""
    a = affine if opencv else to_opencv_affine(affine)
    m = cv2.warpAffine(mask, a, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    sup = (m > 0).astype(np.uint8)
    if dilate:
        sup = cv2.dilate(sup, np.ones((2 * dilate + 1,) * 2, np.uint8))
    return sup.astype(bool)


def max_gradient(img: np.ndarray) -> float:
    f = img.astype(np.float64)
    return float(max(np.abs(np.diff(f, axis=0)).max(), np.abs(np.diff(f, axis=1)).max()))


@pytest.mark.parametrize("method", ["laplacian", "feather", "none"])
def test_round_trip_reproduces_frame_inside_mask(method):
    frame, aff, mask = smooth_frame(), face_affine(), disc_mask()
    out = paste_back(frame, crop_of(frame, aff), aff, mask, method=method)
    inside = warped_support(aff, mask)
    err = np.abs(out.astype(int) - frame.astype(int))[inside]
    assert inside.sum() > 500
    assert err.mean() < 0.5 and err.max() <= 3


def test_opencv_convention_round_trip():
    frame, aff = smooth_frame(1), face_affine(scale=1.3)
    crop = cv2.warpAffine(frame, aff, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = paste_back(frame, crop, aff, disc_mask(), method="feather", coords="opencv", colour_match=False)
    inside = warped_support(aff, disc_mask(), opencv=True)
    err = np.abs(out.astype(int) - frame.astype(int))[inside]
    assert inside.sum() > 500 and err.mean() < 1.5


def test_affine_direction_and_pixel_centres():
    """A bright blob at crop pixel centre c lands at frame point A⁻¹(c) (continuous coordinates)."""
    frame = np.zeros((H, W, 3), np.uint8)
    aff = face_affine(scale=0.5, cx=64.0, cy=48.0)                   # crop downsamples the frame 2x
    crop = np.zeros((S, S, 3), np.uint8)
    crop[20:24, 40:44] = 255                                           # centre (x, y) = (42, 22) continuous
    out = paste_back(frame, crop, aff, None, method="none").astype(np.float64)[..., 0]
    ys, xs = np.mgrid[0:H, 0:W]
    centroid = np.array([(out * (xs + 0.5)).sum(), (out * (ys + 0.5)).sum()]) / out.sum()
    expected = np.linalg.solve(aff[:, :2], np.array([42.0, 22.0]) - aff[:, 2])
    assert np.allclose(centroid, expected, atol=0.1), (centroid, expected)


@pytest.mark.parametrize("method", ["laplacian", "feather", "none"])
def test_outside_warped_mask_untouched_exactly(method):
    frame, aff, mask = smooth_frame(2), face_affine(), disc_mask()
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)             # very different content
    out = paste_back(frame, crop, aff, mask, method=method)
    region = warped_support(aff, np.ones((S, S), np.float32) if method == "none" else mask, dilate=1)
    assert np.array_equal(out[~region], frame[~region])
    assert not np.array_equal(out[region], frame[region])             # something was pasted


def test_laplacian_seam_smaller_than_hard_paste():
    frame, aff, mask = smooth_frame(3), face_affine(), disc_mask()
    shifted = np.clip(crop_of(frame, aff).astype(int) + [50, -40, 30], 0, 255).astype(np.uint8)
    hard = paste_back(frame, shifted, aff, mask, method="none")
    lap = paste_back(frame, shifted, aff, mask, method="laplacian", colour_match=False)
    feather = paste_back(frame, shifted, aff, mask, method="feather", colour_match=False)
    g_frame, g_hard, g_lap = max_gradient(frame), max_gradient(hard), max_gradient(lap)
    assert g_hard > g_frame + 30                                      # the hard paste has a visible seam
    assert g_lap < 0.5 * g_hard and max_gradient(feather) < 0.6 * g_hard


def test_colour_matching_reduces_ring_difference():
    frame, aff, mask = smooth_frame(4), face_affine(), disc_mask()
    shifted = np.clip(crop_of(frame, aff).astype(int) + [40, -30, 25], 0, 255).astype(np.uint8)
    ring_crop = seam_ring(mask, 6).astype(np.float32)                 # ring in crop space, warped to frame
    ring = warped_support(aff, ring_crop) & warped_support(aff, cv2.erode(mask, np.ones((3, 3), np.uint8)))
    diffs = {}
    for cm in (False, True):
        out = paste_back(frame, shifted, aff, mask, method="laplacian", colour_match=cm)
        diffs[cm] = np.abs(out.astype(float) - frame.astype(float))[ring].mean()
    assert diffs[True] < 0.5 * diffs[False], diffs


def test_match_colour_is_exact_for_affine_colour_change():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 255, (20, 20, 3))
    src = ref * 0.8 + 20
    region = np.ones((20, 20), bool)
    assert np.allclose(match_colour(src, ref, region), ref, atol=1e-3)


def test_warp_to_frame_matches_full_frame_warp():
    aff_cv = to_opencv_affine(face_affine())
    img = np.random.default_rng(0).uniform(0, 1, (S, S)).astype(np.float32)
    full = cv2.warpAffine(img, aff_cv, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    box = (10, 5, 100, 90)
    assert np.allclose(warp_to_frame(img, aff_cv, box), full[5:90, 10:100], atol=1e-4)


def test_batch_paste_back_streams_and_checks_lengths():
    frames = [smooth_frame(k) for k in range(3)]
    affs = np.stack([face_affine(cx=55.0 + k) for k in range(3)])
    crops = [crop_of(f, a) for f, a in zip(frames, affs)]
    outs = list(batch_paste_back(frames, crops, affs, disc_mask(), method="feather"))
    assert len(outs) == 3 and all(o.shape == (H, W, 3) and o.dtype == np.uint8 for o in outs)
    assert np.array_equal(outs[1], paste_back(frames[1], crops[1], affs[1], disc_mask(), method="feather"))
    per_frame = list(batch_paste_back(frames, crops, affs, np.stack([disc_mask()] * 3), method="feather"))
    assert all(np.array_equal(a, b) for a, b in zip(outs, per_frame))
    with pytest.raises(BlendError, match="same length"):
        list(batch_paste_back(frames, crops[:2], affs))


def test_crop_outside_frame_returns_copy():
    frame = smooth_frame()
    aff = face_affine(cx=-500.0, cy=-500.0)
    out = paste_back(frame, np.zeros((S, S, 3), np.uint8), aff, None)
    assert np.array_equal(out, frame) and out is not frame


@pytest.mark.parametrize("kwargs, message", [
    (dict(frame=np.zeros((H, W), np.uint8)), "frame must be"),
    (dict(frame=np.zeros((H, W, 3), np.float32)), "frame must be"),
    (dict(crop=np.zeros((S, S + 1, 3), np.uint8)), "square"),
    (dict(crop_affine=np.eye(3)), r"\(2, 3\)"),
    (dict(crop_affine=np.zeros((2, 3))), "singular"),
    (dict(mask=np.ones((S + 2, S), np.float32)), "mask must be"),
    (dict(mask=np.full((S, S), 255.0)), r"\[0, 1\]"),
    (dict(method="poisson"), "unknown blend method"),
    (dict(coords="pixel"), "coordinate convention"),
])
def test_invalid_inputs_raise_clear_errors(kwargs, message):
    args = dict(frame=np.zeros((H, W, 3), np.uint8), crop=np.zeros((S, S, 3), np.uint8),
                crop_affine=face_affine(), mask=np.ones((S, S), np.float32))
    args.update(kwargs)
    with pytest.raises(BlendError, match=message):
        paste_back(**args)
