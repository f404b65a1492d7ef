"""The renderer for inference (dubbing): the same function, computed the cheaper way round.

Training needs ``ModulatedConv2d`` in StyleGAN2's fused form — per-sample weights ``w · s`` and
one grouped convolution over the batch — because its weights change every step. At inference the
weights are frozen, so each modulated convolution can be rewritten exactly (StyleGAN2's
"non-fused" form):

    conv(x, w · s) · d  =  conv(x · s, w) · d,     d[b, o] = rsqrt(Σ_i s[b, i]² · Σ_k w[o, i, k]² + ε)

One ordinary convolution with a shared weight replaces the grouped one, and the demodulation is a
(B, in) × (in, out) product against Σ_k w² computed once, instead of building and squaring a
(B, out, in, k, k) weight tensor per call. Same numbers to float rounding (≈ 1e-5 on [−1, 1]
outputs, tests/unit/test_inference.py) and measurably faster on CPU (benchmarks/bench_dub.py
``--render-modes``).

``render_precision`` adds an optional bfloat16 autocast (params ``dub.render_dtype``): worth it
only on CPUs with native bf16 dot products (AVX512-BF16 / AMX) and GPUs; elsewhere it is
emulated and slower. It changes the output by rounding (≈ 44 dB PSNR against float32 on a
random renderer), so it is opt-in and recorded.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from deadlib.model.generator import ModulatedConv2d, up2

RENDER_DTYPES = ("float32", "bfloat16")  # params dub.render_dtype


class FrozenModulatedConv2d(nn.Module):
    """``ModulatedConv2d`` with frozen weights, as modulate-activations → shared conv → demodulate."""

    def __init__(self, conv: ModulatedConv2d):
        super().__init__()
        weight = (conv.scale * conv.weight.detach()[0]).contiguous()           # (out, in, k, k)
        self.register_buffer("weight", weight)
        self.register_buffer("weight_sq", weight.pow(2).sum((2, 3)).t().contiguous())  # (in, out)
        self.modulation = conv.modulation                                       # style (B, S) → (B, in)
        self.kernel, self.demodulate, self.upsample = conv.kernel, conv.demodulate, conv.upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)                                              # (B, in)
        if self.upsample:
            x = up2(x)
        out = F.conv2d(x * s[:, :, None, None], self.weight.to(x.dtype), padding=self.kernel // 2)  # (B, out, H, W)
        if self.demodulate:
            demod = torch.rsqrt(s.float().pow(2) @ self.weight_sq + 1e-8)     # (B, out), float32 always
            out = out * demod[:, :, None, None].to(out.dtype)
        return out


def freeze_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (e.g. a Renderer) in eval mode, without gradients, with every
    ``ModulatedConv2d`` replaced by its ``FrozenModulatedConv2d``; ``model`` itself is untouched."""
    frozen = copy.deepcopy(model).eval()
    for parent in list(frozen.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ModulatedConv2d):
                setattr(parent, name, FrozenModulatedConv2d(child))
    frozen.requires_grad_(False)
    return frozen


def render_precision(dtype: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context for ``dub.render_dtype``: none for float32, bfloat16 autocast otherwise."""
    if dtype not in RENDER_DTYPES:
        raise ValueError(f"render dtype must be one of {RENDER_DTYPES}, got {dtype!r}")
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
