"""StyleSync-style generator: a StyleGAN2 encoder–decoder conditioned on an audio style vector.

Pure PyTorch (no upfirdn / fused CUDA ops). Layers use StyleGAN2's equalised learning rate
(weights ~ N(0,1), scaled by 1/sqrt(fan_in) at run time). Resampling is pure PyTorch:
bilinear x2 upsampling in the decoder and ToRGB skips, 2x2 average pooling (a box blur +
decimation) in the encoder.

Data flow for a window of T frames (paper Fig. 4):
    frames_in (B, T, 4+C, H, W) ─┐ stacked on channels with refs (B, R, 3, H, W)
                                 ▼
    encoder: from_input 1x1 conv at H, then ConvBlocks halving down to ``bottleneck``;
             the feature at every resolution is kept as a skip.
    decoder: StyledConvs modulated by the audio style (B, style_dim); at every resolution the
             encoder skip is CONCATENATED before the second StyledConv, so identity, pose and
             background pass through untouched; ToRGB outputs 3*T channels, summed across
             resolutions (StyleGAN2 skip architecture).
    output:  tanh → (B, T, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def channels_at(res: int, resolution: int, base: int, cap: int) -> int:
    """Channel width at spatial size ``res``: base at full resolution, doubling per halving."""
    return min(cap, base * (resolution // res))


def leaky(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN2's fused bias + leaky ReLU(0.2) * sqrt(2), in plain PyTorch."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.activate = 1 / math.sqrt(in_dim), activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # (B, in) → (B, out)
        if self.activate:
            return leaky(F.linear(x, self.weight * self.scale), self.bias)
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate (optional fused leaky ReLU).

    ``kernel`` / ``stride`` may be (height, width) pairs; ``padding`` defaults to 'same'
    (kernel // 2 per side)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int | tuple[int, int] = 3,
                 stride: int | tuple[int, int] = 1, bias: bool = True, activate: bool = True,
                 padding: int | tuple[int, int] | None = None):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kh, kw))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale, self.stride = 1 / math.sqrt(in_ch * kh * kw), stride
        self.pad = (kh // 2, kw // 2) if padding is None else padding
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # (B, in, H, W)
        out = F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.pad)
        if self.activate:
            return leaky(out, self.bias)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated conv: per-sample weights w * s(style), optionally demodulated.

    Implemented as one grouped convolution over the batch (groups=B). ``upsample`` doubles
    the resolution with bilinear interpolation before the conv (pure-PyTorch stand-in for
    StyleGAN2's transposed conv + blur).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel, kernel))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)  # styles start at 1
        self.scale = 1 / math.sqrt(in_ch * kernel ** 2)
        self.in_ch, self.out_ch, self.kernel = in_ch, out_ch, kernel
        self.demodulate, self.upsample = demodulate, upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape                                           # (B, in, H, W)
        s = self.modulation(style).view(b, 1, self.in_ch, 1, 1)         # (B, 1, in, 1, 1)
        weight = self.scale * self.weight * s                          # (B, out, in, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)   # (B, out)
            weight = weight * demod.view(b, self.out_ch, 1, 1, 1)
        if self.upsample:
            x = up2(x)
            h, w = 2 * h, 2 * w
        weight = weight.view(b * self.out_ch, self.in_ch, self.kernel, self.kernel)
        out = F.conv2d(x.reshape(1, b * self.in_ch, h, w), weight,
                       padding=self.kernel // 2, groups=b)             # (1, B*out, H, W)
        return out.view(b, self.out_ch, h, w)


class NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise scaled by a learned scalar (starts at 0)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        return x + self.weight * noise


class StyledConv(nn.Module):
    """Modulated 3x3 conv (+ optional noise) + bias + leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False,
                 noise: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection() if noise else None
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = self.conv(x, style)
        if self.noise is not None:
            out = self.noise(out)
        return leaky(out, self.bias)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to ``out_ch`` colour channels (no demod); adds the upsampled skip."""

    def __init__(self, in_ch: int, style_dim: int, out_ch: int = 3):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor,
                skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + up2(skip)


class ConvBlock(nn.Module):
    """Encoder block: conv3x3 → lrelu → 2x2 avg-pool down → conv3x3 → lrelu (H → H/2)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:               # (B, in, H, W)
        return self.conv2(F.avg_pool2d(self.conv1(x), 2))              # (B, out, H/2, W/2)


