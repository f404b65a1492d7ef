"""Tiny in-memory stand-in for ``deadlib.data.dataset.WindowDataset`` (tests, benchmarks, demos).

Each identity is a backdrop plus a patterned face ellipse in its own colours that drifts a few
pixels (head motion) and whose mouth — a dark ellipse in the lower face — opens with a smooth
per-identity track ``a_t``. The log-MEL windows carry ``a_t`` in their low bands, and the UV
map follows the face and sends mouth-interior pixels to a dedicated texel patch (as a deforming
mesh would), so audio and geometry both say how open the mouth is. Same keys, shapes and
ranges as the real dataset contract (``deadlib.data.dataset``).
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

MOUTH_RGB = (-0.7, -0.8, -0.75)


def _tracks(n: int, seed: int) -> torch.Tensor:
    """Smooth tracks in [-1, 1], (3, n): mouth opening (mapped to [0, 1] later), head dx, head dy."""
    g = torch.Generator().manual_seed(seed)
    f = 0.05 + 0.3 * torch.rand(3, 2, generator=g)
    ph = 2 * math.pi * torch.rand(3, 2, generator=g)
    t = torch.arange(n, dtype=torch.float32)
    return (0.6 * torch.sin(f[:, :1] * t + ph[:, :1]) + 0.4 * torch.sin(f[:, 1:] * t + ph[:, 1:])).clamp(-1, 1)


class SyntheticWindows(Dataset):
    """Windows of T consecutive frames over ``n_frames`` frames per identity (from frame ``start``)."""

    def __init__(self, names: tuple[str, ...] | list[str] = ("synth_a",), n_frames: int = 32, size: int = 64,
                 window: int = 3, n_refs: int = 1, seed: int = 0, start: int = 0, motion: float = 0.04):
        self.names, self.size, self.window, self.n_refs = list(names), size, window, n_refs
        self.n_frames, self.start, self.motion = n_frames, start, motion
        s = size
        self.yy, self.xx = torch.meshgrid((torch.arange(s) + 0.5) / s, (torch.arange(s) + 0.5) / s, indexing="ij")
        self.per_identity = []
        for k in range(len(self.names)):
            g = torch.Generator().manual_seed(seed * 7919 + k)
            self.per_identity.append(dict(
                centre=(0.5 + 0.06 * (float(torch.rand((), generator=g)) - 0.5), 0.52),
                radii=(0.26 + 0.04 * float(torch.rand((), generator=g)), 0.34),
                bg=torch.rand(3, 1, 1, generator=g) * 0.6 - 0.3 + 0.3 * (self.yy - 0.5),   # (3, S, S)
                skin=torch.rand(3, 1, 1, generator=g) * 0.4 + 0.2, phase=3.0 * k,
                tracks=_tracks(start + n_frames, seed * 104729 + k),                  # (3, N)
                mel_noise=torch.randn(16, 80, generator=g) * 0.1))

    def __len__(self) -> int:
        return len(self.names) * (self.n_frames - self.window + 1)

    def _frame(self, p: dict, t: int) -> dict[str, torch.Tensor]:
        """Frame ``t`` of identity ``p``: image (3,S,S), uv (S,S,2), face/lower/mouth (S,S) bool, mel (16,80)."""
        a, dx, dy = p["tracks"][:, self.start + t]
        a = (a + 1) / 2                                                              # opening in [0, 1]
        ex = (self.xx - p["centre"][0] - self.motion * dx) / p["radii"][0]           # (S, S) ellipse coords
        ey = (self.yy - p["centre"][1] - self.motion * dy) / p["radii"][1]
        face = ex**2 + ey**2 <= 1
        lower = face & (ey >= 0)
        mouth = (ex / 0.45) ** 2 + ((ey - 0.55) / (0.04 + 0.22 * a)) ** 2 <= 1
        pattern = 0.15 * torch.sin(18 * ex + p["phase"]) * torch.cos(14 * ey)
        image = torch.where(face, p["skin"] + pattern, p["bg"])
        image = torch.where(mouth, torch.tensor(MOUTH_RGB).view(3, 1, 1), image).clamp(-1, 1)
        uv = torch.stack([(ex + 1) / 2, (ey + 1) / 2], -1).clamp(0, 1) * 0.8          # face → [0, 0.8]²
        uv = torch.where(mouth[..., None], 0.9 + 0.08 * torch.stack([ex, ey - 0.55], -1).clamp(-1, 1), uv)
        bands = torch.linspace(0, 1, 80)
        mel = p["mel_noise"] + (a * 4 * torch.exp(-((bands - 0.2) / 0.15) ** 2)).expand(16, 80)
        return dict(image=image, uv=uv * lower[..., None], face=face, lower=lower, mouth=mouth, mel=mel)

    def __getitem__(self, index: int) -> dict:
        k, i = divmod(index, self.n_frames - self.window + 1)
        p = self.per_identity[k]
        fr = [self._frame(p, i + t) for t in range(self.window)]
        stack = lambda key: torch.stack([f[key] for f in fr])                        # noqa: E731
        mask = lambda key: stack(key).float()[:, None]                               # noqa: E731  (T,1,H,W)
        ref_t = [(i + self.window + 5 * r) % self.n_frames for r in range(self.n_refs)]
        return {
            "frames": stack("image"),                                                # (T, 3, H, W)
            "uv": stack("uv"),                                                       # (T, H, W, 2)
            "face_mask": mask("face"), "lower_mask": mask("lower"), "mouth_mask": mask("mouth"),
            "weight": 1 + mask("lower") + 2 * mask("mouth"),                         # (T, 1, H, W)
            "mel": stack("mel"),                                                     # (T, 16, 80)
            "refs": torch.stack([self._frame(p, t)["image"] for t in ref_t]),        # (R, 3, H, W)
            "identity": self.names[k], "index": index,
        }


SYNTH_TRAIN_FRAMES, SYNTH_VAL_FRAMES = 8, 5


def synthetic_names(n: int) -> list[str]:
    """Identity ids ``synth_0 ... synth_{n-1}`` of the synthetic stand-in corpus."""
    return [f"synth_{i}" for i in range(n)]


def synthetic_split(size: int):
    """A ``make_dataset(cache_root, names, split, window, n_refs, seed, ref_split=None)`` for
    ``deadlib.train.prior.train_prior`` that needs no cache: frames [0, 8) of each identity are
    "train", the next 5 "val" (references always come from the window's own frames here)."""

    def make(cache_root, names, split, window, n_refs, seed, ref_split=None) -> SyntheticWindows:
        train = split == "train"
        return SyntheticWindows(names, n_frames=SYNTH_TRAIN_FRAMES if train else SYNTH_VAL_FRAMES, size=size,
                                window=window, n_refs=n_refs, seed=seed, start=0 if train else SYNTH_TRAIN_FRAMES)

    return make
