"""Evaluation metrics of the paper's Tables 1/3/4 (PSNR, SSIM, FID, FVD) plus LMD and the
project's own audio–mouth sync proxy.

Images are (H, W, 3) or (N, H, W, 3), numpy or torch, uint8 (range 255) or float (range 1 if
values lie in [0, 1]; otherwise pass ``data_range``, e.g. 2.0 for [-1, 1] frames). Scores are
computed per frame and averaged over frames.

* PSNR: per-frame PSNR, capped at 100 dB for identical frames (the paper's "Real" row) and
  averaged. With a mask (N, H, W) of weights in [0, 1] the MSE is the mask-weighted mean over
  mouth pixels (and channels); frames whose mask is empty are skipped.
* SSIM: Gaussian SSIM of ``metrics_basic`` (11x11, sigma 1.5, 'valid' windows). With a mask, the
  SSIM map — each value belonging to the window CENTRED on an image pixel — is averaged with
  the mask values at those centre pixels as weights (mask-weighted mean, not a bounding box).
* FID / FVD: Fréchet distance between Gaussians fitted to Inception pool3 / I3D logit features
  (networks from ``feature_nets``). ``frechet_distance`` is the textbook formula with
  ``scipy.linalg.sqrtm`` and the usual eps·I offset when the product is singular;
  ``fid``/``fvd`` evaluate the SAME quantity from the features through an exact symmetric
  route (tr√(Σ₁Σ₂) = Σ√eig), which is 10–100x faster in 2048-d and needs no eps.
* ``sync_conf_deadlib``: our own proxy for lip sync (NOT SyncNet's LSE-C/D), see its doc.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg
import torch

from deadlib.core.measures import gaussian_window, mean_finite, pearson, valid_blur
from deadlib.core.measures import psnr as _psnr_frames
from deadlib.core.measures import ssim as _ssim_frames
from deadlib.data.lipsync_probe import ridge_predict
from deadlib.model.vgg import WeightsUnavailable

PSNR_CAP = 100.0


# ----------------------------------------------------------------------------- inputs

def _as_frames(x, data_range: float | None) -> tuple[torch.Tensor, float]:
    """(H, W, 3) / (N, H, W, 3) numpy|torch → (N, 3, H, W) float64 tensor and its data range."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4 or t.shape[-1] != 3:
        raise ValueError(f"images must be (H, W, 3) or (N, H, W, 3), got {tuple(t.shape)}")
    if data_range is None:
        if not t.is_floating_point():
            data_range = 255.0
        elif t.numel() and (t.min() < 0 or t.max() > 1):
            raise ValueError("float images outside [0, 1]: pass data_range (e.g. 2.0 for [-1, 1], 255.0 for 0..255)")
        else:
            data_range = 1.0
    return t.permute(0, 3, 1, 2).double(), float(data_range)


def _as_mask(mask, n: int, hw: tuple[int, int]) -> torch.Tensor:
    """(H, W) or (N, H, W) weights in [0, 1] → (N, 1, H, W) float64."""
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).double()
    if m.dim() == 2:
        m = m[None].expand(n, *m.shape)
    if tuple(m.shape) != (n, *hw):
        raise ValueError(f"mask must be (H, W) or (N, H, W) = {(n, *hw)}, got {tuple(m.shape)}")
    if m.numel() and (m.min() < 0 or m.max() > 1):
        raise ValueError("mask values must lie in [0, 1]")
    return m[:, None]


def _pair(pred, target, data_range):
    p, r = _as_frames(pred, data_range)
    t, _ = _as_frames(target, r)
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    return p, t, r


# ----------------------------------------------------------------------------- PSNR / SSIM

def psnr(pred, target, mask=None, data_range: float | None = None) -> float:
    """Mean per-frame PSNR in dB (identical frames count as 100); with ``mask`` over the mouth only."""
    p, t, r = _pair(pred, target, data_range)
    if mask is None:
        return mean_finite(_psnr_frames(p, t, data_range=r).double(), cap=PSNR_CAP)
    m = _as_mask(mask, p.shape[0], p.shape[-2:])                        # (N, 1, H, W)
    weight = m.flatten(1).sum(1) * p.shape[1]                           # (N,) weighted px × channels
    keep = weight > 0
    if not keep.any():
        raise ValueError("mask is empty in every frame")
    mse = ((p - t).pow(2) * m).flatten(1).sum(1)[keep] / weight[keep]   # (N',)
    return mean_finite(10 * torch.log10(r**2 / mse), cap=PSNR_CAP)


