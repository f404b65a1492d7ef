"""A lip-sync expert trained by the project (SyncNet-style) and LSE-style sync scores from it.

Published LSE-C / LSE-D come from SyncNet weights the project cannot download, so it trains its
own expert on the prior identities' train parts. Its scores are keyed ``sync_expert_*``: they
are the project's own measure, NOT comparable with published LSE numbers.

Model: a visual encoder over T stacked mouth crops (3T channels; a fixed box of the aligned face
crop, ``mouth_box``, resized to ``crop`` px) and an audio encoder over the matching log-MEL
window (T·16/5 rows centred on the window's middle frame, the ``deadlib.data.audio``
convention), both → L2-normalised embeddings. Trained with InfoNCE (see ``infonce_loss``).

Scores follow SyncNet's evaluation: d(i, k) = ‖v_i − a_{i+k}‖ for offsets k = −K..K; the curve
c(k) = mean_i d(i, k); distance = min_k c, confidence = median_k c − min_k c, offset = argmin.
Offset convention: +k means the audio is k frames LATE (lips of frame i match sound of i + k).

Data: a ``SyncClip`` is one contiguous segment the caller allows (e.g. a video's train part)
with frames, MEL and valid flags sliced to it, so nothing outside it can be read.
CLI (dvc stage ``train_sync_expert``): ``python -m deadlib.sync.expert --profile smoke``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deadlib.core.config import (
    require_keys,
    resolve_device,
    stage_config,
    write_settings,
)
from deadlib.core.files import save_torch, write_json
from deadlib.core.progress import progress_bar
from deadlib.data.audio import MEL_SILENCE, frame_mel_windows
from deadlib.data.dataset import load_cache, load_splits

EXPERT_FORMAT = 1
FRAMES_PER_ALIGN, MEL_PER_ALIGN = 5, 16  # 5 frames at 25 fps = 16 MEL rows at 80 rows/s, exactly
PREFIX = "sync_expert_"


@dataclass
class SyncExpertConfig:
    """Expert sizes, training and checks; defaults = params.yaml ``sync_expert`` (default profile)."""
    window: int = 5                                   # T video frames per sample (0.2 s), odd
    mouth_box: tuple[float, ...] = (0.45, 0.85, 0.3, 0.7)  # top, bottom, left, right (fraction of crop)
    crop: int = 48                                    # mouth crop side after resizing, px
    channels: int = 32                                # first conv width (×2, ×4, ×4, ×8 after)
    embed_dim: int = 128
    temperature: float = 0.1                          # InfoNCE softmax temperature on cosine
    lr: float = 0.001
    steps: int = 2000
    batch: int = 32
    n_shifts: int = 4                                 # shifted-audio negatives per sample
    min_shift: int = 2                                # a negative is ≥ this many frames off ...
    max_shift: int = 15                               # ... and ≤ this; also K of the held-out ranking
    probe_shift: int = 5                              # check: audio delayed this much → this offset
    misaligned_shift: int = 50                        # check: audio this far off (> max_shift) → low conf
    seed: int = 0                                     # the stage passes params.yaml's global seed

    def __post_init__(self):
        self.mouth_box = tuple(float(x) for x in self.mouth_box)
        top, bottom, left, right = self.mouth_box if len(self.mouth_box) == 4 else (0, 0, 0, 0)
        if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
            raise ValueError(f"mouth_box must be [top, bottom, left, right] fractions with top < bottom, "
                             f"left < right in [0, 1], got {self.mouth_box}")
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be odd (its MEL window is centred on the middle frame), got {self.window}")
        if not 1 <= self.min_shift <= self.max_shift < self.misaligned_shift:
            raise ValueError(f"need 1 <= min_shift <= max_shift < misaligned_shift, got "
                             f"{self.min_shift}, {self.max_shift}, {self.misaligned_shift}")
        if self.channels % 4:
            raise ValueError(f"channels must be a multiple of 4 (GroupNorm with 4 groups), got {self.channels}")

    @property
    def mel_rows(self) -> int:
        return round(self.window * MEL_PER_ALIGN / FRAMES_PER_ALIGN)  # 16 for T = 5


def config_from_settings(settings: Mapping) -> SyncExpertConfig:
    """The config from params.yaml's ``sync_expert`` section (``stage_config`` output); seed = global seed."""
    names = [f.name for f in dataclasses.fields(SyncExpertConfig) if f.name != "seed"]
    require_keys("sync_expert", settings, (*names, "seed"))
    unknown = set(settings) - set(names) - {"profile", "seed", "device"}
    if unknown:
        raise ValueError(f"unknown sync_expert settings {sorted(unknown)}; known: {names}")
    return SyncExpertConfig(**{k: settings[k] for k in names}, seed=int(settings["seed"]))


