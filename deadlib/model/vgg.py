"""Frozen VGG-19 feature extractor for the style loss — loaded from disk, never downloaded.

Layers returned (torchvision ``vgg19().features`` indices): relu1_2 (3), relu2_2 (8),
relu3_4 (17), relu4_4 (26) — the classic Gatys style layers minus relu5_4 (tiny at 128 px).
The network is cut after relu4_4, so deeper layers cost nothing.

Weights are torchvision's ImageNet checkpoint ``vgg19-dcbb9e9d.pth``. Provide them either
with an explicit path or by placing the file in the torch hub cache
(``<hub_dir or torch.hub.get_dir()>/checkpoints/``), e.g. on a machine with network:
``python -c "import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')"`` and copy
the file over. Nothing here ever triggers a download.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models.vgg import cfgs, make_layers

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
STYLE_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_4": 17, "relu4_4": 26}


class WeightsUnavailable(FileNotFoundError):
    """Pretrained VGG-19 weights were not found locally (downloads are never attempted)."""


class VGGFeatures(nn.Module):
    """Frozen VGG-19 trunk up to relu4_4; ``forward(x)`` → list of the STYLE_LAYERS maps."""

    def __init__(self, features: nn.Sequential, layers: dict[str, int] = STYLE_LAYERS):
        super().__init__()
        self.layer_names = list(layers)
        cuts = [0] + [i + 1 for i in layers.values()]
        self.slices = nn.ModuleList([features[a:b] for a, b in zip(cuts[:-1], cuts[1:])])
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)                                     # always frozen / eval

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:           # x: (N, 3, H, W) ImageNet-normalised
        feats = []
        for block in self.slices:
            x = block(x)
            feats.append(x)
        return feats


def _vgg19_trunk() -> nn.Sequential:
    """torchvision's VGG-19 ``features`` (cfg 'E', no batch-norm), randomly initialised."""
    return make_layers(cfgs["E"], batch_norm=False)


def load_vgg19_features(weights_path: str | os.PathLike | None = None, hub_dir: str | None = None,
                        device: torch.device | str | None = None) -> VGGFeatures:
    """Frozen VGG-19 features from ``weights_path`` or the hub cache; raises WeightsUnavailable.

    ``weights_path`` given → only that file is used. Otherwise the file is looked up as
    ``<hub_dir or torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``.
    """
    if weights_path is not None:
        candidates = [Path(weights_path)]
    else:
        candidates = [Path(hub_dir or torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise WeightsUnavailable(
            f"VGG-19 weights not found (looked at: {', '.join(map(str, candidates))}). Downloads are "
            f"disabled; copy torchvision's {VGG19_FILENAME} there (or pass its path as weights_path "
            "/ the train config's vgg_weights), or set the VGG loss weight to 0.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    trunk = _vgg19_trunk()
    try:
        trunk.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsUnavailable(f"{path} is not a torchvision VGG-19 checkpoint: {err}") from err
    return VGGFeatures(trunk).to(device or "cpu")


def random_vgg19_features(seed: int = 0, device: torch.device | str | None = None) -> VGGFeatures:
    """TESTS ONLY: the same frozen extractor with random (Kaiming) weights — exercises the code
    path of the style loss without pretrained weights. Does not touch the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk = _vgg19_trunk()[: max(STYLE_LAYERS.values()) + 1]
        for m in trunk.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return VGGFeatures(trunk).to(device or "cpu")
