"""Audio → per-frame expression coefficients: a FaceFormer/Imitator-style transformer (§3.4).

DEAD drives its renderer with expression parameters predicted by Imitator, a transformer trained
on many speakers, and adapts to a new actor by training only a per-coefficient affine final
layer (``deadlib.audio2expr.style``). Without wav2vec2/HuBERT weights, the audio input here is the
project's log-MEL (``deadlib.data.audio``): each video frame gets its 16-MEL-frame (0.2 s) window.

Architecture (per video frame i, all frames in parallel — non-autoregressive):
  MEL window (16, 80) ─ conv front-end ─► token (d_model) + periodic positional encoding
  ─► transformer encoder (self-attention limited to |i-j| ≤ context)
  ─► transformer decoder: queries from the encoder output, self-attention and cross-attention
     (FaceFormer's alignment bias as a hard band) limited to |i-j| ≤ context
  ─► linear head → Δexpr; expr = neutral + gate · Δexpr.

Why windowed bidirectional attention instead of Imitator's autoregressive decoder: lip motion
anticipates the sound (coarticulation), the window makes the model local so any audio length
runs by chunking with overlap-add (``predict``), and there is no exposure bias / error build-up
on long clips. The receptive field is ``context · (n_layers + 2 n_layers)`` frames per side.

Periodic positional encoding (FaceFormer's PPE idea): a sinusoid table whose frequencies are
harmonics of ``period`` frames, indexed by the *global* frame number mod period, so it is
exactly periodic, smooth at the wrap and defined for any length; training draws a random phase
per crop so the model never keys on the absolute position. ``period`` must exceed
``2 · context + 1`` so that relative offsets inside a window stay distinguishable.

Silence → closed, still mouth (two mechanisms):
  1. training: crops get random stretches of silence (digital zero or noise floors of -90 … -60
     dB) whose target is the identity's neutral (closed-mouth) expression, on top of the pauses
     the speech already contains;
  2. a fixed silence gate from MEL loudness: ``gate = clamp((L - gate_db) / gate_width_db + ½,
     0, 1)`` with L the loudness of the frame's window (``frame_loudness_db``); the output is
     ``neutral + gate · Δexpr``, so at digital silence (L = -80 dB) the mouth is exactly neutral
     and exactly still. With the defaults (-60 dB, 6 dB) the gate is fully open above -57 dB
     and fully closed below -63 dB. Measured L: white noise at -70 / -65 / -60 / -50 dBFS reads
     ≈ -64 / -59 / -54 / -44 dB; speech at -26 … -18 dBFS reads ≥ -40 dB wherever the jaw opens
     (≥ 0.1), so the gate leaves 17 dB of headroom for quieter recordings and leaves a -60 dB
     floor to mechanism 1 (the synthetic corpus' own floor). ``gate_db: null`` disables it.

Config presets (``Audio2ExprConfig``; values come from params.yaml):
  smoke:   d_model 32,  n_heads 2, n_layers 1, ff 64,   dropout 0.0, context 8,  period 25, conv 32
  default: d_model 64,  n_heads 4, n_layers 2, ff 128,  dropout 0.1, context 8,  period 25, conv 64
  full:    d_model 256, n_heads 4, n_layers 4, ff 1024, dropout 0.1, context 12, period 50, conv 128
(conv = conv_channels; all with gate_db -60, gate_width_db 6.)
``Audio2ExpressionEnsemble`` averages several pre-trained models (``audio2expr.ensemble`` seeds);
``train_audio2expr`` (multi-identity pre-training) is at the end of this file; the per-person
style layer and its fitting are in ``deadlib.audio2expr.style``; losses in ``deadlib.audio2expr.losses``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from deadlib.audio2expr.losses import MouthBasis, expression_loss
from deadlib.data.audio import (
    MEL_DB_MAX,
    MEL_DB_MIN,
    MEL_MAX,
    MEL_MIN,
    frame_mel_windows,
    log_mel,
    mel_window_starts,
)

MEL_PER_FRAME = 80.0 / 25.0  # MEL rows per video frame (16 kHz, hop 200, 25 fps)


@dataclass
class Audio2ExprConfig:
    """Model hyper-parameters (see the module docstring for the smoke/default/full presets)."""

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2  # encoder layers; the decoder has as many
    ff: int = 128  # feed-forward width of each transformer layer
    dropout: float = 0.1
    K: int = 16  # expression coefficients predicted per frame
    context: int = 8  # attention half-window in frames (±context)
    period: int = 25  # positional-encoding period in frames; > 2·context + 1
    conv_channels: int = 64
    n_mels: int = 80
    mel_window: int = 16  # MEL frames per video-frame window (deadlib.data.audio.frame_mel_windows)
    gate_db: float | None = -60.0  # silence-gate centre (dB of frame loudness); None disables
    gate_width_db: float = 6.0
    # "speech_mean": subtract the per-band mean MEL of the sequence's speech frames (loudness
    # >= norm_floor_db) from the network's input (not the gate's): the recording's channel and the
    # speaker's long-term spectrum are removed (cepstral-mean-normalisation's idea). "none": raw MEL.
    input_norm: str = "none"
    norm_floor_db: float = -50.0

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or self.d_model % 2:
            raise ValueError(f"d_model={self.d_model} must be even and divisible by n_heads={self.n_heads}")
        if self.period <= 2 * self.context + 1:
            raise ValueError(f"period={self.period} must exceed 2·context+1={2 * self.context + 1}")
        if self.K < 1 or self.context < 1 or self.n_layers < 1:
            raise ValueError("K, context and n_layers must be >= 1")
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm={self.input_norm!r}: one of {INPUT_NORMS}")


INPUT_NORMS = ("none", "speech_mean")


def frame_loudness_db(windows: torch.Tensor) -> torch.Tensor:
    """(..., W, F) normalised MEL windows → (...,) loudness in dB: mean of the loudest 10 % of
    bands, each band taken at its maximum over the window (robust to a flat noise floor)."""
    peak = windows.amax(-2)  # (..., F)
    level = peak.topk(max(1, peak.shape[-1] // 10), dim=-1).values.mean(-1)  # (...,)
    return MEL_DB_MIN + (level - MEL_MIN) / (MEL_MAX - MEL_MIN) * (MEL_DB_MAX - MEL_DB_MIN)


def silence_gate(windows: torch.Tensor, gate_db: float | None, width_db: float) -> torch.Tensor:
    """(B, N, W, F) → (B, N, 1) in [0, 1]: 0 on silence, 1 on speech (linear ramp of width_db)."""
    if gate_db is None:
        return windows.new_ones(windows.shape[:2] + (1,))
    return ((frame_loudness_db(windows) - gate_db) / width_db + 0.5).clamp(0.0, 1.0).unsqueeze(-1)


def speech_mean(windows: torch.Tensor, floor_db: float) -> torch.Tensor:
    """(B, N, W, F) MEL windows → (B, 1, 1, F): per-band mean over the frames at or above
    ``floor_db`` loudness (0 where a sequence has none, so silence stays as it is)."""
    speech = (frame_loudness_db(windows) >= floor_db).to(windows.dtype)[..., None]  # (B, N, 1)
    band = windows.mean(2)  # (B, N, F)
    mean = (band * speech).sum(1) / speech.sum(1).clamp(min=1.0)  # (B, F)
    return mean[:, None, None]


def band_mask(n: int, context: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, n) bool attention mask, True = blocked: frame i sees frames j with |i - j| <= context."""
    idx = torch.arange(n, device=device)
    return (idx[:, None] - idx[None, :]).abs() > context


