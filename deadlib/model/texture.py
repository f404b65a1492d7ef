"""Neural textures (Thies et al., Deferred Neural Rendering): learnable UV feature maps.

A texture is a Laplacian pyramid of ``levels`` learnable feature maps of sizes S, S/2, ...,
each sampled bilinearly from the same UV map and summed. Coarse levels receive gradients from
every pixel that maps into a large UV area, so unseen texels still get a sensible value
(the pyramid acts as a multi-resolution regulariser). DEAD keeps one texture per identity
(:class:`TextureBank`); the renderer network is shared across identities (paper §3.2–3.3).

UV convention: ``uv[..., 0] = u`` runs left→right (grid x), ``uv[..., 1] = v`` is measured
from the *top* of the texture image (grid y). Both lie in [0, 1]; texel ``(i, j)`` of a level
of size ``s`` has its centre at ``u = (j + 0.5) / s, v = (i + 0.5) / s`` (align_corners=False).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F


class NeuralTexture(nn.Module):
    """One identity's neural texture: ``levels`` learnable maps (1, C, S/2^l, S/2^l) summed.

    Init: every level is N(0, (init_std / sqrt(levels))^2), so the summed texel starts with
    standard deviation ``init_std`` regardless of the number of levels. Uses the global torch
    RNG, so construction is deterministic under ``torch.manual_seed``.
    """

    def __init__(self, channels: int = 16, size: int = 256, levels: int = 4,
                 init_std: float = 0.1, device: torch.device | str | None = None):
        super().__init__()
        if size % (2 ** (levels - 1)) != 0:
            raise ValueError(f"texture size {size} must be divisible by 2^(levels-1)={2 ** (levels - 1)}")
        self.channels, self.size, self.levels, self.init_std = channels, size, levels, init_std
        level_std = init_std / math.sqrt(levels)
        self.pyramid = nn.ParameterList([
            nn.Parameter(torch.randn(1, channels, size >> l, size >> l, device=device) * level_std)
            for l in range(levels)
        ])

    def sample(self, uv: torch.Tensor) -> torch.Tensor:
        """Bilinear lookup of the summed pyramid at ``uv`` (N, H, W, 2) in [0,1] → (N, C, H, W)."""
        grid = uv * 2.0 - 1.0                                     # (N, H, W, 2) in [-1, 1]
        n = grid.shape[0]
        out = 0.0
        for level in self.pyramid:                                 # (1, C, s, s)
            out = out + F.grid_sample(level.expand(n, -1, -1, -1), grid, mode="bilinear",
                                      padding_mode="border", align_corners=False)
        return out                                                 # (N, C, H, W)

    def forward(self, uv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Rasterised texels: ``uv`` (*, H, W, 2), ``mask`` (*, H, W) → (*, C, H, W), 0 off-mask."""
        _check_uv_mask(uv, mask)
        lead, (h, w) = uv.shape[:-3], uv.shape[-3:-1]
        texels = self.sample(uv.reshape(-1, h, w, 2))              # (N, C, H, W)
        m = mask.reshape(-1, 1, h, w).to(texels.dtype)             # (N, 1, H, W)
        return (texels * m).reshape(*lead, self.channels, h, w)


TEXTURE_INITS = ("random", "mean")


class TextureBank(nn.Module):
    """One :class:`NeuralTexture` per identity id (string keys), all with the same shape.

    ``add(identity)`` creates a fresh randomly initialised texture (same init as above) — used
    both when building the prior over many identities and when adapting to a new actor (§3.3).
    """

    def __init__(self, identities: Iterable[str] = (), channels: int = 16, size: int = 256,
                 levels: int = 4, init_std: float = 0.1, device: torch.device | str | None = None):
        super().__init__()
        self.channels, self.size, self.levels, self.init_std = channels, size, levels, init_std
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.textures = nn.ModuleDict()
        for identity in identities:
            self.add(identity)

    def add(self, identity: str, init: str = "random") -> NeuralTexture:
        """Create (and return) a new texture for ``identity``; error if it exists.

        ``init``: "random" (the N(0, init_std) init above) or "mean" — the mean of the textures the
        bank already holds (an adapted person starts from the prior people's average face in the
        renderer's own texture space instead of noise; needs at least one texture)."""
        if not isinstance(identity, str) or not identity or "." in identity:
            raise ValueError(f"identity id must be a non-empty string without '.', got {identity!r}")
        if identity in self.textures:
            raise KeyError(f"identity {identity!r} already has a texture; use bank[{identity!r}]")
        if init not in TEXTURE_INITS:
            raise ValueError(f"texture init must be one of {TEXTURE_INITS}, got {init!r}")
        if init == "mean" and not len(self.textures):
            raise ValueError("texture init 'mean' needs existing textures to average (a prior); this bank is empty")
        device = next(self.parameters()).device if len(self.textures) else self.device
        tex = NeuralTexture(self.channels, self.size, self.levels, self.init_std, device=device)
        if init == "mean":
            with torch.no_grad():
                for level, maps in enumerate(tex.pyramid):        # (1, C, S/2^l, S/2^l) each
                    maps.copy_(torch.stack([t.pyramid[level] for t in self.textures.values()]).mean(0))
        self.textures[identity] = tex
        return tex

    def __getitem__(self, identity: str) -> NeuralTexture:
        if identity not in self.textures:
            raise KeyError(f"no texture for identity {identity!r}; known: {sorted(self.textures)}"
                           f" (call add({identity!r}) first)")
        return self.textures[identity]

    def __contains__(self, identity: str) -> bool:
        return identity in self.textures

    def __len__(self) -> int:
        return len(self.textures)

    @property
    def identities(self) -> list[str]:
        return list(self.textures.keys())

    def forward(self, identities: list[str], uv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Texels for a batch of mixed identities: ``uv`` (B, *, H, W, 2), ``mask`` (B, *, H, W).

        ``identities[b]`` picks the texture of sample b. Returns (B, *, C, H, W).
        """
        _check_uv_mask(uv, mask)
        if len(identities) != uv.shape[0]:
            raise ValueError(f"got {len(identities)} identities for a batch of {uv.shape[0]}")
        out = uv.new_zeros(*uv.shape[:-3], self.channels, *uv.shape[-3:-1])
        for identity in dict.fromkeys(identities):                  # unique, in order
            idx = [b for b, name in enumerate(identities) if name == identity]
            out[idx] = self[identity](uv[idx], mask[idx])
        return out


def _check_uv_mask(uv: torch.Tensor, mask: torch.Tensor) -> None:
    if uv.dim() < 4 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be (B, ..., H, W, 2), got {tuple(uv.shape)}")
    if tuple(mask.shape) != tuple(uv.shape[:-1]):
        raise ValueError(f"mask must be uv.shape[:-1]={tuple(uv.shape[:-1])}, got {tuple(mask.shape)}")
