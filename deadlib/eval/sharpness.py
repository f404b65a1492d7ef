"""How sharp a generated region is, relative to the real frame: the variance of the Laplacian.

The variance of the 3 × 3 Laplacian of the luminance inside a region is the classic focus measure:
a blurred image loses high frequencies and its Laplacian flattens. The ratio output / real over the
same region says how much of the real frame's fine detail (teeth edges, lip lines, beard) a render
keeps: 1 = as sharp as the truth, < 1 softer, > 1 noisier or over-sharpened. It is a sharpness
score, not a fidelity one — a sharp but wrong mouth scores 1 — so it is always read beside
PSNR/SSIM of the same region.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np


def laplacian_variance(image: np.ndarray, mask: np.ndarray) -> float | None:
    """Variance of the Laplacian of an (H, W, 3) uint8 RGB image's luminance inside ``mask`` (H, W);
    None when the mask has fewer than 4 pixels."""
    inside = mask > 0.5
    if inside.sum() < 4:
        return None
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3)[inside].var())


def sharpness_ratio(pred: Iterable[np.ndarray], real: Iterable[np.ndarray], mask: Iterable[np.ndarray]) -> float | None:
    """Mean over frames of Laplacian variance (output) / (real) inside each frame's mask; None when
    no frame has a scorable region."""
    ratios = []
    for p, r, m in zip(pred, real, mask):
        vp, vr = laplacian_variance(p, m), laplacian_variance(r, m)
        if vp is not None and vr:
            ratios.append(vp / vr)
    return float(np.mean(ratios)) if ratios else None
