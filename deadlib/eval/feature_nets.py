"""Pretrained feature networks for the evaluation metrics — loaded from disk, never downloaded.

* Inception-v3 pool3 (2048-d) for FID: torchvision's architecture and ImageNet checkpoint
  ``inception_v3_google-0cc3c7bd.pth`` (path, or ``<hub_dir or torch.hub.get_dir()>/checkpoints/``).
  Note: this is torchvision's Inception, not the TF graph of pytorch-fid, so absolute FID values
  are close to but not identical with numbers from pytorch-fid / the paper's tooling.
* I3D (Carreira & Zisserman 2017) for FVD: a compact InceptionI3d whose parameter names follow
  the widely shared PyTorch port, so ``i3d_pretrained_400.pt`` (Kinetics-400) loads directly.
  Its output is the 400-d logits averaged over time, as in the common FVD implementations.

Missing files raise ``WeightsUnavailable`` naming where we looked and what to provide. The
``random_*`` constructors are for TESTS ONLY: they exercise the code paths with random weights,
and no metric computed with them means anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import inception_v3

from deadlib.model.vgg import WeightsUnavailable

INCEPTION_FILENAME = "inception_v3_google-0cc3c7bd.pth"
I3D_FILENAME = "i3d_pretrained_400.pt"


def _find(path: str | os.PathLike | None, fallback: list[Path], what: str, how: str) -> Path:
    """First existing file among [path] or ``fallback``; else WeightsUnavailable with the places tried."""
    candidates = [Path(path)] if path is not None else fallback
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        tried = ", ".join(map(str, candidates)) or "(no location given)"
        raise WeightsUnavailable(f"{what} weights not found (looked at: {tried}). Downloads are disabled; {how}")
    return found


def _load_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict from ``path`` (unwraps {'state_dict': ...} and 'module.' prefixes)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{path} does not hold a {what} state dict (got {type(state).__name__})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _strict_load(net: nn.Module, state: dict, path: Path, what: str) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsUnavailable(f"{path} is not a {what} checkpoint: {err}") from err


def _freeze(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def _kaiming(net: nn.Module) -> None:
    """Variance-preserving random conv weights (BN is identity at init) so activations stay O(1)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------- Inception (FID)

class InceptionPool3(nn.Module):
    """Inception-v3 up to global average pooling: (N, 3, H, W) in [0, 1] → (N, 2048).

    ``resize_to``: bilinear resize to this square size first (299 for real FID; None keeps the
    input size, which must be ≥ 75 px). Inputs are mapped to [-1, 1], the range the Google
    checkpoint was trained on (what torchvision's ``transform_input=True`` produces).
    """

    def __init__(self, net: nn.Module, resize_to: int | None = 299):
        super().__init__()
        net.aux_logits, net.AuxLogits, net.fc = False, None, nn.Identity()
        self.net = _freeze(net)
        self.resize_to = resize_to

    def train(self, mode: bool = True) -> "InceptionPool3":
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize_to is not None and x.shape[-2:] != (self.resize_to, self.resize_to):
            x = F.interpolate(x, size=(self.resize_to, self.resize_to), mode="bilinear", align_corners=False)
        if min(x.shape[-2:]) < 75:
            raise ValueError(f"Inception-v3 needs images of at least 75x75, got {tuple(x.shape[-2:])}; "
                             "set resize_to")
        return self.net(x * 2 - 1)                                       # (N, 2048)


