"""Evaluation metrics: known values, monotonicity, masks, Fréchet closed forms, missing weights,
and the sync proxy. Feature networks use random weights at tiny sizes (meaningless values, real
code paths)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from deadlib.data.lipsync_probe import ridge_fit
from deadlib.eval.feature_nets import (
    InceptionI3d,
    load_i3d,
    load_inception,
    random_i3d,
    random_inception,
)
from deadlib.eval.metrics import (
    fid,
    frechet_distance,
    fvd,
    gaussian_stats,
    i3d_features,
    inception_features,
    lmd,
    metric_or_null,
    psnr,
    ssim,
    ssim_map,
    sync_conf_deadlib,
)
from deadlib.model.vgg import WeightsUnavailable


def images(n: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 smooth random images."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, (n, size // 8, size // 8, 3)).astype(np.float32)
    smooth = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_CUBIC) for im in low])
    return np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)


def noisy(x: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(x + rng.normal(0, sigma, x.shape), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- PSNR / SSIM

def test_psnr_identical_is_capped_and_decreases_with_noise():
    x = images()
    assert psnr(x, x) == 100.0
    values = [psnr(noisy(x, s), x) for s in (2, 8, 32)]
    assert values[0] > values[1] > values[2] > 5
    mse = ((noisy(x, 8).astype(float) - x) ** 2).reshape(len(x), -1).mean(1)
    assert psnr(noisy(x, 8), x) == pytest.approx(np.mean(10 * np.log10(255**2 / mse)), abs=1e-4)


def test_psnr_accepts_float_ranges_and_refuses_ambiguous_floats():
    x = images()
    y = noisy(x, 8)
    unit = psnr(y / 255.0, x / 255.0)
    assert unit == pytest.approx(psnr(y, x), abs=1e-4)
    assert psnr(y / 127.5 - 1, x / 127.5 - 1, data_range=2.0) == pytest.approx(unit, abs=1e-4)
    with pytest.raises(ValueError, match="data_range"):
        psnr(y / 127.5 - 1, x / 127.5 - 1)


def test_masked_psnr_only_sees_the_mask():
    x = images()
    mask = np.zeros(x.shape[:3], np.float32)
    mask[:, 8:24, 8:24] = 1
    y = x.copy()
    y[:, :4] = 255 - y[:, :4]                                           # damage outside the mask only
    assert psnr(y, x, mask) == 100.0 and psnr(y, x) < 30
    z = noisy(x, 8)
    assert psnr(z, x, np.ones(x.shape[:3])) == pytest.approx(psnr(z, x), abs=1e-4)
    with pytest.raises(ValueError, match="empty"):
        psnr(z, x, np.zeros(x.shape[:3]))


def test_ssim_identical_is_one_and_matches_metrics_basic():
    x = images()
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    y = noisy(x, 16)
    s = ssim(y, x)
    assert 0 < s < ssim(noisy(x, 4), x) < 1
    p = torch.as_tensor(y).permute(0, 3, 1, 2).double()
    t = torch.as_tensor(x).permute(0, 3, 1, 2).double()
    assert float(ssim_map(p, t, 255.0).mean()) == pytest.approx(s, abs=1e-6)  # map ≡ metrics_basic
    assert ssim(y, x, np.ones(x.shape[:3])) == pytest.approx(s, abs=1e-6)
    from skimage.metrics import structural_similarity
    ref = structural_similarity(y[0], x[0], channel_axis=2, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=True, data_range=255)
    assert abs(ssim(y[0], x[0]) - ref) < 0.02                           # skimage also averages borders


def test_masked_ssim_weights_window_centres():
    x = images(2, 48)
    y = x.copy()
    y[:, :, :20] = noisy(x[:, :, :20], 40)                              # left part damaged
    mask = np.zeros(x.shape[:3])
    mask[:, :, 30:] = 1                                                 # centres ≥ 5 px from the damage
    assert ssim(y, x, mask) == pytest.approx(1.0, abs=1e-9)
    mask_left = np.zeros(x.shape[:3])
    mask_left[:, :, :15] = 1
    assert ssim(y, x, mask_left) < ssim(y, x) < 0.99


def test_lmd_known_values():
    real = np.zeros((3, 5, 2))
    pred = real + np.array([3.0, 4.0])                                  # every landmark off by 5 px
    assert lmd(pred, real) == pytest.approx(5.0)
    assert lmd(pred, real, centre=True) == pytest.approx(0.0)           # pure translation removed
    assert lmd(pred, real, ids=[0, 2], scale=10.0) == pytest.approx(0.5)
    pred[:, 1] += [6.0, 8.0]                                            # landmark 1 off by 15 px
    assert lmd(pred, real, ids=[1]) == pytest.approx(15.0)
    with pytest.raises(ValueError, match="matching"):
        lmd(pred, real[:, :4])


# ----------------------------------------------------------------------------- Fréchet distance

@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_frechet_distance_matches_closed_forms():
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) \
        == pytest.approx(4 + (2 - 3) ** 2)                               # 1-D: Δμ² + (σ1 − σ2)²
    d1, d2 = np.array([1.0, 2.0, 0.5]), np.array([4.0, 1.0, 2.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, -1.0, 2.0])
    expected = (mu1 - mu2) @ (mu1 - mu2) + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(expected)
    sing = np.diag([1.0, 0.0, 0.0])                                      # singular: eps path stays finite
    assert np.isfinite(frechet_distance(mu1, sing, mu1, sing))


@pytest.mark.parametrize("n, d", [(40, 8), (10, 32)])                  # full-rank and low-rank routes
def test_fid_from_features_equals_reference_formula(n, d):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    b = rng.normal(0.5, 1.0, size=(n + 3, d))
    ref = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert fid(a, b) == pytest.approx(ref, rel=1e-6, abs=1e-6)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- FID / FVD pipelines

@pytest.fixture(scope="module")
def inception():
    return random_inception(seed=0)


def test_fid_zero_for_same_set_and_grows_with_noise(inception):
    x = images(6, 75, seed=3)
    batch = np.concatenate([x] + [noisy(x, s, seed=7) for s in (10, 40, 120)])
    feats = inception_features(batch, inception)
    assert feats.shape == (24, 2048) and np.isfinite(feats).all()
    clean, rest = feats[:6], feats[6:].reshape(3, 6, -1)
    assert fid(clean, clean) == pytest.approx(0.0, abs=1e-8)
    scores = [fid(clean, f) for f in rest]
    assert 0 < scores[0] < scores[1] < scores[2], scores


def test_inception_resizes_small_inputs_only_when_asked(inception):
    with pytest.raises(ValueError, match="75x75"):
        inception_features(images(1, 32), inception)
    inception.resize_to = 80
    try:
        assert inception_features(images(1, 32), inception).shape == (1, 2048)
    finally:
        inception.resize_to = None


def test_fvd_zero_for_same_set_and_grows_with_noise():
    net = random_i3d(seed=0)
    rng = np.random.default_rng(0)
    base = np.stack([np.roll(images(1, 32, seed=k)[0], shift=(t, 2 * t), axis=(0, 1)) for k in range(3)
                     for t in range(8)]).reshape(3, 8, 32, 32, 3)      # (N, T, H, W, 3) moving textures
    batch = np.concatenate([base, noisy(base, 30, seed=2), rng.integers(0, 256, base.shape, dtype=np.uint8)])
    feats = i3d_features(batch, net)
    assert feats.shape == (9, 400) and np.isfinite(feats).all()
    clean, mild, wild = feats[:3], feats[3:6], feats[6:]
    assert fvd(clean, clean) == pytest.approx(0.0, abs=1e-8)
    assert 0 < fvd(clean, mild) < fvd(clean, wild)


def test_i3d_keeps_original_pool_at_224_layout():
    net = InceptionI3d(400)
    assert sum(p.numel() for p in net.parameters()) == 12_697_264       # the Kinetics-400 I3D size
    assert "Mixed_5c.b3b.conv3d.weight" in net.state_dict() and "logits.conv3d.bias" in net.state_dict()


# ----------------------------------------------------------------------------- loaders / null

def test_loaders_without_weights_raise_and_metric_is_null(tmp_path):
    for loader in (lambda: load_inception(hub_dir=str(tmp_path)), lambda: load_i3d(None),
                   lambda: load_i3d(tmp_path / "missing.pt")):
        with pytest.raises(WeightsUnavailable, match="not found"):
            loader()
    value, reason = metric_or_null(lambda: fid(np.zeros((2, 3)), inception_features(images(2, 75),
                                                                                   load_inception(hub_dir=str(tmp_path)))))
    assert value is None and "inception_v3_google" in reason
    assert metric_or_null(np.float64, 2.5) == (2.5, None)
    with pytest.raises(ZeroDivisionError):                              # real bugs are not swallowed
        metric_or_null(lambda: 1 / 0)


def test_loaders_read_state_dicts_from_disk(tmp_path):
    i3d = random_i3d(seed=3)
    torch.save({"state_dict": {"module." + k: v for k, v in i3d.net.state_dict().items()}}, tmp_path / "i3d.pt")
    loaded = load_i3d(tmp_path / "i3d.pt", resize_to=None)
    video = torch.rand(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(video), i3d(video))
    from torchvision.models import inception_v3
    google = inception_v3(weights=None, aux_logits=True, init_weights=False)   # the checkpoint's layout
    (tmp_path / "checkpoints").mkdir()
    torch.save(google.state_dict(), tmp_path / "checkpoints" / "inception_v3_google-0cc3c7bd.pth")
    assert load_inception(hub_dir=str(tmp_path), resize_to=None)(torch.rand(1, 3, 75, 75)).shape == (1, 2048)
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(WeightsUnavailable, match="not a"):
        load_i3d(tmp_path / "bad.pt")


# ----------------------------------------------------------------------------- sync proxy

def test_sync_conf_deadlib_high_when_aligned_zero_when_shuffled():
    rng = np.random.default_rng(0)
    d, w = 12, rng.normal(size=12)
    prior_x = rng.normal(size=(600, d))
    probe = ridge_fit(prior_x, prior_x @ w + rng.normal(0, 0.3, 600), alpha=1.0)
    mel = rng.normal(size=(300, d))
    opening = mel @ w + rng.normal(0, 0.5, 300)
    aligned = sync_conf_deadlib(opening, mel, probe)
    shuffled = sync_conf_deadlib(rng.permutation(opening), mel, probe)
    shifted = sync_conf_deadlib(np.roll(opening, 10), mel, probe)      # 0.4 s off-sync
    assert aligned > 0.8
    assert abs(shuffled) < 0.15 and shifted < 0.2
    assert sync_conf_deadlib(np.ones(300), mel, probe) == 0.0           # frozen mouth: no evidence
    with pytest.raises(ValueError, match="frames"):
        sync_conf_deadlib(opening[:30], mel[:30], probe)


def test_valid_blur_cpu_path_matches_banded_matrices_and_a_direct_convolution():
    from deadlib.core.measures import band_matrix, gaussian_window, valid_blur

    x = torch.rand(2, 3, 20, 17, dtype=torch.float64)
    g = gaussian_window(11, 1.5)
    fast = valid_blur(x, g)                                               # OpenCV on CPU
    banded = band_matrix(20, g) @ x @ band_matrix(17, g).T                # the path used on GPUs
    direct = torch.nn.functional.conv2d(x.reshape(6, 1, 20, 17), (g[:, None] * g[None, :])[None, None])
    assert fast.shape == (2, 3, 10, 7)
    assert torch.allclose(fast, banded, atol=1e-12) and torch.allclose(fast, direct.reshape(2, 3, 10, 7), atol=1e-12)
    assert torch.allclose(valid_blur(x.float(), g), fast.float(), atol=1e-6)
