"""The deferred neural renderer (§3.1): audio encoder + StyleSync-style generator, and its sizes.

``Renderer.forward`` builds the generator input of paper Fig. 3 for every frame of the window,
``[frame·(1−m) (3), texels·m (C), m (1)]``, stacks it with R reference frames and decodes T
frames conditioned on the audio style. Neural textures live outside (``deadlib.model.texture``):
they are per identity and usually get their own learning rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from deadlib.model.audio_encoder import AudioEncoder
from deadlib.model.discriminator import Discriminator
from deadlib.model.generator import Generator
from deadlib.model.texture import TextureBank


@dataclass
class RendererConfig:
    """All sizes of renderer, discriminator and textures (values come from params.yaml).

    Recommended presets (params.yaml is authoritative); parameter counts and forward
    GFLOPs per output frame measured with ``count_parameters`` / ``flops_per_frame``:

    ==================  ======  =======  ======  ==========================================
    field               smoke   default  full    note
    ==================  ======  =======  ======  ==========================================
    resolution          64      128      256     square frames
    window (T)          3       3        5       frames in / out per window
    n_refs (R)          1       1        2       reference frames of the same identity
    texture_channels    16      16       16      C (first 3 regularised to RGB)
    texture_size        128     256      512     finest pyramid level S
    texture_levels      4       4        4       S, S/2, S/4, S/8
    base_channels       16      32       128     generator width at full resolution
    max_channels        128     256      512     width cap (StyleGAN2: 512)
    bottleneck          8       8        8       encoder output size (8 or 4)
    style_dim           128     256      512     audio style vector (StyleGAN2 w: 512)
    audio_channels      16      32       64      audio encoder width (x8 at its end)
    disc_base_channels  16      32       128     discriminator width at full resolution
    disc_max_channels   128     256      512
    --- measured ---
    renderer params     1.44M   8.96M    61.6M   audio encoder + generator
      of which audio    0.84M   3.37M    14.0M
    discriminator       0.88M   4.76M    28.9M
    GFLOPs / frame      0.18    2.39     65.6    renderer forward / T (2 FLOPs per MAC)
    ==================  ======  =======  ======  ==========================================

    ``full`` matches StyleGAN2 config-f widths at 256 px (128 @256, 256 @128, 512 below),
    i.e. the StyleSync scale; a 512-d style like StyleGAN's w. A cheaper ``full`` with
    base_channels=64 / disc_base_channels=64 has 49.2M + 24.0M parameters, 22.4 GFLOPs/frame.
    """

    resolution: int = 128
    window: int = 3
    n_refs: int = 1
    texture_channels: int = 16
    texture_size: int = 256
    texture_levels: int = 4
    texture_init_std: float = 0.1
    base_channels: int = 32
    max_channels: int = 256
    bottleneck: int = 8
    style_dim: int = 256
    n_mels: int = 80
    mel_window: int = 16
    audio_channels: int = 32
    noise: bool = False
    disc_base_channels: int = 32
    disc_max_channels: int = 256
    disc_mbstd: bool = True

    def __post_init__(self) -> None:
        def pow2(name: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1 or v & (v - 1):
                raise ValueError(f"RendererConfig.{name} must be a power of two, got {v!r}")

        for name in ("resolution", "texture_size", "bottleneck"):
            pow2(name)
        if not 4 <= self.bottleneck < self.resolution:
            raise ValueError(f"bottleneck ({self.bottleneck}) must be >= 4 and < resolution ({self.resolution})")
        if self.texture_size % (2 ** (self.texture_levels - 1)):
            raise ValueError(f"texture_size {self.texture_size} must be divisible by 2^(levels-1)")
        if self.texture_channels < 3:
            raise ValueError("texture_channels must be >= 3 (the first 3 are regularised to RGB)")
        if min(self.window, self.n_refs, self.base_channels, self.style_dim) < 1:
            raise ValueError("window, n_refs, base_channels and style_dim must be positive")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "RendererConfig":
        """Build from a params section, ignoring keys that are not fields (e.g. lr, steps)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Renderer(nn.Module):
    """AudioEncoder + Generator: (masked frames, texels, mask, refs, mel) → T frames in [-1, 1]."""

    def __init__(self, cfg: RendererConfig, device: torch.device | str | None = None):
        super().__init__()
        self.cfg = cfg
        self.audio = AudioEncoder(cfg.window, cfg.n_mels, cfg.mel_window, cfg.style_dim, cfg.audio_channels)
        self.generator = Generator(cfg.resolution, cfg.window, cfg.n_refs, cfg.texture_channels,
                                   cfg.style_dim, cfg.base_channels, cfg.max_channels,
                                   cfg.bottleneck, cfg.noise)
        self.to(device or "cpu")

    def forward(self, masked_frames: torch.Tensor, texels: torch.Tensor, mask: torch.Tensor,
                refs: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """masked_frames (B,T,3,H,W), texels (B,T,C,H,W), mask (B,T,1,H,W), refs (B,R,3,H,W),
        mel (B,T,n_mels,mel_window) → (B,T,3,H,W). The mask is re-applied (idempotent for a
        binary mask), so unmasked frames/texels may be passed as well."""
        m = mask.to(masked_frames.dtype)
        frames_in = torch.cat([masked_frames * (1 - m), texels * m, m], 2)  # (B, T, 4+C, H, W)
        return self.generator(frames_in, refs, self.audio(mel))


def make_discriminator(cfg: RendererConfig, device: torch.device | str | None = None) -> Discriminator:
    return Discriminator(cfg.resolution, cfg.window, cfg.disc_base_channels, cfg.disc_max_channels,
                         cfg.disc_mbstd).to(device or "cpu")


def make_texture_bank(cfg: RendererConfig, identities: list[str] = (),
                      device: torch.device | str | None = None) -> TextureBank:
    return TextureBank(identities, cfg.texture_channels, cfg.texture_size, cfg.texture_levels,
                       cfg.texture_init_std, device=device)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def dummy_inputs(cfg: RendererConfig, batch: int = 1,
                 device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
    """Random inputs of the right shapes for ``Renderer.forward`` (tests, FLOP counts, timing)."""
    b, t, h, c = batch, cfg.window, cfg.resolution, cfg.texture_channels
    kw = {"device": device or "cpu"}
    mask = (torch.rand(b, t, 1, h, h, **kw) > 0.5).float()
    return (torch.rand(b, t, 3, h, h, **kw) * 2 - 1, torch.randn(b, t, c, h, h, **kw) * 0.1, mask,
            torch.rand(b, cfg.n_refs, 3, h, h, **kw) * 2 - 1,
            torch.randn(b, t, cfg.n_mels, cfg.mel_window, **kw))


def flops_per_frame(renderer: Renderer, cfg: RendererConfig | None = None) -> float:
    """FLOPs of one renderer forward divided by the T output frames (batch 1, FlopCounterMode)."""
    cfg = cfg or renderer.cfg
    device = next(renderer.parameters()).device
    inputs = dummy_inputs(cfg, 1, device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        renderer(*inputs)
    return counter.get_total_flops() / cfg.window


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Renderer output (..., 3, H, W) in [-1, 1] → (..., H, W, 3) uint8 frames (video, plots, metrics)."""
    return ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().movedim(-3, -1).cpu().numpy()
