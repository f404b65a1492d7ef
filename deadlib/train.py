"""Training loop of the deferred neural renderer (paper §3.2, Eq. 1), reused by every stage.

    L = λ1·L1(weighted) + λVGG·LVGG + λreg·Lreg + λadv·Ladv        (generator + textures)
    LD = LSGAN(D(real), D(fake)) [+ lazy R1]                       (window discriminator)

The prior stage trains one shared renderer and one texture per identity; adaptation (§3.3)
loads that checkpoint, adds a texture for the new actor and calls :func:`train` again.
Everything that decides the result lives in a :class:`TrainState` and its checkpoint
(weights, optimiser moments, step, RNG states), and the batch order is a pure function of
(seed, step), so a killed run resumes exactly where it stopped (exact on CPU with
``num_workers: 0``; with workers, each resumed epoch re-seeds its workers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from deadlib.config import resolve_device, seed_everything
from deadlib.losses import lsgan_d_loss, lsgan_g_loss, r1_penalty, texture_regulariser, vgg_style_loss, weighted_l1
from deadlib.metrics_basic import mean_finite, psnr, ssim
from deadlib.progress import progress_bar
from deadlib.renderer import Renderer, RendererConfig, make_discriminator, make_texture_bank
from deadlib.vgg import WeightsUnavailable, load_vgg19_features

CHECKPOINT_FORMAT = 1
# settings that may change between a checkpoint and its resumption without changing the run
RESUME_FREE = {"steps", "log_every", "eval_every", "ckpt_every", "n_val_windows", "n_samples", "num_workers",
               "vgg_weights", "hub_dir", "device", "profile"}


@dataclass
class LossConfig:
    """Weights of Eq. 1 and GAN schedule. R1 is off by default (``r1_gamma: 0``): LSGAN with a
    minibatch-stddev discriminator trained fine without it; set e.g. ``r1_gamma: 1`` to enable
    lazy R1 (StyleGAN2), applied every ``r1_every`` D steps with weight γ/2·r1_every."""

    lambda_l1: float = 1.0
    lambda_vgg: float = 1.0
    lambda_reg: float = 0.5
    lambda_adv: float = 0.05
    adv_start_step: int = 0      # G adversarial term and D updates start at this step
    r1_gamma: float = 0.0
    r1_every: int = 16
    amp: bool = False            # bf16 autocast; honoured only on CUDA


@dataclass
class TrainConfig:
    """One stage's training settings (flat params section) plus the renderer sizes."""

    renderer: RendererConfig = field(default_factory=RendererConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    steps: int = 1000
    batch_size: int = 4
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    lr_texture: float = 1e-2
    betas: tuple[float, float] = (0.5, 0.999)
    num_workers: int = 0
    log_every: int = 1
    eval_every: int = 500
    ckpt_every: int = 500
    n_val_windows: int = 16
    n_samples: int = 4           # rows of the logged sample grid
    vgg_weights: str | None = None
    hub_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    profile: str = "default"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], renderer: Mapping | RendererConfig | None = None) -> "TrainConfig":
        """From a flat params section; ``renderer`` (or ``d['renderer']``) holds RendererConfig fields.
        Unknown keys raise (a misspelt loss weight must not be silently ignored)."""
        d = dict(d)
        rend = renderer if renderer is not None else d.pop("renderer", None)
        rend = rend if isinstance(rend, RendererConfig) else RendererConfig.from_dict(rend)
        loss_names = {f.name for f in dataclasses.fields(LossConfig)}
        own = {f.name for f in dataclasses.fields(cls)} - {"renderer", "loss"}
        unknown = sorted(set(d) - loss_names - own)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(own | loss_names)}")
        kw = {k: v for k, v in d.items() if k in own and (v is not None or k in ("vgg_weights", "hub_dir"))}
        if "betas" in kw:
            kw["betas"] = tuple(float(b) for b in kw["betas"])
        return cls(renderer=rend, loss=LossConfig(**{k: d[k] for k in loss_names & set(d)}), **kw)

    def to_dict(self) -> dict[str, Any]:
        """Flat dict (loss fields inlined, renderer nested) — round-trips through from_dict."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("renderer", "loss")}
        d["betas"] = list(self.betas)
        return {**d, **dataclasses.asdict(self.loss), "renderer": self.renderer.to_dict()}


class CheckpointMismatch(ValueError):
    """A checkpoint was written for different renderer sizes than the config asks for."""


class TrainState:
    """Renderer, discriminator, texture bank, their optimisers and the step counter.

    ``opt_g`` has one param group for the renderer (lr_g) and one per identity texture
    (lr_texture, named ``texture:<id>``), so adaptation can add an actor with
    :meth:`add_identity` without rebuilding the optimiser.
    """

    def __init__(self, cfg: TrainConfig, identities: list[str], device: torch.device):
        self.cfg, self.device, self.step = cfg, torch.device(device), 0
        self.renderer = Renderer(cfg.renderer, self.device)
        self.disc = make_discriminator(cfg.renderer, self.device)
        self.bank = make_texture_bank(cfg.renderer, [], self.device)
        self.opt_g = torch.optim.Adam([{"params": list(self.renderer.parameters()), "lr": cfg.lr_g,
                                        "name": "renderer"}], betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.vgg: torch.nn.Module | None = None
        self.vgg_status = "not loaded"
        self.checkpoint_config: dict | None = None                      # train_config of a loaded checkpoint
        for identity in identities:
            self.add_identity(identity)

    def add_identity(self, identity: str):
        """Fresh random texture for ``identity`` + its optimiser group (lr_texture)."""
        tex = self.bank.add(identity)
        self.opt_g.add_param_group({"params": list(tex.parameters()), "lr": self.cfg.lr_texture,
                                    "name": f"texture:{identity}"})
        return tex

    def set_learning_rates(self) -> None:
        """Apply cfg's lr_g / lr_texture / lr_d to the optimisers (e.g. after loading)."""
        for group in self.opt_g.param_groups:
            group["lr"] = self.cfg.lr_g if group.get("name") == "renderer" else self.cfg.lr_texture
        for group in self.opt_d.param_groups:
            group["lr"] = self.cfg.lr_d

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write everything needed to resume, atomically (temp file in the same folder + os.replace)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ckpt = {
            "format": CHECKPOINT_FORMAT, "step": self.step, "profile": self.cfg.profile,
            "renderer_config": self.cfg.renderer.to_dict(), "train_config": self.cfg.to_dict(),
            "identities": self.bank.identities,
            "generator": self.renderer.state_dict(), "discriminator": self.disc.state_dict(),
            "textures": {i: self.bank[i].state_dict() for i in self.bank.identities},
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": get_rng_state(), "vgg_loss": self.vgg_status,
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(ckpt, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path


def _describe(cfg: RendererConfig, keys: list[str]) -> str:
    return ", ".join(f"{k}={getattr(cfg, k)}" for k in keys)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str, cfg: TrainConfig | None = None,
                    restore_rng: bool = True, load_optimizers: bool = True) -> TrainState:
    """Rebuild a :class:`TrainState` from ``path``. With ``cfg`` its renderer sizes must match
    the checkpoint's (else :class:`CheckpointMismatch`) and its learning rates are applied."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    stored = RendererConfig.from_dict(ckpt["renderer_config"])
    if cfg is None:
        cfg = TrainConfig.from_dict(ckpt["train_config"])
    elif cfg.renderer != stored:
        diff = [k for k in stored.to_dict() if getattr(stored, k) != getattr(cfg.renderer, k)]
        raise CheckpointMismatch(
            f"checkpoint {path} holds a renderer with {_describe(stored, diff)} (res {stored.resolution}, "
            f"T={stored.window}, C={stored.texture_channels}) but the config asks for "
            f"{_describe(cfg.renderer, diff)}; use the matching profile/renderer params, or a new out_dir")
    state = TrainState(cfg, list(ckpt["identities"]), device)
    try:
        state.renderer.load_state_dict(ckpt["generator"])
        state.disc.load_state_dict(ckpt["discriminator"])
        for identity, sd in ckpt["textures"].items():
            state.bank[identity].load_state_dict(sd)
    except RuntimeError as err:
        raise CheckpointMismatch(f"checkpoint {path} does not fit the current model code: {err}") from err
    if load_optimizers:
        state.opt_g.load_state_dict(ckpt["opt_g"])
        state.opt_d.load_state_dict(ckpt["opt_d"])
        state.set_learning_rates()
    state.step = int(ckpt["step"])
    state.checkpoint_config = ckpt["train_config"]
    state.vgg_status = ckpt.get("vgg_loss", "unknown")
    if restore_rng:
        set_rng_state(ckpt["rng"])
    return state


def get_rng_state() -> dict:
    """python / numpy / torch (+CUDA) RNG states in a weights_only-loadable form."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng():
    """Run a block (evaluation, logging) without disturbing the training RNG streams."""
    saved = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def _to(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True).float() if torch.is_tensor(v) and v.is_floating_point()
            else v for k, v in batch.items()}


