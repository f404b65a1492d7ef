"""StyleGAN2 / StyleSync residual discriminator over a whole window of frames (§3.2).

All T frames of the window are stacked on channels (B, 3T, H, W), so the discriminator judges
temporal consistency as well as per-frame realism (as Wav2Lip's visual-quality critic does).
Scores are raw reals for the LSGAN objective (no sigmoid). Pure PyTorch: 2x2 average pooling
replaces StyleGAN2's blur + strided conv.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from deadlib.model.generator import EqualConv2d, EqualLinear, channels_at


class ResBlock(nn.Module):
    """conv3x3 → conv3x3 → avg-pool down, plus a pooled 1x1 skip; sum / sqrt(2) (H → H/2)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # (B, in, H, W)
        out = F.avg_pool2d(self.conv2(self.conv1(x)), 2)
        skip = self.skip(F.avg_pool2d(x, 2))
        return (out + skip) / math.sqrt(2)                              # (B, out, H/2, W/2)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append one channel: the std of features across a group of samples (StyleGAN2).

    The group is the largest divisor of B not above ``group_size``; with B=1 the channel is 0.
    """
    b, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, b) + 1) if b % d == 0)
    y = x.view(g, b // g, c, h, w)
    y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)                     # (B/g, C, H, W)
    y = y.mean([1, 2, 3]).view(b // g, 1, 1, 1).repeat(g, 1, h, w)     # (B, 1, H, W)
    return torch.cat([x, y], 1)


class Discriminator(nn.Module):
    """(B, T, 3, H, W) window → (B,) realness scores.

    fromRGB 1x1 at H → ResBlocks down to 4x4 → [minibatch stddev] → conv3x3 → flatten →
    Linear → lrelu → Linear(1). Channels: ``base_channels`` at H, doubling per halving, capped.
    """

    def __init__(self, resolution: int = 128, window: int = 3, base_channels: int = 32,
                 max_channels: int = 256, mbstd: bool = True, mbstd_group: int = 4):
        super().__init__()
        if resolution & (resolution - 1) or resolution < 8:
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        self.resolution, self.window, self.mbstd, self.mbstd_group = resolution, window, mbstd, mbstd_group
        ch = lambda r: channels_at(r, resolution, base_channels, max_channels)  # noqa: E731
        sizes = [resolution >> i for i in range(int(math.log2(resolution // 4)) + 1)]  # H..4
        self.from_rgb = EqualConv2d(3 * window, ch(resolution), 1)
        self.blocks = nn.Sequential(*[ResBlock(ch(r), ch(r // 2)) for r in sizes[:-1]])
        self.final_conv = EqualConv2d(ch(4) + int(mbstd), ch(4), 3)
        self.final_linear = nn.Sequential(EqualLinear(ch(4) * 16, ch(4), activate=True),
                                          EqualLinear(ch(4), 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = frames.shape
        if (t, c, h, w) != (self.window, 3, self.resolution, self.resolution):
            raise ValueError(f"frames must be (B, {self.window}, 3, {self.resolution}, "
                             f"{self.resolution}), got {tuple(frames.shape)}")
        x = self.blocks(self.from_rgb(frames.reshape(b, t * c, h, w)))  # (B, ch4, 4, 4)
        if self.mbstd:
            x = minibatch_stddev(x, self.mbstd_group)                  # (B, ch4+1, 4, 4)
        x = self.final_conv(x)                                         # (B, ch4, 4, 4)
        return self.final_linear(x.flatten(1)).squeeze(1)              # (B,)
