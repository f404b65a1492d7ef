"""Audio encoder: 2-D residual convs over MEL windows → the generator's style vector (§3.1).

Each of the T frames of a window comes with its own MEL window (n_mels x mel_window, treated
as a one-channel image, frequency = height, time = width). A shared residual CNN maps every
window to a per-frame embedding; the T embeddings are flattened (order kept, so the network
knows which frame heard what) and an MLP maps them to one style vector, used in place of
StyleGAN's mapped latent w. No batch-norm: small batches and train/eval parity matter more
here than the speed-up.

Every layer is an equalised-learning-rate layer, like the generator's: the audio encoder and
the generator share one optimiser and one learning rate, and with plain layers (weights
~1/sqrt(fan_in) small) the same Adam step moved the encoder's weights by several percent — at
the GAN onset its updates blew up and saturated the output (issue 13: the prior on a fresh
clone and the w/o-mixed-data cell collapsed; per-module update norms: audio trunk 9.0 vs the
whole generator 2.9). With equalised layers a step changes every layer by the same relative
amount, so no per-module learning rate is needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from deadlib.model.generator import EqualConv2d, EqualLinear, leaky


class AudioResBlock(nn.Module):
    """conv3x3(stride) → lrelu → conv3x3, plus a 1x1 (strided) projection skip; lrelu after the
    (1/sqrt 2-scaled, variance-keeping) sum."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int] = (1, 1)):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, stride=stride)
        self.conv2 = EqualConv2d(out_ch, out_ch, 3, bias=False, activate=False)
        self.bias = nn.Parameter(torch.zeros(out_ch))
        needs_proj = in_ch != out_ch or stride != (1, 1)
        self.skip = EqualConv2d(in_ch, out_ch, 1, stride=stride, bias=False, activate=False) if needs_proj \
            else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # (N, in, F, W)
        return leaky((self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2), self.bias)  # (N, out, F/sy, W/sx)


class AudioEncoder(nn.Module):
    """(B, T, n_mels, mel_window) MEL windows → (B, style_dim) style vector.

    Trunk (per frame, shared): stem conv, four residual blocks with strides (2,1), (2,2),
    (2,2), (2,2) (80x16 → 5x2) and widths 2c, 4c, 8c, 8c (c = ``base_channels``), then a conv
    whose kernel covers the remaining map (→ 1x1, embedding of 8c). Head: flatten T embeddings → Linear → lrelu →
    Linear(style_dim).
    """

    def __init__(self, window: int = 3, n_mels: int = 80, mel_window: int = 16,
                 style_dim: int = 256, base_channels: int = 32):
        super().__init__()
        self.window, self.n_mels, self.mel_window, self.style_dim = window, n_mels, mel_window, style_dim
        c = base_channels
        chans = [c, 2 * c, 4 * c, 8 * c, 8 * c]
        strides = [(2, 1), (2, 2), (2, 2), (2, 2)]
        blocks: list[nn.Module] = [EqualConv2d(1, c, 3)]
        f, w = n_mels, mel_window
        for cin, cout, (sf, sw) in zip(chans[:-1], chans[1:], strides):
            blocks.append(AudioResBlock(cin, cout, (sf, sw)))
            f, w = (f - 1) // sf + 1, (w - 1) // sw + 1
        blocks.append(EqualConv2d(chans[-1], chans[-1], (f, w), padding=0))  # → 1x1
        self.trunk = nn.Sequential(*blocks)
        self.embed_dim = chans[-1]
        self.head = nn.Sequential(EqualLinear(window * self.embed_dim, style_dim, activate=True),
                                  EqualLinear(style_dim, style_dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if tuple(mel.shape[1:]) != (self.window, self.n_mels, self.mel_window):
            raise ValueError(f"mel must be (B, {self.window}, {self.n_mels}, {self.mel_window}), "
                             f"got {tuple(mel.shape)}")
        b, t, f, w = mel.shape
        emb = self.trunk(mel.reshape(b * t, 1, f, w))                   # (B*T, E, 1, 1)
        return self.head(emb.reshape(b, t * self.embed_dim))            # (B, style_dim)