def _autocast(state: TrainState, enabled: bool):
    on = enabled and state.device.type == "cuda"
    return torch.autocast("cuda", dtype=torch.bfloat16) if on else contextlib.nullcontext()


def predict(state: TrainState, batch: Mapping, amp: bool = False) -> dict[str, torch.Tensor]:
    """Renderer forward for a batch: pred (B,T,3,H,W), texels (B,T,C,H,W), masked, mask, frames."""
    b = _to(batch, state.device)
    lower = b["lower_mask"]                                           # (B, T, 1, H, W)
    texels = state.bank(list(b["identity"]), b["uv"], lower[:, :, 0])  # (B, T, C, H, W)
    masked = b["frames"] * (1 - lower)                                 # (B, T, 3, H, W)
    mel = b["mel"].transpose(-1, -2)                                   # (B, T, 16, 80) → (B, T, 80, 16)
    with _autocast(state, amp):
        pred = state.renderer(masked, texels, lower, b["refs"], mel)
    return {"pred": pred.float(), "texels": texels, "masked": masked, "mask": lower, "frames": b["frames"],
            "batch": b}


def train_step(state: TrainState, batch: Mapping, loss_cfg: LossConfig) -> dict[str, float]:
    """One generator (+textures) step on Eq. 1 and, once adversarial training is on, one D step."""
    state.renderer.train()
    state.disc.train()
    adv_on = loss_cfg.lambda_adv > 0 and state.step >= loss_cfg.adv_start_step
    state.disc.requires_grad_(False)
    out = predict(state, batch, loss_cfg.amp)
    pred, frames, b = out["pred"], out["frames"], out["batch"]
    terms = {"l1": weighted_l1(pred, frames, b["weight"]),
             "reg": texture_regulariser(out["texels"], frames, out["mask"])}
    loss = loss_cfg.lambda_l1 * terms["l1"] + loss_cfg.lambda_reg * terms["reg"]
    if state.vgg is not None and loss_cfg.lambda_vgg > 0:
        with _autocast(state, loss_cfg.amp):
            terms["vgg"] = vgg_style_loss(state.vgg, pred, frames).float()
        loss = loss + loss_cfg.lambda_vgg * terms["vgg"]
    if adv_on:
        with _autocast(state, loss_cfg.amp):
            terms["adv_g"] = lsgan_g_loss(state.disc(pred).float())
        loss = loss + loss_cfg.lambda_adv * terms["adv_g"]
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite generator loss at step {state.step}: "
                                 f"{ {k: v.item() for k, v in terms.items()} }; lower the learning rates")
    state.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_g.step()
    logs = {"loss_g": loss.item(), **{k: v.item() for k, v in terms.items()}}

    if adv_on:                                                         # --- discriminator ---
        state.disc.requires_grad_(True)
        do_r1 = loss_cfg.r1_gamma > 0 and state.step % loss_cfg.r1_every == 0
        real = frames.detach().requires_grad_(do_r1)
        with _autocast(state, loss_cfg.amp):
            real_s, fake_s = state.disc(real).float(), state.disc(pred.detach()).float()
        loss_d = lsgan_d_loss(real_s, fake_s)
        if do_r1:
            r1 = r1_penalty(real_s, real)
            loss_d = loss_d + 0.5 * loss_cfg.r1_gamma * loss_cfg.r1_every * r1
            logs["r1"] = r1.item()
        state.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        state.opt_d.step()
        logs.update(loss_d=loss_d.item(), d_real=real_s.mean().item(), d_fake=fake_s.mean().item())
    state.step += 1
    return logs