# ----------------------------------------------------------------------------- data


@dataclass
class SyncClip:
    """One contiguous segment of a video the expert may read: frames (N, S, S, 3) uint8 or float in
    [-1, 1] (numpy, memmap or torch), mel (M, n_mels) with row 0 at frame 0, valid (N,) bool."""
    name: str
    frames: Any
    mel: Any
    valid: np.ndarray

    def __post_init__(self):
        shape = tuple(self.frames.shape)
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"{self.name}: frames must be (N, S, S, 3) like load_cache's crops, got {shape}")
        if len(self.mel.shape) != 2:
            raise ValueError(f"{self.name}: mel must be (M, n_mels), got {tuple(self.mel.shape)}")
        self.valid = np.asarray(self.valid, bool)
        if self.valid.shape != (shape[0],):
            raise ValueError(f"{self.name}: valid must be ({shape[0]},) like frames, got {self.valid.shape}")

    @classmethod
    def from_range(cls, name: str, frames: Any, mel: Any, valid: np.ndarray, lo: int, hi: int) -> "SyncClip":
        """Frames [lo, hi) of a whole video (lo rounded up to a multiple of 5 so MEL rows align
        exactly) with its MEL rows; slices only, so memory maps stay unread."""
        lo = -(-lo // FRAMES_PER_ALIGN) * FRAMES_PER_ALIGN
        if not 0 <= lo < hi <= len(frames):
            raise ValueError(f"{name}: frame range [{lo}, {hi}) is empty or outside its {len(frames)} frames")
        return cls(name, frames[lo:hi], mel[mel_rows(lo, hi)], np.asarray(valid[lo:hi], bool))


def mel_rows(lo: int, hi: int) -> slice:
    """The MEL rows of video frames [lo, hi); ``lo`` a multiple of FRAMES_PER_ALIGN (rows align exactly)."""
    return slice(lo * MEL_PER_ALIGN // FRAMES_PER_ALIGN, -(-hi * MEL_PER_ALIGN // FRAMES_PER_ALIGN))


def clips_from_cache(cache_root: str | os.PathLike, names: Sequence[str], part: str = "train") -> list[SyncClip]:
    """One clip per prepared video: its ``part`` ('train' | 'test') range from report.json."""
    clips = []
    for name in names:
        cache = load_cache(Path(cache_root) / name)  # CacheError naming missing files
        splits = cache["report"].get("splits")
        if not splits or part not in splits:
            raise ValueError(f"{cache_root}/{name}/report.json has no '{part}' split; re-run the prepare stage")
        lo, hi = splits[part]
        clips.append(SyncClip.from_range(name, cache["frames"], cache["mel"], cache["track"]["valid"], lo, hi))
    return clips


def window_starts(valid: np.ndarray, window: int) -> np.ndarray:
    """(W,) first frames of the windows of ``window`` consecutive valid frames."""
    run = np.convolve(np.asarray(valid, int), np.ones(window, int), "valid")  # valid frames per window
    return np.flatnonzero(run == window)


def mouth_crops(frames: Any, cfg: SyncExpertConfig) -> torch.Tensor:
    """(n, S, S, 3) uint8 or [-1, 1] float frames → (n, 3, crop, crop) float mouth crops in [-1, 1]."""
    # numpy / memory maps are copied (maps are read-only); nothing below writes in place
    x = frames.detach().cpu() if isinstance(frames, torch.Tensor) else torch.from_numpy(np.array(frames))
    if x.dtype == torch.uint8:
        x = x.float() / 127.5 - 1.0
    elif not x.is_floating_point():
        raise TypeError(f"frames must be uint8 or float in [-1, 1], got {x.dtype}")
    x = x.float().permute(0, 3, 1, 2)  # (n, 3, S, S)
    h, w = x.shape[-2:]
    top, bottom, left, right = cfg.mouth_box
    box = x[..., round(top * h):round(bottom * h), round(left * w):round(right * w)]
    return F.interpolate(box, size=(cfg.crop, cfg.crop), mode="bilinear", align_corners=False, antialias=True)


def audio_windows(mel: Any, first: int, count: int, rows: int) -> torch.Tensor:
    """(count, 1, rows, n_mels) MEL windows centred on frames first .. first+count-1 of the clip
    (any integers; rows outside the clip are silence, as ``frame_mel_windows`` pads)."""
    lead = FRAMES_PER_ALIGN * math.ceil(max(0, -first) / FRAMES_PER_ALIGN)  # frames of silence before row 0
    mel = np.asarray(mel, np.float32)
    padded = np.concatenate([np.full((lead * MEL_PER_ALIGN // FRAMES_PER_ALIGN, mel.shape[1]), MEL_SILENCE,
                                     np.float32), mel])
    windows = frame_mel_windows(padded, lead + first + count, window=rows)  # (lead + first + count, rows, n_mels)
    return torch.from_numpy(windows[lead + first:])[:, None]


def shift_audio(mel: Any, frames: int) -> np.ndarray:
    """The MEL delayed by ``frames`` video frames (round(frames·3.2) rows, exact for multiples of 5),
    circularly so that every window still hears real speech."""
    return np.roll(np.asarray(mel, np.float32), round(frames * MEL_PER_ALIGN / FRAMES_PER_ALIGN), axis=0)


# ----------------------------------------------------------------------------- model


def _block(cin: int, cout: int, stride: int | tuple[int, int]) -> nn.Sequential:
    # GroupNorm, not BatchNorm: the same maths in train and eval, so a briefly trained expert
    # scores exactly as it trained (no running statistics to settle)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(4, cout), nn.ReLU(inplace=True))


class SyncExpert(nn.Module):
    """Mouth-crop encoder + MEL encoder → unit embeddings whose distance says "out of sync"."""

    def __init__(self, config: SyncExpertConfig):
        super().__init__()
        self.config = config
        c, d = config.channels, config.embed_dim
        widths = [c, 2 * c, 4 * c, 4 * c, 8 * c]
        self.visual = nn.Sequential(_block(3 * config.window, c, 1),  # (B, 3T, crop, crop) → /16 after 4 ×2
                                    *[_block(a, b, 2) for a, b in zip(widths, widths[1:])],
                                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], d))
        # (B, 1, rows, n_mels): halve the bands first, then both; pool the bands but keep an early
        # and a late half of the window, so that audio shifted by ±k does not embed alike
        self.audio = nn.Sequential(_block(1, c, 1), _block(c, 2 * c, (1, 2)),
                                   *[_block(a, b, 2) for a, b in zip(widths[1:], widths[2:])],
                                   nn.AdaptiveAvgPool2d((2, 1)), nn.Flatten(), nn.Linear(2 * widths[-1], d))

    def embed_video(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, crop, crop) mouth crops → (B, D) unit vectors."""
        return F.normalize(self.visual(crops.flatten(1, 2)), dim=-1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 1, rows, n_mels) MEL windows → (B, D) unit vectors."""
        return F.normalize(self.audio(mel), dim=-1)


def infonce_loss(v: torch.Tensor, a_pos: torch.Tensor, a_shift: torch.Tensor, blocked: torch.Tensor,
                 temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, top-1 share) of picking the aligned audio among shifted and other windows' audio.

    InfoNCE rather than Wav2Lip's BCE on cosine: the scores rank offsets of one video (argmin,
    median − min), and a softmax over shifted candidates trains exactly that ranking with many
    negatives per step, without calibrating an absolute threshold. v, a_pos (B, D); a_shift
    (B, S, D): the sample's own audio shifted ≥ min_shift; blocked (B, B): True where sample j's
    aligned audio may not serve as a negative of sample b (itself, or < min_shift away in its clip).
    """
    own = torch.cat([(v * a_pos).sum(-1, keepdim=True), torch.einsum("bd,bsd->bs", v, a_shift)], 1)  # (B, 1+S)
    others = (v @ a_pos.T).masked_fill(blocked, float("-inf"))  # (B, B) mostly other identities/times
    logits = torch.cat([own, others], 1) / temperature
    target = torch.zeros(len(v), dtype=torch.long, device=v.device)
    return F.cross_entropy(logits, target), (logits.argmax(1) == 0).float().mean()


# ----------------------------------------------------------------------------- training


class _Sampler:
    """Random windows of the clips (uniform over windows) with shifted-audio negatives."""

    def __init__(self, clips: Sequence[SyncClip], cfg: SyncExpertConfig):
        self.cfg, self.clips = cfg, list(clips)
        starts = [window_starts(c.valid, cfg.window) for c in self.clips]
        self.index = np.array([(k, s) for k, st in enumerate(starts) for s in st], np.int64).reshape(-1, 2)
        if not len(self.index):
            raise ValueError(f"no window of {cfg.window} consecutive valid frames in clips "
                             f"{[c.name for c in self.clips]}; use longer clips or a smaller sync_expert.window")
        # per clip, MEL windows of every centre a shifted window can reach (read once, inside the clip)
        self.margin = cfg.max_shift + cfg.window
        self.banks = [audio_windows(c.mel, -self.margin, len(c.valid) + 2 * self.margin, cfg.mel_rows)
                      for c in self.clips]

    def draw(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cfg, half = self.cfg, self.cfg.window // 2
        picks = self.index[rng.integers(len(self.index), size=cfg.batch)]  # (B, 2) clip, start
        size = rng.integers(cfg.min_shift, cfg.max_shift + 1, size=(cfg.batch, cfg.n_shifts))
        shifts = size * rng.choice([-1, 1], size=size.shape)  # (B, S)
        video = torch.stack([mouth_crops(self.clips[k].frames[s:s + cfg.window], cfg) for k, s in picks])
        centre = picks[:, 1] + half + self.margin  # (B,) bank rows of the aligned audio
        a_pos = torch.stack([self.banks[k][c] for k, c in zip(picks[:, 0], centre)])
        rows = centre[:, None] + shifts  # (B, S) bank rows of the shifted audio
        a_shift = torch.stack([self.banks[k][torch.as_tensor(r)] for k, r in zip(picks[:, 0], rows)])
        same = picks[:, None, 0] == picks[None, :, 0]
        near = np.abs(picks[:, None, 1] - picks[None, :, 1]) < cfg.min_shift
        return {"video": video, "a_pos": a_pos, "a_shift": a_shift,  # (B,T,3,c,c), (B,1,r,F), (B,S,1,r,F)
                "blocked": torch.from_numpy(same & near)}  # (B, B), diagonal included


def train_sync_expert(clips: Sequence[SyncClip], cfg: SyncExpertConfig, device: torch.device | str = "cpu",
                      progress: bool = False) -> tuple[SyncExpert, dict[str, list[float]]]:
    """Train an expert on ``clips`` (only what they hold is read) → (model in eval mode, history)."""
    sampler = _Sampler(clips, cfg)
    with torch.random.fork_rng(devices=[]):  # same weights for a seed, global RNG left as it was
        torch.manual_seed(cfg.seed)
        model = SyncExpert(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    history: dict[str, list[float]] = {"loss": [], "top1": []}
    bar = progress_bar(total=cfg.steps, desc="sync expert") if progress else None
    model.train()
    for step in range(cfg.steps):
        batch = {k: v.to(device) for k, v in sampler.draw(rng).items()}
        b, s = batch["a_shift"].shape[:2]
        v = model.embed_video(batch["video"])
        a = model.embed_audio(torch.cat([batch["a_pos"], batch["a_shift"].flatten(0, 1)]))  # (B + B·S, D)
        loss, top1 = infonce_loss(v, a[:b], a[b:].view(b, s, -1), batch["blocked"], cfg.temperature)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"sync expert loss is {loss.item()} at step {step}; check that the clips' "
                                     "frames and MEL are finite")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        history["top1"].append(top1.item())
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return model.eval(), history


# ----------------------------------------------------------------------------- scoring


@torch.no_grad()
def offset_distances(model: SyncExpert, frames: Any, mel: Any, max_offset: int = 15,
                     valid: np.ndarray | None = None, chunk: int = 256) -> np.ndarray:
    """(W, 2·max_offset+1) distances ‖v_i − a_{i+k}‖, k = −max_offset..max_offset, over the W windows
    of T consecutive (valid) frames; column max_offset is the aligned audio. frames (N, S, S, 3)."""
    cfg, device = model.config, next(model.parameters()).device
    valid = np.ones(len(frames), bool) if valid is None else np.asarray(valid, bool)
    starts = window_starts(valid, cfg.window)
    if not len(starts):
        raise ValueError(f"no window of {cfg.window} consecutive valid frames among {len(frames)}; "
                         "score a longer video")
    crops = torch.cat([mouth_crops(frames[i:i + chunk], cfg) for i in range(0, len(frames), chunk)])  # (N,3,c,c)
    windows = torch.arange(cfg.window)
    v = torch.cat([model.embed_video(crops[torch.as_tensor(starts[i:i + chunk])[:, None] + windows].to(device))
                   for i in range(0, len(starts), chunk)])  # (W, D)
    first = int(starts[0]) + cfg.window // 2 - max_offset  # centre of the earliest audio window needed
    bank = audio_windows(mel, first, int(starts[-1] - starts[0]) + 2 * max_offset + 1, cfg.mel_rows)
    a = torch.cat([model.embed_audio(bank[i:i + chunk].to(device)) for i in range(0, len(bank), chunk)])
    rows = torch.as_tensor(starts - starts[0])[:, None] + torch.arange(2 * max_offset + 1)  # (W, 2K+1)
    return (v[:, None] - a[rows.to(device)]).norm(dim=-1).cpu().numpy()


def lse_scores(distances: np.ndarray) -> dict[str, float]:
    """SyncNet-style scores of a (W, 2K+1) distance matrix: distance = min of the mean-over-windows
    curve, confidence = its median − min, offset = argmin − K (frames; + = audio late)."""
    distances = np.asarray(distances, np.float64)
    if distances.ndim != 2 or distances.shape[1] % 2 == 0 or not len(distances):
        raise ValueError(f"distances must be (windows, 2K+1), got {distances.shape}")
    curve = distances.mean(0)  # (2K+1,)
    best = int(np.argmin(curve))
    return {f"{PREFIX}lse_c": float(np.median(curve) - curve[best]), f"{PREFIX}lse_d": float(curve[best]),
            f"{PREFIX}offset": best - distances.shape[1] // 2}


def sync_scores(model: SyncExpert, frames: Any, mel: Any, max_offset: int = 15,
                valid: np.ndarray | None = None) -> dict[str, float]:
    """``lse_scores`` of a video (generated or ground truth): frames (N, S, S, 3) + its MEL."""
    return lse_scores(offset_distances(model, frames, mel, max_offset, valid))


def heldout_accuracy(model: SyncExpert, clips: Sequence[SyncClip]) -> dict[str, float]:
    """How well the aligned audio beats shifted audio on unseen windows (K = max_shift).

    Counts windows whose every shifted audio window lies inside the clip. rank_accuracy: the
    aligned audio is closer than every shift with |k| ≥ min_shift (chance = rank_chance);
    pair_accuracy: share of such (window, shift) pairs it beats (chance 0.5).
    """
    cfg = model.config
    k = cfg.max_shift
    offsets = np.arange(-k, k + 1)
    negative = np.abs(offsets) >= cfg.min_shift
    wins, pairs = [], []
    for clip in clips:
        starts = window_starts(clip.valid, cfg.window)
        if not len(starts):
            continue
        d = offset_distances(model, clip.frames, clip.mel, k, clip.valid)  # (W, 2K+1)
        inside = (starts >= k) & (starts + cfg.window - 1 + k < len(clip.valid))
        beats = d[inside][:, [k]] < d[inside][:, negative]  # (W', n_negative)
        wins.append(beats.all(1))
        pairs.append(beats.ravel())
    if not sum(len(w) for w in wins):
        raise ValueError(f"held-out clips {[c.name for c in clips]} have no window {k} frames from both ends; "
                         f"use clips longer than {2 * k + cfg.window} frames or a smaller sync_expert.max_shift")
    return {"rank_accuracy": float(np.concatenate(wins).mean()), "pair_accuracy": float(np.concatenate(pairs).mean()),
            "rank_chance": 1.0 / (1 + int(negative.sum())), "windows": int(sum(len(w) for w in wins))}


def ground_truth_checks(model: SyncExpert, clips: Sequence[SyncClip]) -> dict[str, float]:
    """Mean scores of ground truth (the reference for generated videos, run ``gt``), and of ground
    truth with its audio delayed by probe_shift (``probe``: the offset should be probe_shift) and by
    misaligned_shift (``misaligned``, > K: no offset fits, so confidence drops and distance rises).
    LSE-C-style confidence is offset-invariant within ±K, hence the far shift for the drop check."""
    cfg = model.config
    runs = {"gt": 0, "probe": cfg.probe_shift, "misaligned": cfg.misaligned_shift}  # audio delay, frames
    scores = {run: [sync_scores(model, c.frames, shift_audio(c.mel, delay), cfg.max_shift, c.valid) for c in clips]
              for run, delay in runs.items()}
    out = {}
    for run, delay in runs.items():
        out[f"{run}_lse_c"] = float(np.mean([s[PREFIX + "lse_c"] for s in scores[run]]))
        out[f"{run}_lse_d"] = float(np.mean([s[PREFIX + "lse_d"] for s in scores[run]]))
        if delay <= cfg.max_shift:  # the misaligned audio has no right offset within ±K
            out[f"{run}_offset_error_abs"] = float(np.mean([abs(s[PREFIX + "offset"] - delay) for s in scores[run]]))
    return out


# ----------------------------------------------------------------------------- files + stage


def save_expert(path: str | os.PathLike, model: SyncExpert, meta: Mapping | None = None) -> Path:
    """Atomic checkpoint: format, config, weights, ``meta``."""
    config = {**dataclasses.asdict(model.config), "mouth_box": list(model.config.mouth_box)}
    return save_torch(path, {"format": EXPERT_FORMAT, "kind": "sync_expert", "config": config,
                             "state_dict": model.state_dict(), "meta": dict(meta or {})})


def load_expert(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[SyncExpert, dict]:
    """(expert in eval mode, meta) from ``save_expert``'s file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no sync expert at {path}; run the train_sync_expert stage "
                                "(python -m deadlib.sync.expert)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("kind") != "sync_expert" or ckpt.get("format") != EXPERT_FORMAT:
        raise ValueError(f"{path} is not a format-{EXPERT_FORMAT} sync expert (kind={ckpt.get('kind')!r}, "
                         f"format={ckpt.get('format')!r}); retrain it with the train_sync_expert stage")
    model = SyncExpert(SyncExpertConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt["meta"]


def run_stage(settings: Mapping, cache_root: str | os.PathLike, out_dir: str | os.PathLike,
              metrics_path: str | os.PathLike | None, progress: bool = True) -> dict:
    """Train on the prior identities' train parts, check on the held-out identities' train parts."""
    cfg = config_from_settings(settings)
    splits = load_splits(cache_root)
    if not splits["heldout"]:
        raise ValueError(f"{cache_root}/splits.json names no held-out identity; the expert's held-out "
                         "accuracy needs one (params.yaml data.heldout / data.n_heldout)")
    model, history = train_sync_expert(clips_from_cache(cache_root, splits["prior"]), cfg,
                                       resolve_device(settings["device"]), progress)
    heldout = clips_from_cache(cache_root, splits["heldout"])
    checkpoint = save_expert(Path(out_dir) / "sync_expert.pt", model, {"prior": splits["prior"]})
    tail = max(1, len(history["loss"]) // 10)
    metrics = {"steps": len(history["loss"]), "final_loss": float(np.mean(history["loss"][-tail:])),
               "final_top1": float(np.mean(history["top1"][-tail:])),
               **{f"heldout_{k}": v for k, v in heldout_accuracy(model, heldout).items()},
               **ground_truth_checks(model, heldout)}
    metrics = {PREFIX + k: v for k, v in metrics.items()}
    if metrics_path:
        write_json(metrics_path, metrics)
        write_settings(metrics_path, settings)
    return {"metrics": metrics, "model": model, "history": history, "checkpoint": checkpoint}


def main(argv: list[str] | None = None) -> dict:
    """CLI of the ``train_sync_expert`` stage."""
    ap = argparse.ArgumentParser(prog="python -m deadlib.sync.expert", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="smoke | default | full (default: params.yaml's)")
    ap.add_argument("--params", default=None)
    ap.add_argument("--cache-root", default="data/prepared")
    ap.add_argument("--out", default="models/sync_expert")
    ap.add_argument("--metrics", default="metrics/sync_expert.json")
    args = ap.parse_args(argv)
    settings = stage_config("sync_expert", args.profile, params_path=args.params)
    result = run_stage(settings, args.cache_root, args.out, args.metrics)
    print(json.dumps(result["metrics"], indent=2))
    return result


if __name__ == "__main__":
    main()