def load_inception(path: str | os.PathLike | None = None, hub_dir: str | None = None,
                   resize_to: int | None = 299, device: torch.device | str | None = None) -> InceptionPool3:
    """Inception-v3 pool3 extractor with the Google ImageNet weights; raises WeightsUnavailable."""
    where = [Path(hub_dir or torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME]
    found = _find(path, where, "Inception-v3", f"copy torchvision's {INCEPTION_FILENAME} there or pass its path.")
    net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    _strict_load(net, _load_state(found, "Inception-v3"), found, "torchvision Inception-v3")
    return InceptionPool3(net, resize_to).to(device or "cpu")


def random_inception(seed: int = 0, resize_to: int | None = None) -> InceptionPool3:
    """TESTS ONLY: Inception-v3 pool3 with random weights; does not touch the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
        _kaiming(net)
    return InceptionPool3(net, resize_to)


# ----------------------------------------------------------------------------- I3D (FVD)

def _same_pad(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """TensorFlow 'SAME' padding of (N, C, T, H, W): output size = ceil(input / stride)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (+ BatchNorm + ReLU) with 'SAME' padding — parameters ``conv3d.*``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if bn else None
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        x = self.bn(x) if self.bn is not None else x
        return F.relu(x) if self.relu else x


class SamePool3d(nn.Module):
    """Max-pool with 'SAME' (zero) padding; inputs are post-ReLU, so zeros never win wrongly."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1→3x3x3 | 1x1→3x3x3 | pool→1x1, concatenated on channels."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = SamePool3d((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, module) in order; channel tables from the I3D paper (Inception-v1 inflated).
_MIXED = {"Mixed_3b": (192, (64, 96, 128, 16, 32, 32)), "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
          "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)), "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
          "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)), "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
          "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)), "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
          "Mixed_5c": (832, (384, 192, 384, 48, 128, 128))}


class InceptionI3d(nn.Module):
    """I3D: (N, 3, T, H, W) in [-1, 1] → (N, num_classes) logits averaged over time.

    Any T ≥ 1 and H, W ≥ 1 work ('SAME' padding everywhere); the final average pool covers
    (min(2, t), h, w) of the last feature map — exactly the original [2, 7, 7] pool at 224 px.
    """

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = SamePool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = SamePool3d((1, 3, 3), (1, 2, 2))
        self.Mixed_3b, self.Mixed_3c = Mixed(*_MIXED["Mixed_3b"]), Mixed(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = SamePool3d((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, Mixed(*_MIXED[name]))
        self.MaxPool3d_5a_2x2 = SamePool3d((2, 2, 2), (2, 2, 2))
        self.Mixed_5b, self.Mixed_5c = Mixed(*_MIXED["Mixed_5b"]), Mixed(*_MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, bn=False, relu=False, bias=True)
        self.trunk = [self.Conv3d_1a_7x7, self.MaxPool3d_2a_3x3, self.Conv3d_2b_1x1, self.Conv3d_2c_3x3,
                      self.MaxPool3d_3a_3x3, self.Mixed_3b, self.Mixed_3c, self.MaxPool3d_4a_3x3,
                      self.Mixed_4b, self.Mixed_4c, self.Mixed_4d, self.Mixed_4e, self.Mixed_4f,
                      self.MaxPool3d_5a_2x2, self.Mixed_5b, self.Mixed_5c]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) → (N, 1024, t, h, w) Mixed_5c map."""
        for block in self.trunk:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)                                             # (N, 1024, t, h, w)
        t, h, w = x.shape[2:]
        x = F.avg_pool3d(x, (min(2, t), h, w), stride=1)                # (N, 1024, t', 1, 1)
        return self.logits(x).flatten(2).mean(2)                        # (N, num_classes)


class I3DLogits(nn.Module):
    """FVD front end: (N, T, 3, H, W) in [0, 1] → (N, 400) I3D logits. ``resize_to`` (224 for
    real FVD; None keeps the size) resizes each frame bilinearly; inputs are mapped to [-1, 1]."""

    def __init__(self, net: InceptionI3d, resize_to: int | None = 224):
        super().__init__()
        self.net, self.resize_to = _freeze(net), resize_to

    def train(self, mode: bool = True) -> "I3DLogits":
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        if self.resize_to is not None and x.shape[-2:] != (self.resize_to, self.resize_to):
            x = F.interpolate(x.flatten(0, 1), size=(self.resize_to,) * 2, mode="bilinear", align_corners=False)
            x = x.unflatten(0, (n, t))
        return self.net(x.transpose(1, 2) * 2 - 1)                       # (N, 3, T, H, W) → (N, 400)


def load_i3d(path: str | os.PathLike | None = None, resize_to: int | None = 224,
             device: torch.device | str | None = None) -> I3DLogits:
    """I3D (Kinetics-400) from a state-dict file such as ``i3d_pretrained_400.pt``; raises WeightsUnavailable."""
    found = _find(path, [], "I3D", f"pass the path of a Kinetics-400 InceptionI3d state dict ({I3D_FILENAME}).")
    net = InceptionI3d(400)
    _strict_load(net, _load_state(found, "I3D"), found, "InceptionI3d (400 classes)")
    return I3DLogits(net, resize_to).to(device or "cpu")


def random_i3d(seed: int = 0, resize_to: int | None = None) -> I3DLogits:
    """TESTS ONLY: I3D with random weights; does not touch the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = InceptionI3d(400)
        _kaiming(net)
    return I3DLogits(net, resize_to)