@torch.no_grad()
def evaluate(state: TrainState, loader: Iterator[Mapping], max_batches: int | None = None) -> dict[str, float]:
    """PSNR/SSIM/L1 of rendered windows vs ground truth, and PSNR/SSIM of the copy-the-reference
    baseline (reference frame as the prediction for every frame). Means over all frames."""
    was_training = state.renderer.training
    state.renderer.eval()
    scores: dict[str, list[torch.Tensor]] = {k: [] for k in ("psnr", "ssim", "psnr_copy_ref", "ssim_copy_ref", "l1")}
    with preserved_rng():
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            out = predict(state, batch)
            pred, frames = out["pred"].clamp(-1, 1), out["frames"]            # (B, T, 3, H, W)
            ref = out["batch"]["refs"][:, :1].expand_as(frames)                # (B, T, 3, H, W)
            scores["psnr"].append(psnr(pred, frames).flatten().cpu())
            scores["ssim"].append(ssim(pred, frames).flatten().cpu())
            scores["psnr_copy_ref"].append(psnr(ref, frames).flatten().cpu())
            scores["ssim_copy_ref"].append(ssim(ref, frames).flatten().cpu())
            scores["l1"].append((pred - frames).abs().flatten(2).mean(2).flatten().cpu())
    state.renderer.train(was_training)
    if not scores["psnr"]:
        raise ValueError("evaluate() got an empty validation loader")
    return {k: mean_finite(torch.cat(v)) for k, v in scores.items()}