class DecoderBlock(nn.Module):
    """Decoder step r/2 → r: upsampling StyledConv, concat encoder skip, StyledConv, ToRGB."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, style_dim: int, rgb_ch: int,
                 noise: bool = False):
        super().__init__()
        self.conv_up = StyledConv(in_ch, out_ch, style_dim, upsample=True, noise=noise)
        self.conv = StyledConv(out_ch + skip_ch, out_ch, style_dim, noise=noise)
        self.to_rgb = ToRGB(out_ch, style_dim, rgb_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, style: torch.Tensor,
                rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv_up(x, style)                                     # (B, out, r, r)
        x = self.conv(torch.cat([x, skip], 1), style)                  # (B, out, r, r)
        return x, self.to_rgb(x, style, rgb)                           # rgb: (B, 3T, r, r)


class Generator(nn.Module):
    """Encoder–decoder StyleGAN2 generator for a window of T frames (see module docstring)."""

    def __init__(self, resolution: int = 128, window: int = 3, n_refs: int = 1,
                 texture_channels: int = 16, style_dim: int = 256, base_channels: int = 32,
                 max_channels: int = 256, bottleneck: int = 8, noise: bool = False):
        super().__init__()
        if resolution & (resolution - 1) or bottleneck & (bottleneck - 1) or bottleneck >= resolution:
            raise ValueError(f"resolution ({resolution}) and bottleneck ({bottleneck}) must be powers "
                             "of two with bottleneck < resolution")
        self.resolution, self.window, self.n_refs = resolution, window, n_refs
        self.texture_channels, self.style_dim, self.bottleneck = texture_channels, style_dim, bottleneck
        self.in_channels = window * (4 + texture_channels) + 3 * n_refs
        ch = lambda r: channels_at(r, resolution, base_channels, max_channels)  # noqa: E731
        rgb_ch = 3 * window
        n_down = int(math.log2(resolution // bottleneck))
        sizes = [resolution >> i for i in range(n_down + 1)]          # H, H/2, ..., bottleneck

        self.from_input = EqualConv2d(self.in_channels, ch(resolution), 1)
        self.encoder = nn.ModuleList([ConvBlock(ch(r), ch(r // 2)) for r in sizes[:-1]])
        self.bottom = StyledConv(ch(bottleneck), ch(bottleneck), style_dim, noise=noise)
        self.bottom_rgb = ToRGB(ch(bottleneck), style_dim, rgb_ch)
        self.decoder = nn.ModuleList([
            DecoderBlock(ch(r // 2), ch(r), ch(r), style_dim, rgb_ch, noise=noise)
            for r in reversed(sizes[:-1])
        ])

    def forward(self, frames_in: torch.Tensor, refs: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """frames_in (B, T, 4+C, H, W), refs (B, R, 3, H, W), style (B, style_dim) → (B, T, 3, H, W)."""
        b, t, c, h, w = frames_in.shape
        if (t, c, h, w) != (self.window, 4 + self.texture_channels, self.resolution, self.resolution):
            raise ValueError(f"frames_in must be (B, {self.window}, {4 + self.texture_channels}, "
                             f"{self.resolution}, {self.resolution}), got {tuple(frames_in.shape)}")
        if tuple(refs.shape[1:]) != (self.n_refs, 3, h, w):
            raise ValueError(f"refs must be (B, {self.n_refs}, 3, {h}, {w}), got {tuple(refs.shape)}")
        x = torch.cat([frames_in.reshape(b, t * c, h, w), refs.reshape(b, -1, h, w)], 1)
        x = self.from_input(x)                                         # (B, ch(H), H, W)
        skips = [x]
        for block in self.encoder:
            x = block(x)
            skips.append(x)                                            # ..., (B, ch(b), b, b)
        x = self.bottom(x, style)
        rgb = self.bottom_rgb(x, style)                                # (B, 3T, b, b)
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            x, rgb = block(x, skip, style, rgb)
        return torch.tanh(rgb).view(b, t, 3, h, w)                     # (B, T, 3, H, W)
