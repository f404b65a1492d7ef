"""The renderer for inference (dubbing): the same function, computed the cheaper way round.

Training needs ``ModulatedConv2d`` in StyleGAN2's fused form — per-sample weights ``w · s`` and
one grouped convolution over the batch — because its weights change every step. At inference the
weights are frozen, so each modulated convolution can be rewritten exactly (StyleGAN2's
"non-fused" form):

    conv(x, w · s) · d  =  conv(x · s, w) · d,     d[b, o] = rsqrt(Σ_i s[b, i]² · Σ_k w[o, i, k]² + ε)

One ordinary convolution with a shared weight replaces the grouped one, and the demodulation is a
(B, in) × (in, out) product against Σ_k w² computed once, instead of building and squaring a
(B, out, in, k, k) weight tensor per call.

The elementwise tail of every layer is folded the same way. StyleGAN2's activation is
``leaky(x + b) · √2`` — three passes over the feature map and two new tensors. Leaky ReLU is
positively homogeneous (``leaky(a·x) = a·leaky(x)`` for a > 0), so the gain √2 moves into the
frozen weights, biases and demodulation factors, the bias goes into the convolution (or is added
in place) and the activation runs in place: one pass, no new tensor. The equalised-lr scale of
``EqualConv2d`` / ``EqualLinear`` is multiplied into the weight once instead of on every call.

Two more changes of layout, not of arithmetic: the frozen conv weights are stored channels-last,
so oneDNN keeps the feature maps channels-last from layer to layer instead of reordering them on
every call, and ``masked_texels`` looks the neural texture up only at the pixels the mask keeps.

Same numbers to float rounding (≈ 1e-5 on [−1, 1] outputs, tests/unit/test_inference.py) and
measurably faster on CPU (benchmarks/bench_dub.py times the renderer forward in both forms).

``render_precision`` adds an optional bfloat16 autocast (params ``dub.render_dtype``): worth it
only on CPUs with native bf16 dot products (AVX512-BF16 / AMX) and GPUs; elsewhere it is
emulated and slower. It changes the output by rounding (≈ 44 dB PSNR against float32 on a
random renderer), so it is opt-in and recorded.
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from deadlib.model.audio_encoder import AudioResBlock
from deadlib.model.generator import (
    EqualConv2d,
    EqualLinear,
    ModulatedConv2d,
    StyledConv,
    ToRGB,
    up2,
)
from deadlib.model.texture import NeuralTexture

RENDER_DTYPES = ("float32", "bfloat16")  # params dub.render_dtype


GAIN = math.sqrt(2)  # StyleGAN2's leaky-ReLU gain, folded into the weights below


def channels_last(weight: torch.Tensor) -> torch.Tensor:
    """A conv weight (out, in, kh, kw) stored channels-last: oneDNN's CPU convolutions then keep the
    feature maps channels-last from layer to layer instead of reordering them on every call."""
    return weight.contiguous(memory_format=torch.channels_last)


class FrozenModulatedConv2d(nn.Module):
    """``ModulatedConv2d`` with frozen weights, as modulate-activations → shared conv → demodulate;
    ``gain`` multiplies the output (folded into the demodulation, or into the weight without it)."""

    def __init__(self, conv: ModulatedConv2d, gain: float = 1.0):
        super().__init__()
        weight = (conv.scale * conv.weight.detach()[0]).contiguous()           # (out, in, k, k)
        self.register_buffer("weight_sq", weight.pow(2).sum((2, 3)).t().contiguous())  # (in, out)
        self.register_buffer("weight", channels_last(weight if conv.demodulate else weight * gain))
        self.modulation = freeze_module(conv.modulation)                       # style (B, S) → (B, in)
        self.kernel, self.demodulate, self.upsample, self.gain = conv.kernel, conv.demodulate, conv.upsample, gain

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)                                              # (B, in)
        if self.upsample:
            x = up2(x)
        out = F.conv2d(x * s[:, :, None, None], self.weight.to(x.dtype), padding=self.kernel // 2)  # (B, out, H, W)
        if self.demodulate:
            demod = torch.rsqrt(s.float().pow(2) @ self.weight_sq + 1e-8) * self.gain  # (B, out), float32 always
            out.mul_(demod[:, :, None, None].to(out.dtype))
        return out


class FrozenEqualConv2d(nn.Module):
    """``EqualConv2d``: scale (and the activation's √2) folded into the weight and bias, the bias
    inside the convolution, leaky ReLU in place."""

    def __init__(self, conv: EqualConv2d):
        super().__init__()
        gain = conv.scale * (GAIN if conv.activate else 1.0)
        self.register_buffer("weight", channels_last(conv.weight.detach() * gain))  # (out, in, kh, kw)
        bias = None if conv.bias is None else conv.bias.detach() * (GAIN if conv.activate else 1.0)
        self.register_buffer("bias", bias)
        self.stride, self.pad, self.activate = conv.stride, conv.pad, conv.activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:                        # (B, in, H, W)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        out = F.conv2d(x, self.weight.to(x.dtype), bias, stride=self.stride, padding=self.pad)
        return F.leaky_relu_(out, 0.2) if self.activate else out


class FrozenEqualLinear(nn.Module):
    """``EqualLinear`` with the scale (and the activation's √2) folded into weight and bias."""

    def __init__(self, linear: EqualLinear):
        super().__init__()
        gain = GAIN if linear.activate else 1.0
        self.register_buffer("weight", linear.weight.detach() * linear.scale * gain)  # (out, in)
        self.register_buffer("bias", linear.bias.detach() * gain)
        self.activate = linear.activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:                        # (B, in) → (B, out)
        out = F.linear(x, self.weight.to(x.dtype), self.bias.to(x.dtype))
        return F.leaky_relu_(out, 0.2) if self.activate else out


class FrozenStyledConv(nn.Module):
    """``StyledConv``: modulated conv with √2 folded into its demodulation, then noise and bias
    added in place (both × √2) and leaky ReLU in place."""

    def __init__(self, layer: StyledConv):
        super().__init__()
        self.conv = FrozenModulatedConv2d(layer.conv, gain=GAIN)
        self.noise_weight = None if layer.noise is None else float(layer.noise.weight.detach()) * GAIN
        self.register_buffer("bias", layer.bias.detach().view(1, -1, 1, 1) * GAIN)  # (1, out, 1, 1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = self.conv(x, style)                                               # (B, out, H, W) × √2
        if self.noise_weight is not None:
            noise = torch.randn(out.shape[0], 1, *out.shape[2:], device=out.device, dtype=out.dtype)
            out.add_(noise, alpha=self.noise_weight)
        return F.leaky_relu_(out.add_(self.bias.to(out.dtype)), 0.2)


class FrozenToRGB(nn.Module):
    """``ToRGB``: bias and the upsampled skip added in place."""

    def __init__(self, layer: ToRGB):
        super().__init__()
        self.conv = FrozenModulatedConv2d(layer.conv)
        self.register_buffer("bias", layer.bias.detach())                     # (1, out, 1, 1)

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style).add_(self.bias.to(x.dtype))
        return out if skip is None else out.add_(up2(skip))


class FrozenAudioResBlock(nn.Module):
    """``AudioResBlock``: leaky((a + b)/√2 + bias)·√2 = leaky(a + b + √2·bias), all in place."""

    def __init__(self, block: AudioResBlock):
        super().__init__()
        self.conv1, self.conv2 = freeze_module(block.conv1), freeze_module(block.conv2)
        self.skip = freeze_module(block.skip)
        self.register_buffer("bias", block.bias.detach().view(1, -1, 1, 1) * GAIN)  # (1, out, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                        # (N, in, F, W)
        out = self.conv2(self.conv1(x)).add_(self.skip(x))
        return F.leaky_relu_(out.add_(self.bias.to(out.dtype)), 0.2)


# training module type → its frozen form (each constructor freezes the sub-modules it keeps)
FROZEN_FORMS = {ModulatedConv2d: FrozenModulatedConv2d, StyledConv: FrozenStyledConv, ToRGB: FrozenToRGB,
                AudioResBlock: FrozenAudioResBlock, EqualConv2d: FrozenEqualConv2d, EqualLinear: FrozenEqualLinear}


def freeze_module(module: nn.Module) -> nn.Module:
    """``module`` in its frozen form when it has one, else with each child frozen (in place, recursively)."""
    form = FROZEN_FORMS.get(type(module))
    if form is not None:
        return form(module)
    for name, child in list(module.named_children()):
        setattr(module, name, freeze_module(child))
    return module


def freeze_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (e.g. a Renderer) in eval mode, without gradients, with every layer that
    has a frozen form (``FROZEN_FORMS``) replaced by it; ``model`` itself is untouched."""
    frozen = freeze_module(copy.deepcopy(model).eval())
    frozen.requires_grad_(False)
    return frozen


def masked_texels(texture: NeuralTexture, uv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``texture(uv, mask)`` computed only at the texels the mask keeps: uv (*, H, W, 2), mask (*, H, W)
    0/1 → (*, C, H, W), 0 off the mask. Bilinear lookups are independent per pixel, so sampling the
    masked pixels as one (1, 1, P, 2) grid gives the same values for a fraction of the work (the
    lower face is about a third of the crop)."""
    lead, (h, w) = uv.shape[:-3], uv.shape[-3:-1]
    uv = uv.reshape(-1, h, w, 2)                                               # (n, H, W, 2)
    where = (mask.reshape(-1, h, w) > 0).nonzero(as_tuple=True)                # P × (n, y, x)
    grid = (uv[where] * 2.0 - 1.0).view(1, 1, -1, 2)                          # (1, 1, P, 2) in [-1, 1]
    picked = 0.0
    for level in texture.pyramid:                                              # (1, C, s, s), summed as NeuralTexture.sample
        picked = picked + F.grid_sample(level, grid, mode="bilinear", padding_mode="border", align_corners=False)
    texels = uv.new_zeros(len(uv), h, w, texture.channels)
    texels[where] = picked[0, :, 0].t()                                        # (P, C) into (n, H, W, C)
    return texels.permute(0, 3, 1, 2).reshape(*lead, texture.channels, h, w)


def render_precision(dtype: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context for ``dub.render_dtype``: none for float32, bfloat16 autocast otherwise."""
    if dtype not in RENDER_DTYPES:
        raise ValueError(f"render dtype must be one of {RENDER_DTYPES}, got {dtype!r}")
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