class PeriodicPositionalEncoding(nn.Module):
    """Adds sin/cos of harmonics of ``period`` evaluated at the global frame index (exactly periodic)."""

    def __init__(self, d_model: int, period: int):
        super().__init__()
        self.period = period
        harmonics = 1 + torch.arange(d_model // 2) % max(1, period // 2)  # (d/2,)
        phase = 2 * math.pi * torch.arange(period)[:, None] * harmonics[None] / period  # (P, d/2)
        table = torch.stack([phase.sin(), phase.cos()], -1).reshape(period, d_model)  # (P, d)
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor, start: torch.Tensor) -> torch.Tensor:  # (B, N, d), (B,)
        pos = (start[:, None] + torch.arange(x.shape[1], device=x.device)) % self.period  # (B, N)
        return x + self.table[pos]


class MelFrontEnd(nn.Module):
    """Per-frame MEL window (W, F) → token (d_model): 1-D convs over time with bands as channels."""

    def __init__(self, n_mels: int, mel_window: int, channels: int, d_model: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, channels, 3, padding=1), nn.GELU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.GELU())
        out_len = mel_window
        for _ in range(2):
            out_len = (out_len - 1) // 2 + 1
        self.proj = nn.Linear(channels * out_len, d_model)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # (B, N, W, F)
        b, n, w, f = windows.shape
        x = windows.reshape(b * n, w, f).transpose(1, 2) / MEL_MAX  # (B*N, F, W), ~[-1, 1]
        return self.proj(self.convs(x).flatten(1)).reshape(b, n, -1)  # (B, N, d)


