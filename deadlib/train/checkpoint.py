"""What a training run is and where it stands: its config, its :class:`TrainState`, and the
atomic checkpoint that lets a killed run resume exactly (also with another number of processes).

A checkpoint holds the *unwrapped* module state dicts (never DDP wrappers), the optimiser
moments, the global step and the RNG states, so any world size can load it: the batch order is
a pure function of (seed, global step) (``deadlib.train.loop.iterate_batches``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from deadlib.model.renderer import (
    Renderer,
    RendererConfig,
    make_discriminator,
    make_texture_bank,
)
from deadlib.train.distributed import DistContext
from deadlib.train.selection import check_selection_settings

CHECKPOINT_FORMAT = 1
# settings that may change between a checkpoint and its resumption without changing the run
# (grad_accum / nproc only re-split the same global batch; see deadlib.train.loop.train_step)
RESUME_FREE = {"steps", "log_every", "eval_every", "ckpt_every", "n_val_windows", "n_samples", "num_workers",
               "vgg_weights", "hub_dir", "device", "profile", "grad_accum", "nproc", "divergence_factor"}
AMP_DTYPES = ("bfloat16", "float16")


@dataclass
class LossConfig:
    """Weights of Eq. 1 and GAN schedule. R1 is off by default (``r1_gamma: 0``): LSGAN with a
    minibatch-stddev discriminator trained fine without it; set e.g. ``r1_gamma: 1`` to enable
    lazy R1 (StyleGAN2), applied every ``r1_every`` D steps with weight γ/2·r1_every."""

    lambda_l1: float = 1.0
    lambda_vgg: float = 1.0
    lambda_reg: float = 0.5
    lambda_adv: float = 0.05
    adv_start_step: int = 600    # G adversarial term and D updates start at this step
    r1_gamma: float = 0.0
    r1_every: int = 16
    amp: bool = False            # autocast (mixed precision); honoured only on CUDA
    amp_dtype: str = "bfloat16"  # or "float16" (then with a gradient scaler per optimiser)

    def __post_init__(self) -> None:
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")


@dataclass
class TrainConfig:
    """One stage's training settings (flat params section) plus the renderer sizes. Defaults are
    train_prior's default profile (tests/unit/test_config.py checks it); stages pass every value.

    ``batch_size`` is the GLOBAL batch of one optimiser step: it is split over the processes
    (torchrun) and over ``grad_accum`` micro-steps, so it must be divisible by
    world_size x grad_accum, and the run is the same whatever the split. ``nproc`` is read
    only by ``deadlib.train.launch`` (processes per node); ``train`` uses the world it runs in.
    """

    renderer: RendererConfig = field(default_factory=RendererConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    steps: int = 1200
    batch_size: int = 4
    grad_accum: int = 1
    nproc: int | str = 1         # processes per node for deadlib.train.launch; "auto" = one per GPU
    lr_g: float = 1e-3
    lr_d: float = 2e-3
    lr_texture: float = 1e-2
    betas: tuple[float, float] = (0.5, 0.999)
    num_workers: int = 0
    log_every: int = 10
    eval_every: int = 300
    ckpt_every: int = 200
    n_val_windows: int = 32
    n_samples: int = 4           # rows of the logged sample grid
    divergence_factor: float = 10.0  # fail the run when smoothed train L1 exceeds this x its best (0: off)
    # model selection on the validation set (deadlib.train.selection): end on the weights of the best
    # score of this val metric (null: the last step's), and stop after `patience` evaluations without
    # a better one (0: never stop early); needs a validation set and one process
    select_metric: str | None = None
    patience: int = 0
    # how a texture added to a trained renderer starts (adaptation): "random" or "mean" of the
    # prior's textures (deadlib.model.texture.TextureBank.add); the prior's own are always random
    texture_init: str = "random"
    vgg_weights: str | None = None
    hub_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    profile: str = "default"

    def __post_init__(self) -> None:
        if self.grad_accum < 1 or self.batch_size < 1:
            raise ValueError(f"batch_size and grad_accum must be >= 1, got {self.batch_size}, {self.grad_accum}")
        if self.nproc != "auto" and not (isinstance(self.nproc, int) and self.nproc >= 1):
            raise ValueError(f"nproc must be a positive integer or 'auto', got {self.nproc!r}")
        check_selection_settings(self.select_metric, self.patience)

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
        kw = {k: v for k, v in d.items() if k in own and (v is not None or k in ("vgg_weights", "hub_dir", "select_metric"))}
        if "betas" in kw:
            kw["betas"] = tuple(float(b) for b in kw["betas"])
        return cls(renderer=rend, loss=LossConfig(**{k: d[k] for k in loss_names & set(d)}), **kw)

    def to_dict(self) -> dict[str, Any]:
        """Flat dict (loss fields inlined, renderer nested) — round-trips through from_dict."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("renderer", "loss")}
        d["betas"] = list(self.betas)
        return {**d, **dataclasses.asdict(self.loss), "renderer": self.renderer.to_dict()}


