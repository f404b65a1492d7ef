"""Losses of the prior / adaptation training (paper Eq. 1), as free functions.

    L = λ1·L1 + λVGG·LVGG + λreg·Lreg + λadv·Ladv

Images are in [-1, 1]; windows are (B, T, 3, H, W) (a single frame (B, 3, H, W) works too).
"""

from __future__ import annotations

import torch
import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted-mean L1: sum(w·|pred-target|) / sum(w) over every element (weights broadcast).

    ``weight`` (B, T, 1, H, W) is built by the caller, e.g. 1 + w_face·face + w_mouth·mouth.
    Normalising by the weight sum keeps the loss on the plain-L1 scale (a constant weight gives
    exactly the mean absolute error), so λ1 need not change with the mask weights; an error of
    a given size counts in proportion to the weight of the pixel where it occurs.
    """
    weight = weight.to(pred.dtype).expand_as(pred)
    return (weight * (pred - target).abs()).sum() / weight.sum().clamp_min(1e-8)


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) features → (N, C, C) Gram matrices normalised by C·H·W."""
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def to_imagenet(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB (N, 3, H, W) → ImageNet-normalised input of a torchvision VGG."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x + 1) * 0.5 - mean) / std


def vgg_style_loss(vgg: nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gram-matrix style loss: per frame, sum over VGG layers of mean |G(pred) − G(target)|.

    ``vgg(x)`` returns a list of feature maps (see :mod:`deadlib.model.vgg`). Frames of the window
    are folded into the batch, so the mean over elements is the mean over frames (§3.2).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    pred = pred.reshape(-1, *pred.shape[-3:])                           # (B*T, 3, H, W)
    target = target.reshape(-1, *target.shape[-3:])
    feats_pred = vgg(to_imagenet(pred))
    with torch.no_grad():
        feats_target = vgg(to_imagenet(target))
    loss = pred.new_zeros(())
    for fp, ft in zip(feats_pred, feats_target):
        loss = loss + (gram_matrix(fp) - gram_matrix(ft)).abs().mean()
    return loss


def lsgan_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss: mean 0.5·((D(real) − 1)² + D(fake)²)."""
    return 0.5 * ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean())


def lsgan_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss: mean 0.5·(D(fake) − 1)²."""
    return 0.5 * (fake_scores - 1).pow(2).mean()


def texture_regulariser(texels: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_reg: mean |texels[:3] − target| inside the mask (first 3 texture channels act as RGB).

    texels (*, C, H, W), target (*, 3, H, W), mask (*, 1, H, W) or (*, H, W). Normalised by
    the masked element count; 0 when the mask is empty.
    """
    if mask.dim() == target.dim() - 1:
        mask = mask.unsqueeze(-3)
    mask = mask.to(texels.dtype).expand_as(target)
    diff = (texels[..., :3, :, :] - target).abs() * mask
    return diff.sum() / mask.sum().clamp_min(1.0)


def r1_penalty(real_scores: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """R1: mean over samples of ||∇_x D(x)||² at real inputs (needs real_inputs.requires_grad)."""
    (grad,) = torch.autograd.grad(real_scores.sum(), real_inputs, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()