class Audio2Expression(nn.Module):
    """(B, N, mel_window, n_mels) per-frame MEL windows → (B, N, K) expression coefficients."""

    def __init__(self, config: Audio2ExprConfig):
        super().__init__()
        c = self.config = config
        self.frontend = MelFrontEnd(c.n_mels, c.mel_window, c.conv_channels, c.d_model)
        self.pos = PeriodicPositionalEncoding(c.d_model, c.period)
        layer_kw = dict(d_model=c.d_model, nhead=c.n_heads, dim_feedforward=c.ff, dropout=c.dropout,
                        activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.ModuleList(nn.TransformerEncoderLayer(**layer_kw) for _ in range(c.n_layers))
        self.query = nn.Linear(c.d_model, c.d_model)
        self.decoder = nn.ModuleList(nn.TransformerDecoderLayer(**layer_kw) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.K)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("neutral", torch.zeros(c.K))  # closed-mouth expression (K,)

    def set_neutral(self, neutral: np.ndarray | torch.Tensor) -> None:
        """Set the closed-mouth expression the model rests at on silence (K,)."""
        value = torch.as_tensor(np.asarray(neutral), dtype=torch.float32).reshape(-1)
        if value.numel() != self.config.K:
            raise ValueError(f"neutral must have K={self.config.K} values, got {value.numel()}")
        self.neutral.copy_(value.to(self.neutral.device))

    def forward(self, windows: torch.Tensor, start: torch.Tensor | int = 0) -> torch.Tensor:
        """``start``: global index of the first frame (B,) or int, for the periodic encoding."""
        c = self.config
        if windows.ndim != 4 or tuple(windows.shape[2:]) != (c.mel_window, c.n_mels):
            raise ValueError(f"windows must be (B, N, {c.mel_window}, {c.n_mels}) "
                             f"(deadlib.data.audio.frame_mel_windows), got {tuple(windows.shape)}")
        b, n = windows.shape[:2]
        start_t = torch.as_tensor(start, device=windows.device).long().expand(b)  # (B,)
        mask = band_mask(n, c.context, windows.device)  # (N, N)
        inputs = windows - speech_mean(windows, c.norm_floor_db) if c.input_norm == "speech_mean" else windows
        h = self.pos(self.frontend(inputs), start_t)  # (B, N, d)
        for layer in self.encoder:
            h = layer(h, src_mask=mask)
        q = self.pos(self.query(h), start_t)  # (B, N, d)
        for layer in self.decoder:
            q = layer(q, h, tgt_mask=mask, memory_mask=mask)
        delta = self.head(self.norm(q))  # (B, N, K)
        gate = silence_gate(windows, c.gate_db, c.gate_width_db)  # (B, N, 1)
        return self.neutral + gate * delta



class Audio2ExpressionEnsemble(nn.Module):
    """Several ``Audio2Expression`` models of one architecture, pre-trained on the same clips at
    different seeds; the prediction is the mean of theirs: (B, N, W, F) → (B, N, K).

    One training seed moves the generic model's jaw correlation on unseen speakers as much as any
    training change measured (README "Do several seeds averaged do better than one?": 0.29–0.34
    across seeds on the real prior people's speaker folds); averaging four seeds' predictions gave
    +0.04 over the single seeds' mean, above the luckiest seed. Each member keeps its own weights,
    so a per-person fine-tune (``style.fine_tune_base``) tunes every member; ``neutral`` is shared
    (all members rest at the expression of the same quiet frames — checked).
    """

    def __init__(self, members: list[Audio2Expression]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 models, got {len(members)}")
        if any(m.config != members[0].config for m in members[1:]):
            raise ValueError("the ensemble's models differ in architecture (Audio2ExprConfig)")
        if any(not torch.equal(m.neutral, members[0].neutral) for m in members[1:]):
            raise ValueError("the ensemble's models rest at different neutral expressions; train them on the same clips")
        self.members = nn.ModuleList(members)

    @property
    def config(self) -> Audio2ExprConfig:
        return self.members[0].config

    @property
    def neutral(self) -> torch.Tensor:
        return self.members[0].neutral  # (K,), equal in every member

    def set_neutral(self, neutral: np.ndarray | torch.Tensor) -> None:
        for member in self.members:
            member.set_neutral(neutral)

    def forward(self, windows: torch.Tensor, start: torch.Tensor | int = 0) -> torch.Tensor:
        return torch.stack([member(windows, start) for member in self.members]).mean(dim=0)  # (B, N, K)


def _model_config(model: nn.Module) -> Audio2ExprConfig:
    config = getattr(model, "config", None)
    if not isinstance(config, Audio2ExprConfig):
        raise TypeError(f"expected an Audio2Expression (or a wrapper exposing .config), "
                        f"got {type(model).__name__}")
    return config


def _overlap_weights(length: int, ramp: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """(length,) cross-fade weights: linear ramps of ``ramp`` frames on the faded sides, else 1."""
    t = torch.arange(length, dtype=torch.float32) + 0.5
    w = torch.ones(length)
    if ramp > 0 and fade_in:
        w = torch.minimum(w, t / ramp)
    if ramp > 0 and fade_out:
        w = torch.minimum(w, (length - t) / ramp)
    return w


@torch.no_grad()
def predict(model: nn.Module, mel: np.ndarray, n_frames: int, chunk: int = 200,
            overlap: int | None = None, device: torch.device | str | None = None) -> np.ndarray:
    """Expression coefficients (n_frames, K) for log-MEL (M, 80) of any length (eval mode, no grad).

    Runs in chunks of ``chunk`` frames that overlap by ``overlap`` (default ``4 · context``),
    cross-faded linearly; the positional encoding uses the global frame index, so chunks agree
    with a single pass up to the truncated attention context at chunk edges.
    """
    config = _model_config(model)
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    overlap = min(4 * config.context if overlap is None else overlap, chunk // 2)
    device = device or next(model.parameters()).device
    windows = torch.from_numpy(frame_mel_windows(mel, n_frames, window=config.mel_window)).to(device)
    was_training = model.training
    model.eval()
    try:
        if n_frames <= chunk:
            return model(windows[None], 0)[0].cpu().numpy()
        hop = chunk - overlap
        starts = list(range(0, n_frames - chunk, hop)) + [n_frames - chunk]
        out = torch.zeros(n_frames, config.K)
        weight = torch.zeros(n_frames, 1)
        for s in starts:
            pred = model(windows[None, s:s + chunk], s)[0].cpu()  # (chunk, K)
            w = _overlap_weights(chunk, overlap, s > 0, s + chunk < n_frames)[:, None]
            out[s:s + chunk] += w * pred
            weight[s:s + chunk] += w
        return (out / weight).numpy()
    finally:
        model.train(was_training)


# ----------------------------------------------------------------------------------------------
# Multi-identity pre-training
# ----------------------------------------------------------------------------------------------

@dataclass
class Audio2ExprTrainConfig:
    """Optimisation and augmentation of ``train_audio2expr`` (values come from params.yaml)."""

    steps: int = 2000
    batch: int = 16
    window: int = 64  # frames per training crop (2.56 s)
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup: int = 100
    grad_clip: float = 1.0
    w_coef: float = 1.0
    w_vel: float = 1.0
    w_vertex: float = 1.0  # mouth-vertex MSE (needs a basis; 0 without one)
    silence_prob: float = 0.3  # chance that a crop gets a stretch of silence
    silence_floors_db: list[float] = field(default_factory=lambda: [-90.0, -80.0, -70.0, -60.0])
    gain_db: float = 6.0  # random loudness change of a crop, ± dB
    formant_warp: float = 0.1  # random MEL-axis stretch of a crop by exp(±formant_warp) (another vocal tract)
    speed: float = 0.0  # random speaking-rate change of a clip by exp(±speed): MEL rows and targets resampled
    freq_mask: int = 0  # SpecAugment-style: two bands of up to this many MEL bins set to the clip's mean
    seed: int = 0


def _noise_mels(floors_db: list[float], seconds: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Log-MEL of white noise at each floor, plus digital silence: the silence bank (M, 80) each."""
    n = int(seconds * 16000)
    bank = [np.full((int(seconds * 80), 80), MEL_MIN, np.float32)]
    bank += [log_mel((10 ** (db / 20) * rng.standard_normal(n)).astype(np.float32)) for db in floors_db]
    return bank


def warp_mel_axis(mel: np.ndarray, factor: float) -> np.ndarray:
    """(M, F) log-MEL with the MEL axis stretched by ``factor`` (linear interpolation, edge bins
    repeated): band f takes the value of band f / factor, so ``factor`` > 1 moves formants up.
    Vocal-tract-length perturbation: a speaker with a shorter or longer vocal tract saying the same
    thing — with 17 real training speakers, the model otherwise learns their voices, not speech."""
    f = mel.shape[1]
    src = np.clip(np.arange(f) / factor, 0, f - 1)  # (F,) fractional source band of each band
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, f - 1)
    w = (src - lo).astype(np.float32)
    return mel[:, lo] * (1 - w) + mel[:, hi] * w


def change_speed(mel: np.ndarray, expr: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(M, F) MEL rows and (N, K) targets of the same clip spoken ``rate`` times faster (linear
    interpolation in time; pitch and formants unchanged). Row/frame centres map back to the source
    time ``rate`` times later, so the 16-row/5-frame alignment of ``clip_of`` is kept."""
    def resample(x: np.ndarray, n_out: int) -> np.ndarray:
        src = np.clip((np.arange(n_out) + 0.5) * rate - 0.5, 0, len(x) - 1)  # (n_out,) source index
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, len(x) - 1)
        w = (src - lo).astype(np.float32)[:, None]
        return (x[lo] * (1 - w) + x[hi] * w).astype(np.float32)
    return resample(mel, int(len(mel) / rate)), resample(expr, int(len(expr) / rate))


def mask_bands(mel: np.ndarray, max_width: int, rng: np.random.Generator, count: int = 2) -> np.ndarray:
    """(M, F) MEL with ``count`` random bands of 0..max_width bins set to the clip's mean there."""
    mel = mel.copy()
    for _ in range(count):
        width = int(rng.integers(0, max_width + 1))
        lo = int(rng.integers(0, mel.shape[1] - width + 1))
        if width:  # a zero-width band masks nothing (both draws still happen: the stream stays the same)
            mel[:, lo:lo + width] = mel[:, lo:lo + width].mean()
    return mel


def _sample_crop(mel: np.ndarray, expr: np.ndarray, window: int, mel_window: int,
                 cfg: Audio2ExprTrainConfig, neutral: np.ndarray, bank: list[np.ndarray],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """One augmented crop: windows (T, W, F), target (T, K), first frame index.

    Silence replaces the MEL rows under frames [a, a + length) (rows centred in them, 3.2 MEL
    rows per frame), and those frames' target becomes ``neutral``. With ``cfg.formant_warp`` the
    speech (not the inserted silence) is first warped along the MEL axis (``warp_mel_axis``).
    """
    if cfg.formant_warp > 0:
        mel = warp_mel_axis(mel, float(np.exp(rng.uniform(-cfg.formant_warp, cfg.formant_warp))))
    if cfg.speed > 0:
        rate = float(np.exp(rng.uniform(-cfg.speed, cfg.speed)))
        if len(expr) / rate >= window + 1:  # a clip that would get shorter than a crop keeps its speed
            mel, expr = change_speed(mel, expr, rate)
    if cfg.freq_mask > 0:
        mel = mask_bands(mel, cfg.freq_mask, rng)
    n = len(expr)
    s = int(rng.integers(0, n - window + 1))
    mel = mel.copy()
    if cfg.gain_db > 0:
        shift = rng.uniform(-cfg.gain_db, cfg.gain_db) * (MEL_MAX - MEL_MIN) / (MEL_DB_MAX - MEL_DB_MIN)
        mel = np.clip(mel + shift, MEL_MIN, MEL_MAX)
    target = expr[s:s + window].copy()
    if rng.random() < cfg.silence_prob:
        length = int(rng.integers(window // 4, window // 2 + 1))
        a = s + int(rng.integers(0, window - length + 1))
        rows = np.arange(round((a + 0.5) * MEL_PER_FRAME), round((a + length + 0.5) * MEL_PER_FRAME))
        rows = rows[(rows >= 0) & (rows < len(mel))]
        noise = bank[int(rng.integers(len(bank)))]
        off = int(rng.integers(0, len(noise) - len(rows) + 1))
        mel[rows] = noise[off:off + len(rows)]
        target[a - s:a - s + length] = neutral
    starts = mel_window_starts(n, window=mel_window)[s:s + window]  # (T,)
    idx = starts[:, None] + np.arange(mel_window)  # (T, W)
    padded = np.concatenate([mel, np.full((1, mel.shape[1]), MEL_MIN, np.float32)])
    windows = padded[np.where((idx < 0) | (idx >= len(mel)), len(mel), idx)]
    return windows, target, s


def neutral_from_quiet_frames(clips: list[tuple[np.ndarray, np.ndarray]],
                              quantile: float = 0.05) -> np.ndarray:
    """Closed-mouth expression (K,): mean target over each clip's quietest ``quantile`` of frames."""
    picked = []
    for mel, expr in clips:
        loud = frame_loudness_db(torch.from_numpy(frame_mel_windows(mel, len(expr)))).numpy()  # (N,)
        picked.append(expr[loud <= np.quantile(loud, quantile)])
    return np.concatenate(picked).mean(0).astype(np.float32)


def windowed_clips(clips: list[tuple[np.ndarray, np.ndarray]], window: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (mel, expr) clips with at least ``window`` frames: training crops are ``window`` frames long."""
    return [c for c in clips if len(c[1]) >= window]


def _check_clips(clips: list[tuple[np.ndarray, np.ndarray]], config: Audio2ExprConfig, window: int) -> None:
    if not clips:
        raise ValueError("no training clips given")
    f, k = config.n_mels, config.K
    for i, (mel, expr) in enumerate(clips):
        if mel.ndim != 2 or mel.shape[1] != f or expr.ndim != 2 or expr.shape[1] != k:
            raise ValueError(f"clip {i}: expected mel (M, {f}) and expr (N, {k}), "
                             f"got {mel.shape}, {expr.shape}")
        if len(expr) < window:
            raise ValueError(f"clip {i} has {len(expr)} frames, fewer than the training window {window}; "
                             "lower the window or drop the clip")


def train_audio2expr(model: Audio2Expression, clips: list[tuple[np.ndarray, np.ndarray]],
                     cfg: Audio2ExprTrainConfig, basis: MouthBasis | None = None,
                     device: torch.device | str = "cpu", steps: int | None = None,
                     neutral: np.ndarray | None = None,
                     on_step: Callable[[int, dict[str, float]], None] | None = None
                     ) -> dict[str, list[float]]:
    """Pre-train on many identities' (mel (M, 80), expr (N, K)) clips; returns the loss history.

    ``neutral`` (K,) is the closed-mouth target of silence (default: ``neutral_from_quiet_frames``)
    and is stored in the model. Deterministic on CPU for a given ``cfg.seed`` and initial model.
    ``on_step(step, terms)`` is called after every step (e.g. to log to DVCLive).
    """
    _check_clips(clips, model.config, cfg.window)
    steps = cfg.steps if steps is None else steps
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    neutral = neutral_from_quiet_frames(clips) if neutral is None else np.asarray(neutral, np.float32)
    model.to(device)
    model.set_neutral(neutral)
    basis = basis.to(device) if basis is not None else None
    bank = _noise_mels(cfg.silence_floors_db, 2.0, rng)
    sizes = np.array([len(e) - cfg.window + 1 for _, e in clips], np.float64)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    def lr_factor(i: int) -> float:  # linear warm-up, cosine decay to 0 at ``steps``
        warm = min(1.0, (i + 1) / max(1, cfg.warmup))
        return warm * 0.5 * (1 + math.cos(math.pi * min(i, steps) / max(1, steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    history: dict[str, list[float]] = {"loss": [], "coef": [], "vel": [], "lr": []}
    model.train()
    for step in range(steps):
        picks = rng.choice(len(clips), size=cfg.batch, p=sizes / sizes.sum())
        crops = [_sample_crop(*clips[i], cfg.window, model.config.mel_window, cfg, neutral, bank, rng)
                 for i in picks]
        windows = torch.from_numpy(np.stack([c[0] for c in crops])).to(device)  # (B, T, W, F)
        target = torch.from_numpy(np.stack([c[1] for c in crops])).float().to(device)  # (B, T, K)
        start = torch.as_tensor(rng.integers(0, model.config.period, cfg.batch), device=device)
        loss, terms = expression_loss(model(windows, start), target, basis,
                                      cfg.w_coef, cfg.w_vel, cfg.w_vertex)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        terms = {"loss": float(loss.detach()), **terms, "lr": sched.get_last_lr()[0]}
        for key, value in terms.items():
            history.setdefault(key, []).append(value)
        if on_step is not None:
            on_step(step, terms)
    model.eval()
    return history