def changed_settings(cfg: TrainConfig, checkpoint_config: Mapping) -> list[str]:
    """Settings of ``cfg`` that differ from a checkpoint's and change the run (not RESUME_FREE).
    A setting the checkpoint lacks was added later: that run used its default."""
    defaults = TrainConfig().to_dict()
    return sorted(k for k, v in cfg.to_dict().items()
                  if k not in RESUME_FREE and checkpoint_config.get(k, defaults.get(k)) != v)


class CheckpointMismatch(ValueError):
    """A checkpoint was written for different renderer sizes than the config asks for."""


class TrainState:
    """Renderer, discriminator, texture bank, their optimisers and the step counter.

    ``opt_g`` has one param group for the renderer (lr_g) and one per identity texture
    (lr_texture, named ``texture:<id>``), so adaptation can add an actor with
    :meth:`add_identity` without rebuilding the optimiser. ``g_train`` / ``d_train`` are the
    modules the training step calls: the renderer / discriminator themselves, or their DDP
    wrappers once ``deadlib.train.distributed.make_data_parallel`` ran (``ctx`` says which process this is).
    """

    def __init__(self, cfg: TrainConfig, identities: list[str], device: torch.device):
        self.cfg, self.device, self.step = cfg, torch.device(device), 0
        self.renderer = Renderer(cfg.renderer, self.device)
        self.disc = make_discriminator(cfg.renderer, self.device)
        self.bank = make_texture_bank(cfg.renderer, [], self.device)
        self.opt_g = torch.optim.Adam(self._renderer_groups(), betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        fp16 = cfg.loss.amp and cfg.loss.amp_dtype == "float16" and self.device.type == "cuda"
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)   # no-ops unless fp16 on CUDA
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.ctx = DistContext(device=self.device)
        self.g_train: torch.nn.Module = self.renderer
        self.d_train: torch.nn.Module = self.disc
        self.vgg: torch.nn.Module | None = None
        self.vgg_status = "not loaded"
        self.checkpoint_config: dict | None = None                      # train_config of a loaded checkpoint
        self.selection: dict | None = None                              # Selection.to_dict() of a selecting run
        for identity in identities:              # the prior's own (or a checkpoint's, overwritten on load)
            self.add_identity(identity, "random")

    def _renderer_groups(self) -> list[dict]:
        """opt_g's renderer group: the whole renderer at lr_g. The audio encoder once needed an own,
        lower rate (its plain layers blew up at the GAN onset); its layers are equalised-lr like
        the generator's now, so one rate serves all (tests/unit/test_train.py measures it)."""
        return [{"params": list(self.renderer.parameters()), "lr": self.cfg.lr_g, "name": "renderer"}]

    def add_identity(self, identity: str, init: str | None = None):
        """A new texture for ``identity`` + its optimiser group (lr_texture); ``init`` None =
        ``cfg.texture_init`` (an adapted person), see TextureBank.add."""
        tex = self.bank.add(identity, init or self.cfg.texture_init)
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
        """Write everything needed to resume, atomically (temp file in the same folder + os.replace).
        In a multi-process run only rank 0 calls this (``deadlib.train.loop.train``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ckpt = {
            "format": CHECKPOINT_FORMAT, "step": self.step, "profile": self.cfg.profile,
            "renderer_config": self.cfg.renderer.to_dict(), "train_config": self.cfg.to_dict(),
            "identities": self.bank.identities,
            "generator": self.renderer.state_dict(), "discriminator": self.disc.state_dict(),
            "textures": {i: self.bank[i].state_dict() for i in self.bank.identities},
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "rng": get_rng_state(), "vgg_loss": self.vgg_status, "world_size": self.ctx.world_size,
            "selection": self.selection,
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
        for name in ("scaler_g", "scaler_d"):
            if ckpt.get(name) and getattr(state, name).is_enabled():
                getattr(state, name).load_state_dict(ckpt[name])
    state.step = int(ckpt["step"])
    state.checkpoint_config = ckpt["train_config"]
    state.selection = ckpt.get("selection")
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
    """Inverse of :func:`get_rng_state` (CUDA states only when CUDA is present)."""
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():                     # another GPU count: keep ours
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved_rng():
    """Run a block (evaluation, logging) without disturbing the training RNG streams."""
    saved = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)