def sample_grid(out: Mapping[str, torch.Tensor], n: int = 4, frame: int | None = None) -> np.ndarray:
    """uint8 (n·H, 5·W, 3) grid for one frame of each window: input | texels[:3] | mask | output | target."""
    t = out["pred"].shape[1] // 2 if frame is None else frame
    texels = out["texels"][:n, t, :3]
    texels = texels / texels.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)  # RGB-ish, [-1, 1]
    cols = [out["masked"][:n, t], texels, out["mask"][:n, t].expand(-1, 3, -1, -1) * 2 - 1,
            out["pred"][:n, t], out["frames"][:n, t]]                                 # each (n, 3, H, W)
    grid = torch.cat([torch.cat(list(c), 1) for c in cols], 2)                      # (3, n·H, 5·W)
    return ((grid.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


class EpochSampler(Sampler[int]):
    """A seeded permutation of ``range(n)`` for one epoch, starting at ``offset`` (for resuming)."""

    def __init__(self, n: int, seed: int, offset: int = 0):
        self.n, self.seed, self.offset = n, seed, offset

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed)
        return iter(torch.randperm(self.n, generator=g)[self.offset:].tolist())

    def __len__(self) -> int:
        return self.n - self.offset


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def iterate_batches(dataset: Dataset, cfg: TrainConfig, start_step: int = 0) -> Iterator[dict]:
    """Endless batches; batch k of the run depends only on (seed, k), whatever the start step."""
    per_epoch = len(dataset) // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"training set has {len(dataset)} windows, fewer than batch_size={cfg.batch_size}")
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        seed = cfg.seed * 1_000_003 + epoch
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)                                   # e.g. WindowDataset redraws refs
        loader = DataLoader(dataset, batch_size=cfg.batch_size, drop_last=True,
                            sampler=EpochSampler(len(dataset), seed, offset * cfg.batch_size),
                            num_workers=cfg.num_workers, worker_init_fn=_seed_worker,
                            generator=torch.Generator().manual_seed(seed + step))
        for batch in loader:
            yield batch
            step += 1


def setup_vgg(state: TrainState) -> LossConfig:
    """Load VGG-19 for LVGG, or LOUDLY disable it; returns the loss config actually used."""
    loss = state.cfg.loss
    if loss.lambda_vgg <= 0:
        state.vgg, state.vgg_status = None, "disabled (lambda_vgg=0)"
        return loss
    try:
        state.vgg = load_vgg19_features(state.cfg.vgg_weights, state.cfg.hub_dir, state.device)
        state.vgg_status = "enabled"
        return loss
    except WeightsUnavailable as err:
        bar = "!" * 88
        print(f"\n{bar}\n!!! VGG STYLE LOSS DISABLED: no pretrained VGG-19 weights. Training WITHOUT L_VGG "
              f"(lambda_vgg -> 0).\n!!! {err}\n{bar}\n", file=sys.stderr, flush=True)
        warnings.warn(f"VGG style loss disabled (no weights): {err}", RuntimeWarning, stacklevel=2)
        state.vgg, state.vgg_status = None, "disabled (no weights)"
        return dataclasses.replace(loss, lambda_vgg=0.0)


def check_dataset(dataset: Dataset, r: RendererConfig) -> None:
    """Fail early, with both shapes, when the data does not fit the renderer sizes."""
    item = dataset[0]
    want = {"frames": (r.window, 3, r.resolution, r.resolution), "refs": (r.n_refs, 3, r.resolution, r.resolution),
            "mel": (r.window, r.mel_window, r.n_mels)}
    for key, shape in want.items():
        if tuple(item[key].shape) != shape:
            raise ValueError(f"dataset item {key!r} has shape {tuple(item[key].shape)} but the renderer expects "
                             f"{shape} (resolution={r.resolution}, window={r.window}, n_refs={r.n_refs}); "
                             "make the renderer params match the prepared data (prepare.resolution/window)")