def ssim_map(p: torch.Tensor, t: torch.Tensor, data_range: float, window: int = 11,
             sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM, channel-averaged: (N, 3, H, W) → (N, H-window+1, W-window+1); entry (i, j)
    is the window centred on pixel (i + window//2, j + window//2). Same constants as metrics_basic."""
    g = gaussian_window(window, sigma, p.device)
    n_px = window**2
    norm = n_px / (n_px - 1)                                            # sample covariance (skimage)
    mu_x, mu_y = valid_blur(p, g), valid_blur(t, g)
    var_x = norm * (valid_blur(p * p, g) - mu_x**2)
    var_y = norm * (valid_blur(t * t, g) - mu_y**2)
    cov = norm * (valid_blur(p * t, g) - mu_x * mu_y)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(1)


def ssim(pred, target, mask=None, data_range: float | None = None, window: int = 11) -> float:
    """Mean per-frame SSIM (1 when identical); with ``mask``, the mask-weighted mean of the SSIM map."""
    p, t, r = _pair(pred, target, data_range)
    if min(p.shape[-2:]) < window:
        raise ValueError(f"images of {tuple(p.shape[-2:])} are smaller than the SSIM window ({window})")
    if mask is None:
        return float(_ssim_frames(p, t, data_range=r, window_size=window).double().mean())
    m = _as_mask(mask, p.shape[0], p.shape[-2:])[:, 0]                  # (N, H, W)
    h = window // 2
    w = m[:, h:m.shape[1] - h, h:m.shape[2] - h]                        # weights at window centres
    s = ssim_map(p, t, r, window)                                       # (N, H-2h, W-2h)
    total = w.flatten(1).sum(1)
    keep = total > 0
    if not keep.any():
        raise ValueError("mask is empty (at SSIM window centres) in every frame")
    return float(((s * w).flatten(1).sum(1)[keep] / total[keep]).mean())


# ----------------------------------------------------------------------------- landmarks

def lmd(pred_landmarks, real_landmarks, ids: Sequence[int] | None = None,
        scale: float | np.ndarray | None = None, centre: bool = False) -> float:
    """Landmark distance: mean Euclidean (x, y) distance over frames and landmarks ``ids``.

    Landmarks (N, V, 2|3) or (V, 2|3) in crop pixels, from the SAME tracker for both videos.
    ``centre``: subtract each frame's mean of the selected landmarks first (mouth shape only,
    head placement ignored). ``scale``: divide distances by it (scalar or per-frame (N,)), e.g.
    the crop size or inter-ocular distance, to compare across resolutions.
    """
    a, b = np.asarray(pred_landmarks, np.float64), np.asarray(real_landmarks, np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3) or a.shape[-1] < 2:
        raise ValueError(f"landmarks must be matching (N, V, 2|3) arrays, got {a.shape} and {b.shape}")
    a, b = (a[None], b[None]) if a.ndim == 2 else (a, b)
    sel = slice(None) if ids is None else np.asarray(ids, int)
    a, b = a[:, sel, :2], b[:, sel, :2]                                  # (N, K, 2)
    if centre:
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    dist = np.linalg.norm(a - b, axis=-1)                               # (N, K)
    if scale is not None:
        dist = dist / np.reshape(np.asarray(scale, np.float64), (-1, 1))
    return float(dist.mean())


# ----------------------------------------------------------------------------- features

@torch.no_grad()
def _run(net, batches, device) -> np.ndarray:
    return np.concatenate([net(b.to(device)).double().cpu().numpy() for b in batches])


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if not x.is_floating_point() else x.float()


def inception_features(images, net, batch_size: int = 32, device: torch.device | str | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 or float in [0, 1] → (N, 2048) float64 pool3 features of ``net``
    (``feature_nets.load_inception`` / ``random_inception``; its ``resize_to`` sets the size)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {tuple(x.shape)}")
    device = device or next(net.parameters()).device
    return _run(net, (_to_unit(b).permute(0, 3, 1, 2) for b in x.split(batch_size)), device)


def i3d_features(videos, net, batch_size: int = 4, device: torch.device | str | None = None) -> np.ndarray:
    """(N, T, H, W, 3) uint8 or float in [0, 1] → (N, 400) float64 I3D logits of ``net``
    (``feature_nets.load_i3d`` / ``random_i3d``). The standard FVD setting is T = 16 at 224 px."""
    x = torch.as_tensor(np.asarray(videos) if not isinstance(videos, torch.Tensor) else videos)
    if x.dim() != 5 or x.shape[-1] != 3:
        raise ValueError(f"videos must be (N, T, H, W, 3), got {tuple(x.shape)}")
    device = device or next(net.parameters()).device
    return _run(net, (_to_unit(b).permute(0, 1, 4, 2, 3) for b in x.split(batch_size)), device)


# ----------------------------------------------------------------------------- Fréchet distance

def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and sample covariance (D, D) of features (N, D), N ≥ 2."""
    f = np.asarray(feats, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) with scipy's sqrtm (the reference FID formula).

    If the square root is not finite (singular product), eps·I is added to both covariances;
    a complex result whose imaginary part exceeds 1e-3 raises ValueError (numerical failure).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"inconsistent shapes: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """tr((Σa Σb)^½) from features a (Na, D), b (Nb, D), exactly: the eigenvalues of Σa Σb are
    real and ≥ 0 (similar to Σa^½ Σb Σa^½), so the trace is Σ√λ. Low-rank case: √λ are the
    singular values of Ac Bcᵀ / √((Na−1)(Nb−1)); otherwise via symmetric eigendecompositions."""
    ac, bc = a - a.mean(0), b - b.mean(0)
    d = a.shape[1]
    if len(a) * len(b) * min(len(a), len(b)) <= d**3:
        cross = ac @ bc.T / math.sqrt((len(a) - 1) * (len(b) - 1))      # (Na, Nb)
        return float(np.linalg.svd(cross, compute_uv=False).sum())
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T                     # Σa^½
    lam = np.linalg.eigvalsh(root @ sb @ root)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D), (M, D)."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    mu_a, _ = gaussian_stats(a)
    mu_b, _ = gaussian_stats(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    tr_a = a.var(0, ddof=1).sum()
    tr_b = b.var(0, ddof=1).sum()
    diff = mu_a - mu_b
    return float(max(diff @ diff + tr_a + tr_b - 2 * _trace_sqrt_product(a, b), 0.0))


def fvd(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FVD: the Fréchet distance of I3D features (N, 400), computed like ``fid``."""
    return fid(feats_a, feats_b)


# ----------------------------------------------------------------------------- availability

def metric_or_null(fn: Callable[..., Any], *args, **kwargs) -> tuple[Any | None, str | None]:
    """(fn(*args, **kwargs), None), or (None, reason) when pretrained weights are missing.

    Only ``WeightsUnavailable`` becomes null — any other error is a bug and propagates — so a
    metrics file says ``null`` with the reason instead of silently using a substitute network.
    """
    try:
        value = fn(*args, **kwargs)
    except WeightsUnavailable as err:
        return None, f"{type(err).__name__}: {err}"
    if isinstance(value, (np.generic, np.ndarray, torch.Tensor)) and np.size(value) == 1:
        value = float(value)
    return value, None


# ----------------------------------------------------------------------------- sync proxy

def sync_conf_deadlib(opening: np.ndarray, mel_feats: np.ndarray, probe, min_lag: int = 5,
                      max_lag: int = 15) -> float:
    """Project-own audio–mouth sync CONFIDENCE PROXY (not SyncNet's LSE-C/D).

    opening (N,): mouth opening measured on the generated frames; mel_feats (N, D): the audio's
    per-frame MEL features (``lipsync_probe.mel_features``); probe: a linear audio → opening
    model fitted on prior data (``lipsync_probe.ridge_fit`` output). Returns
    r(lag 0) − mean |r(lag k)| over k = ±min_lag..±max_lag frames, r = Pearson correlation of
    predicted vs measured opening with the mouth shifted by k. Like SyncNet's confidence it
    rewards a sharp peak at the true offset: ≈ r for synced video, ≈ 0 (or below) otherwise.
    """
    y = np.asarray(opening, np.float64).ravel()
    x = np.asarray(mel_feats, np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"need opening (N,) and mel_feats (N, D) of equal N, got {y.shape} and {x.shape}")
    if not 0 < min_lag <= max_lag or len(y) < 2 * max_lag + 10:
        raise ValueError(f"need 0 < min_lag <= max_lag and at least {2 * max_lag + 10} frames, got {len(y)}")
    pred = np.asarray(ridge_predict(probe, x), np.float64)             # (N,)
    off = []
    for k in range(min_lag, max_lag + 1):
        off.append(abs(pearson(pred[:-k], y[k:])))                     # mouth lags audio by k
        off.append(abs(pearson(pred[k:], y[:-k])))                     # mouth leads audio by k
    return pearson(pred, y) - float(np.mean(off))