def _truncate_live(live_dir: Path, step: int) -> None:
    """Drop metric rows logged after ``step`` (a run killed after its last checkpoint)."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if not lines:
            continue
        col = lines[0].split("\t").index("step") if "step" in lines[0].split("\t") else None
        keep = [l for l in lines[1:] if col is None or int(l.split("\t")[col]) <= step]
        tsv.write_text("\n".join([lines[0], *keep]) + "\n")


def train(cfg: TrainConfig | Mapping, dataset_train: Dataset, dataset_val: Dataset | None,
          out_dir: str | os.PathLike, resume: bool = True, progress: bool = True,
          identities: list[str] | None = None, initial_state: TrainState | None = None) -> dict[str, Any]:
    """Train to ``cfg.steps`` optimiser steps, logging to ``out_dir/dvclive`` and checkpointing to
    ``out_dir/checkpoint.pt``; resumes from that checkpoint when present and ``resume``.

    ``identities`` default to ``dataset_train.names``. ``initial_state`` (e.g. a loaded prior with
    a new actor added, §3.3) is used instead of a fresh state when there is nothing to resume.
    Returns step, checkpoint and live paths, final val metrics, vgg_loss status and this call's
    per-step loss history.
    """
    from dvclive import Live

    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, live_dir = out_dir / "checkpoint.pt", out_dir / "dvclive"
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    resumed = resume and ckpt_path.is_file()
    if resumed:
        state = load_checkpoint(ckpt_path, device, cfg)
        print(f"resuming from {ckpt_path} at step {state.step}", file=sys.stderr)
        changed = sorted(k for k, v in cfg.to_dict().items()
                         if k not in RESUME_FREE and state.checkpoint_config.get(k) != v)
        if changed:
            warnings.warn(f"resuming {ckpt_path} with changed settings {changed}; the run mixes both. "
                          f"Delete {out_dir} (or pass resume=False) to start over.", RuntimeWarning, stacklevel=2)
    elif initial_state is not None:
        state = initial_state
    else:
        names = identities if identities is not None else getattr(dataset_train, "names", None)
        if not names:
            raise ValueError("pass identities=[...] (the training set has no .names)")
        state = TrainState(cfg, list(names), device)
    start_step = state.step
    with preserved_rng():                          # building VGG draws init weights: keep resume exact
        check_dataset(dataset_train, cfg.renderer)
        loss_cfg = setup_vgg(state)

    if resumed and live_dir.is_dir():
        _truncate_live(live_dir, state.step)
    live = Live(dir=str(live_dir), resume=resumed, report=None, save_dvc_exp=False, dvcyaml=None)
    live.log_params({**cfg.to_dict(), "vgg_loss": state.vgg_status, "identities": state.bank.identities})
    val_loader = None
    if dataset_val is not None and len(dataset_val):
        val_loader = DataLoader(dataset_val, batch_size=cfg.batch_size, shuffle=False, num_workers=0)

    def log_eval() -> dict[str, float]:
        metrics = evaluate(state, val_loader)
        for k, v in metrics.items():
            live.log_metric(f"val/{k}", v)
        with torch.no_grad(), preserved_rng():
            live.log_image("val_samples.png", sample_grid(predict(state, next(iter(val_loader))), cfg.n_samples))
        return metrics

    history: list[dict[str, float]] = []
    metrics: dict[str, float] = {}
    bar = progress_bar(total=cfg.steps, desc="train", initial=start_step) if progress else None
    batches = iterate_batches(dataset_train, cfg, state.step)
    try:
        while state.step < cfg.steps:
            logs = train_step(state, next(batches), loss_cfg)
            history.append(logs)
            step, last = state.step, state.step == cfg.steps
            live.step = step
            if step % cfg.log_every == 0 or last:
                for k, v in logs.items():
                    live.log_metric(f"train/{k}", v)
            if val_loader is not None and (step % cfg.eval_every == 0 or last):
                metrics = log_eval()
            if step % cfg.ckpt_every == 0 or last:
                state.save_checkpoint(ckpt_path)
                live.make_summary()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(l1=f"{logs['l1']:.4f}", refresh=False)
    finally:
        batches.close()
        if bar is not None:
            bar.close()
    if val_loader is not None and not metrics:                 # nothing left to train: score, don't re-log
        metrics = evaluate(state, val_loader)
    if not resumed and state.step == start_step:               # e.g. steps: 0 — still leave a checkpoint
        state.save_checkpoint(ckpt_path)
    live.end()
    return {"step": state.step, "start_step": start_step, "checkpoint": ckpt_path, "live_dir": live_dir,
            "metrics": metrics, "vgg_loss": state.vgg_status, "history": history, "state": state}
