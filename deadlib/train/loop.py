"""Training loop of the deferred neural renderer (paper §3.2, Eq. 1), reused by every stage.

    L = λ1·L1(weighted) + λVGG·LVGG + λreg·Lreg + λadv·Ladv        (generator + textures)
    LD = LSGAN(D(real), D(fake)) [+ lazy R1]                       (window discriminator)

The prior stage trains one shared renderer and one texture per identity; adaptation (§3.3)
loads that checkpoint, adds a texture for the new actor and calls :func:`train` again.
Everything that decides the result lives in a :class:`TrainState` and its checkpoint
(``deadlib.train.checkpoint``), and the batch order is a pure function of (seed, step), so a killed
run resumes exactly where it stopped (exact on CPU with ``num_workers: 0``; with workers, each
resumed epoch re-seeds its workers) — with any number of processes.

Under torchrun the same code runs data parallel with the same trajectory as one process (the
design, and its two documented exceptions, is in ``deadlib.train.distributed``); ``batch_size`` is
always the GLOBAL batch of a step, split over processes and ``grad_accum`` micro-batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from deadlib.core.config import seed_everything
from deadlib.core.measures import mean_finite, psnr, ssim
from deadlib.core.progress import progress_bar
from deadlib.model.renderer import RendererConfig
from deadlib.model.vgg import WeightsUnavailable, load_vgg19_features
from deadlib.train.checkpoint import (  # noqa: F401
    CHECKPOINT_FORMAT,
    RESUME_FREE,
    CheckpointMismatch,
    LossConfig,
    TrainConfig,
    TrainState,
    changed_settings,
    get_rng_state,
    load_checkpoint,
    preserved_rng,
    set_rng_state,
)
from deadlib.train.distributed import (
    DistContext,
    all_reduce_sum,
    all_reduce_used_grads,
    barrier,
    broadcast_object,
    current_context,
    make_data_parallel,
    no_sync,
    release_data_parallel,
)
from deadlib.train.losses import (
    lsgan_d_loss,
    lsgan_g_loss,
    r1_penalty,
    texture_regulariser,
    vgg_style_loss,
    weighted_l1,
)
from deadlib.train.selection import Selection

LAMBDAS = {"l1": "lambda_l1", "reg": "lambda_reg", "vgg": "lambda_vgg", "adv_g": "lambda_adv"}


def _to(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True).float() if torch.is_tensor(v) and v.is_floating_point()
            else v for k, v in batch.items()}


def _autocast(state: TrainState, enabled: bool):
    """bf16 / fp16 autocast (``amp_dtype``) on CUDA; a null context elsewhere."""
    on = enabled and state.device.type == "cuda"
    return torch.autocast("cuda", dtype=getattr(torch, state.cfg.loss.amp_dtype)) if on else contextlib.nullcontext()


def split_batch(batch: Mapping, parts: int) -> list[dict]:
    """``parts`` equal consecutive micro-batches of a collated batch (tensors and lists alike)."""
    n = len(batch["frames"])
    if n % parts:
        raise ValueError(f"a batch of {n} cannot be split into grad_accum={parts} equal micro-batches")
    size = n // parts
    return [{k: v[i * size:(i + 1) * size] if torch.is_tensor(v) or isinstance(v, (list, tuple)) else v
             for k, v in batch.items()} for i in range(parts)]


def predict(state: TrainState, batch: Mapping, amp: bool = False,
            renderer: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Renderer forward for a batch: pred (B,T,3,H,W), texels (B,T,C,H,W), masked, mask, frames.
    ``renderer`` defaults to ``state.renderer`` (training passes its DDP wrapper)."""
    b = _to(batch, state.device)
    lower = b["lower_mask"]                                           # (B, T, 1, H, W)
    texels = state.bank(list(b["identity"]), b["uv"], lower[:, :, 0])  # (B, T, C, H, W)
    masked = b["frames"] * (1 - lower)                                 # (B, T, 3, H, W)
    mel = b["mel"].transpose(-1, -2)                                   # (B, T, 16, 80) → (B, T, 80, 16)
    with _autocast(state, amp):
        pred = (renderer or state.renderer)(masked, texels, lower, b["refs"], mel)
    return {"pred": pred.float(), "texels": texels, "masked": masked, "mask": lower, "frames": b["frames"],
            "batch": b}


def _shares(micro: list[dict]) -> dict[str, torch.Tensor]:
    """Each micro-batch's share (n_micro,) of the global normaliser of each loss family: L1 weight
    sum, L_reg masked-element count, and sample count (for per-sample means: VGG, GAN, R1).
    A loss computed on micro-batch i times its share, summed over micro-batches and ranks, is the
    loss of the whole global batch; in one process without accumulation every share is exactly 1."""
    w = torch.stack([m["weight"].expand_as(m["frames"]).sum() for m in micro])          # as weighted_l1
    k = torch.stack([m["lower_mask"].expand_as(m["frames"]).sum() for m in micro])      # as texture_regulariser
    n = torch.stack([m["frames"].new_tensor(float(len(m["frames"]))) for m in micro])
    total = all_reduce_sum(torch.stack([w.sum(), k.sum(), n.sum()]))                    # (3,) over all ranks
    return {"l1": w.clamp_min(1e-8) / total[0].clamp_min(1e-8), "reg": k.clamp_min(1.0) / total[1].clamp_min(1.0),
            "mean": n / total[2]}


def _global(sums: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Sum per-rank loss contributions over ranks (one collective) → python floats."""
    values = all_reduce_sum(torch.stack([v.detach().float().reshape(()) for v in sums.values()]))
    return dict(zip(sums, values.tolist()))


def train_step(state: TrainState, batch: Mapping, loss_cfg: LossConfig) -> dict[str, float]:
    """One generator (+textures) step on Eq. 1 and, once adversarial training is on, one D step.

    ``batch`` is this process's slice of the global batch, split into ``grad_accum`` micro-batches
    whose gradients accumulate (DDP averages the renderer / D over ranks, the textures used on any
    rank are averaged by ``all_reduce_used_grads``). The returned losses are the global batch's.
    """
    state.renderer.train()
    state.disc.train()
    adv_on = loss_cfg.lambda_adv > 0 and state.step >= loss_cfg.adv_start_step
    world = state.ctx.world_size                                       # DDP divides gradients by it
    micro = [_to(m, state.device) for m in split_batch(batch, state.cfg.grad_accum)]
    share = _shares(micro)
    state.disc.requires_grad_(False)
    state.opt_g.zero_grad(set_to_none=True)
    sums: dict[str, torch.Tensor] = {}
    fakes: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i, b in enumerate(micro):
        with no_sync(state.g_train, i < len(micro) - 1):
            out = predict(state, b, loss_cfg.amp, renderer=state.g_train)
            pred, frames = out["pred"], out["frames"]
            terms = {"l1": weighted_l1(pred, frames, b["weight"]) * share["l1"][i],
                     "reg": texture_regulariser(out["texels"], frames, out["mask"]) * share["reg"][i]}
            if state.vgg is not None and loss_cfg.lambda_vgg > 0:
                with _autocast(state, loss_cfg.amp):
                    terms["vgg"] = vgg_style_loss(state.vgg, pred, frames).float() * share["mean"][i]
            if adv_on:                                                 # plain D: no D gradients wanted here
                with _autocast(state, loss_cfg.amp):
                    terms["adv_g"] = lsgan_g_loss(state.disc(pred).float()) * share["mean"][i]
            loss = sum(getattr(loss_cfg, LAMBDAS[k]) * v for k, v in terms.items())
            state.scaler_g.scale(loss * world).backward()
        fakes.append((pred.detach(), frames))
        for k, v in {"loss_g": loss, **terms}.items():
            sums[k] = sums.get(k, 0) + v.detach()
    all_reduce_used_grads([state.bank[i] for i in state.bank.identities], state.device)
    logs = _global(sums)
    if not math.isfinite(logs["loss_g"]):                              # global value: every rank raises
        state.opt_g.zero_grad(set_to_none=True)
        raise FloatingPointError(f"non-finite generator loss at step {state.step}: {logs}; lower the learning rates")
    state.scaler_g.step(state.opt_g)
    state.scaler_g.update()

    if adv_on:                                                         # --- discriminator ---
        state.disc.requires_grad_(True)
        do_r1 = loss_cfg.r1_gamma > 0 and state.step % loss_cfg.r1_every == 0
        state.opt_d.zero_grad(set_to_none=True)
        d_sums: dict[str, torch.Tensor] = {}
        for i, (fake, real) in enumerate(fakes):
            with no_sync(state.d_train, i < len(fakes) - 1):
                real = real.detach().requires_grad_(do_r1)
                with _autocast(state, loss_cfg.amp):                    # two DDP forwards, one backward
                    real_s, fake_s = state.d_train(real).float(), state.d_train(fake).float()
                loss_d = lsgan_d_loss(real_s, fake_s)
                parts = {}
                if do_r1:
                    parts["r1"] = r1_penalty(real_s, real)
                    loss_d = loss_d + 0.5 * loss_cfg.r1_gamma * loss_cfg.r1_every * parts["r1"]
                parts.update(loss_d=loss_d, d_real=real_s.mean(), d_fake=fake_s.mean())
                state.scaler_d.scale(loss_d * share["mean"][i] * world).backward()
            for k, v in parts.items():
                d_sums[k] = d_sums.get(k, 0) + v.detach() * share["mean"][i]
        logs.update(_global(d_sums))
        state.scaler_d.step(state.opt_d)
        state.scaler_d.update()
    state.step += 1
    return logs


@torch.no_grad()
def evaluate(state: TrainState, loader: Iterator[Mapping], max_batches: int | None = None) -> dict[str, float]:
    """PSNR/SSIM/L1 of rendered windows vs ground truth, PSNR inside the lower-face mask (the
    generated region), and the same for the copy-the-reference baseline (reference frame as the
    prediction for every frame). Means over all frames (lower: frames with a non-empty mask)."""
    was_training = state.renderer.training
    state.renderer.eval()
    scores: dict[str, list[torch.Tensor]] = {k: [] for k in ("psnr", "ssim", "psnr_lower", "psnr_copy_ref",
                                                             "ssim_copy_ref", "psnr_lower_copy_ref", "l1")}
    with preserved_rng():
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            out = predict(state, batch)
            pred, frames = out["pred"].clamp(-1, 1), out["frames"]            # (B, T, 3, H, W)
            ref = out["batch"]["refs"][:, :1].expand_as(frames)                # (B, T, 3, H, W)
            scores["psnr"].append(psnr(pred, frames).flatten().cpu())
            scores["ssim"].append(ssim(pred, frames).flatten().cpu())
            lower = out["batch"]["lower_mask"]                                  # (B, T, 1, H, W)
            for key, guess in (("psnr_lower", pred), ("psnr_lower_copy_ref", ref)):
                values = psnr(guess, frames, mask=lower).flatten().cpu()
                scores[key].append(values[~torch.isnan(values)])                # frames without a lower face
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
    """A seeded permutation of ``range(n)`` for one epoch, starting at sample ``offset`` (resume).

    It yields rank ``rank``'s contiguous slice of every global batch of ``batch_size`` consecutive
    permuted indices (``offset`` a multiple of it; the tail after the last full batch is dropped).
    ``order(generator, batch_size)`` replaces the permutation when a dataset composes its own
    batches (``MixedDataset.batch_order``: exact actor:generic ratio per batch).
    """

    def __init__(self, n: int, seed: int, offset: int = 0, batch_size: int = 1, rank: int = 0,
                 world_size: int = 1, order: Callable[[torch.Generator, int], torch.Tensor] | None = None):
        self.n, self.seed, self.offset = n, seed, offset
        self.batch_size, self.rank, self.world_size, self.order = batch_size, rank, world_size, order

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed)
        perm = self.order(gen, self.batch_size) if self.order else torch.randperm(self.n, generator=gen)
        b, local = self.batch_size, self.batch_size // self.world_size
        batches = perm[:self.n // b * b].view(-1, b)[self.offset // b:]            # (n_batches, B) global
        return iter(batches[:, self.rank * local:(self.rank + 1) * local].reshape(-1).tolist())

    def __len__(self) -> int:
        return (self.n // self.batch_size - self.offset // self.batch_size) * (self.batch_size // self.world_size)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def iterate_batches(dataset: Dataset, cfg: TrainConfig, start_step: int = 0, rank: int = 0,
                    world_size: int = 1) -> Iterator[dict]:
    """Endless batches; global batch k of the run depends only on (seed, k), whatever the start
    step. Rank ``rank`` of ``world_size`` gets the rank-th contiguous slice (batch_size/world_size
    windows) of each global batch, so the union over ranks is the single-process batch."""
    if cfg.batch_size % world_size:
        raise ValueError(f"batch_size={cfg.batch_size} (global) is not divisible by {world_size} processes")
    per_epoch = len(dataset) // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"training set has {len(dataset)} windows, fewer than batch_size={cfg.batch_size}")
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        seed = cfg.seed * 1_000_003 + epoch
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)                                   # e.g. WindowDataset redraws refs
        sampler = EpochSampler(len(dataset), seed, offset * cfg.batch_size, cfg.batch_size, rank, world_size,
                               order=getattr(dataset, "batch_order", None))
        loader = DataLoader(dataset, batch_size=cfg.batch_size // world_size, drop_last=True, sampler=sampler,
                            num_workers=cfg.num_workers, worker_init_fn=_seed_worker,
                            generator=torch.Generator().manual_seed(seed + step))
        for batch in loader:
            yield batch
            step += 1


class TrainingDiverged(FloatingPointError):
    """Training blew up (e.g. at the GAN onset): the run stops instead of writing a broken model."""


class DivergenceGuard:
    """Fails a run whose train L1 leaves its own best level by ``factor``.

    A collapse is a climb, not a spike (issue 13: the prior's L1 went 0.046 → 0.68 in 30 steps,
    then sat at ≈ 1.0 with a saturated output): a trailing mean would follow it up and never
    fire, so the reference is the BEST smoothed L1 reached in this run (after ``warmup`` steps);
    the smoothed value (EMA over ~``1/(1-decay)`` steps) ignores one unlucky batch.
    """

    def __init__(self, factor: float, decay: float = 0.8, warmup: int = 10):
        self.factor, self.decay, self.warmup = factor, decay, warmup
        self.ema: float | None = None
        self.best, self.seen = math.inf, 0

    def update(self, step: int, l1: float) -> None:
        """Feed step ``step``'s L1; raises TrainingDiverged when it has left ``factor`` x its best."""
        if self.factor <= 0:
            return
        self.ema = l1 if self.ema is None else self.decay * self.ema + (1 - self.decay) * l1
        self.seen += 1
        if self.seen < self.warmup:
            return
        self.best = min(self.best, self.ema)
        if self.ema > self.factor * self.best:
            raise TrainingDiverged(
                f"training diverged at step {step}: smoothed train L1 {self.ema:.4f} is {self.ema / self.best:.1f}x "
                f"its best {self.best:.4f} in this run (divergence_factor {self.factor}); no checkpoint was written "
                f"for this step. Look at the dvclive curves (GAN onset = adv_start_step?), lower the learning "
                f"rates or lambda_adv, and delete the run folder to start over rather than resume")


def setup_vgg(state: TrainState, loud: bool = True) -> LossConfig:
    """Load VGG-19 for LVGG, or LOUDLY disable it (``loud``: rank 0); returns the loss config used."""
    loss = state.cfg.loss
    if loss.lambda_vgg <= 0:
        state.vgg, state.vgg_status = None, "disabled (lambda_vgg=0)"
        return loss
    try:
        state.vgg = load_vgg19_features(state.cfg.vgg_weights, state.cfg.hub_dir, state.device)
        state.vgg_status = "enabled"
        return loss
    except WeightsUnavailable as err:
        if loud:
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


def stale_checkpoint_reason(cfg: TrainConfig, ckpt_path: Path) -> str:
    """Why the checkpoint at ``ckpt_path`` belongs to another run than ``cfg`` ('' when it matches)."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    stored = ckpt["train_config"]
    if RendererConfig.from_dict(ckpt["renderer_config"]) != cfg.renderer:
        return "it holds a renderer of other sizes"
    changed = changed_settings(cfg, stored)
    return f"it was written with other settings {changed}" if changed else ""


def _start_state(cfg: TrainConfig, ctx: DistContext, ckpt_path: Path, resume: bool, names: list[str] | None,
                 initial_state: TrainState | None) -> tuple[TrainState, bool]:
    """Resume from ``ckpt_path`` (rank 0 decides; every rank loads it), else initial/fresh state.

    ``resume="matching"`` resumes only a checkpoint written with the same settings (steps and the
    other RESUME_FREE keys may differ) and otherwise starts over, saying so — what a DVC stage with
    a persistent output needs: a killed run continues, a run with new params does not silently
    inherit the old one's finished weights.
    """
    if resume == "matching" and ctx.is_main and ckpt_path.is_file():
        stale = stale_checkpoint_reason(cfg, ckpt_path)
        if stale:
            print(f"not resuming {ckpt_path}: {stale}; starting over", file=sys.stderr)
            ckpt_path.unlink()
            shutil.rmtree(ckpt_path.parent / "dvclive", ignore_errors=True)
    resumed = broadcast_object(bool(resume) and ckpt_path.is_file())
    if resumed:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"rank {ctx.rank} cannot see {ckpt_path}, which rank 0 resumes from: "
                                    "out_dir must be on a filesystem shared by all nodes")
        state = load_checkpoint(ckpt_path, ctx.device, cfg)
        if ctx.is_main:
            print(f"resuming from {ckpt_path} at step {state.step}", file=sys.stderr)
            changed = changed_settings(cfg, state.checkpoint_config)
            if changed:
                warnings.warn(f"resuming {ckpt_path} with changed settings {changed}; the run mixes both. Delete "
                              f"{ckpt_path.parent} (or pass resume=False) to start over.", RuntimeWarning, stacklevel=3)
        return state, True
    if initial_state is not None:
        return initial_state, False
    if not names:
        raise ValueError("pass identities=[...] (the training set has no .names)")
    return TrainState(cfg, list(names), ctx.device), False


def _start_selection(cfg: TrainConfig, state: TrainState, ctx: DistContext, dataset_val: Dataset | None,
                     ckpt_path: Path) -> Selection | None:
    """The run's :class:`Selection` (None without ``select_metric``), resumed from the checkpoint."""
    if cfg.select_metric is None:
        return None
    if ctx.world_size > 1:
        raise ValueError("select_metric needs one process (validation runs on rank 0 only); set it to null "
                         "for a multi-process run, or run with nproc 1")
    if dataset_val is None or not len(dataset_val):
        raise ValueError(f"select_metric={cfg.select_metric!r} needs a validation set; this run has none "
                         "(set select_metric: null)")
    if state.selection is None:
        selection = Selection(cfg.select_metric, cfg.patience)
    else:
        selection = Selection.from_dict(state.selection)
        selection.patience = cfg.patience
        if selection.best_step == state.step and ckpt_path.is_file():
            _link_best(ckpt_path)                      # killed between the best checkpoint and its link
    state.selection = selection.to_dict()
    return selection


def _select(selection: Selection, state: TrainState, step: int, metrics: Mapping[str, float]) -> bool:
    """Feed an evaluation to the selection (recorded in the state's checkpoint); True at a new best."""
    best = selection.update(step, metrics)
    state.selection = selection.to_dict()
    return best


def _link_best(ckpt_path: Path) -> None:
    """best.pt = the checkpoint just written (a hard link: no copy; the next atomic save of
    checkpoint.pt replaces its name, not the linked file)."""
    best = ckpt_path.with_name("best.pt")
    best.unlink(missing_ok=True)
    try:
        os.link(ckpt_path, best)
    except OSError:                                    # a filesystem without hard links
        shutil.copy2(ckpt_path, best)


def _restore_best(state: TrainState, selection: Selection, ckpt_path: Path, cfg: TrainConfig,
                  ctx: DistContext, live) -> tuple[TrainState, dict[str, float]]:
    """Training is over: bring back the best step's weights (optimisers and RNG too) and write them
    as the final checkpoint, marked finished, so a rerun returns at once. → (state, its val metrics)"""
    best_path = ckpt_path.with_name("best.pt")
    selection.last_step = state.step
    selection.stopped_early = state.step < cfg.steps
    selection.finished = True
    if selection.best_step is not None and selection.best_step != state.step:
        state = load_checkpoint(best_path, ctx.device, cfg)
    state.selection = selection.to_dict()
    if ctx.is_main:
        state.save_checkpoint(ckpt_path)
        best_path.unlink(missing_ok=True)
        if live is not None:
            live.log_params({"selected_step": selection.best_step, "last_step": selection.last_step,
                             "stopped_early": selection.stopped_early})
            print(f"selected step {selection.best_step} by validation {selection.metric} "
                  f"{selection.best_value}; trained to step {selection.last_step}"
                  f"{' (stopped early)' if selection.stopped_early else ''}", file=sys.stderr)
    return state, dict(selection.best_metrics)


def train(cfg: TrainConfig | Mapping, dataset_train: Dataset, dataset_val: Dataset | None,
          out_dir: str | os.PathLike, resume: bool = True, progress: bool = True,
          identities: list[str] | None = None, initial_state: TrainState | None = None,
          ctx: DistContext | None = None, on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train to ``cfg.steps`` optimiser steps, logging to ``out_dir/dvclive`` and checkpointing to
    ``out_dir/checkpoint.pt``; resumes from that checkpoint when present and ``resume``
    (``"matching"``: only one written with the same settings).

    ``identities`` default to ``dataset_train.names``. ``initial_state`` (e.g. a loaded prior with
    a new actor added, §3.3) is used instead of a fresh state when there is nothing to resume.
    ``ctx`` (default: the initialised torch.distributed group, else one process) says which rank
    this is; every rank calls ``train`` with the same arguments. Returns step, checkpoint and live
    paths, final val metrics (rank 0's, on every rank), vgg_loss status and this call's per-step
    (global) loss history.

    With ``cfg.select_metric`` the run ends on the weights (and checkpoint) of its best validation
    step, ``step`` is that step and ``selection`` says where it stopped (``deadlib.train.selection``).

    ``on_step(step, cfg.steps)`` is called on the main process after every optimiser step (e.g. a
    progress bar in the dubbing studio); it may raise to stop a single-process run, which keeps its
    last checkpoint so that a rerun resumes from it. It changes nothing in the training.
    """
    from dvclive import Live

    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    ctx = ctx or current_context(cfg.device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, live_dir = out_dir / "checkpoint.pt", out_dir / "dvclive"
    seed_everything(cfg.seed)
    names = identities if identities is not None else getattr(dataset_train, "names", None)
    state, resumed = _start_state(cfg, ctx, ckpt_path, resume, names, initial_state)
    if cfg.batch_size % (ctx.world_size * state.cfg.grad_accum):
        raise ValueError(f"batch_size={cfg.batch_size} (global) must be divisible by processes x grad_accum = "
                         f"{ctx.world_size} x {state.cfg.grad_accum}")
    start_step = state.step
    with preserved_rng():                          # building VGG draws init weights: keep resume exact
        check_dataset(dataset_train, cfg.renderer)
        loss_cfg = setup_vgg(state, loud=ctx.is_main)
    selection = _start_selection(cfg, state, ctx, dataset_val, ckpt_path)
    make_data_parallel(state, ctx)

    live, val_loader = None, None
    if ctx.is_main:
        if resumed and live_dir.is_dir():
            _truncate_live(live_dir, state.step)
        live = Live(dir=str(live_dir), resume=resumed, report=None, save_dvc_exp=False, dvcyaml=None)
        live.log_params({**cfg.to_dict(), "vgg_loss": state.vgg_status, "identities": state.bank.identities,
                         "world_size": ctx.world_size})
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
    bar = progress_bar(total=cfg.steps, desc="train", initial=start_step) if progress and ctx.is_main else None
    batches = iterate_batches(dataset_train, cfg, state.step, ctx.rank, ctx.world_size)
    guard = DivergenceGuard(cfg.divergence_factor)
    try:
        while state.step < cfg.steps and not (selection and selection.finished):
            logs = train_step(state, next(batches), loss_cfg)
            history.append(logs)
            guard.update(state.step, logs["l1"])   # global L1: every rank raises together, before any save
            step, last = state.step, state.step == cfg.steps
            if live is not None:                                   # rank 0 only
                live.step = step
                if step % cfg.log_every == 0 or last:
                    for k, v in logs.items():
                        live.log_metric(f"train/{k}", v)
                evaluated = val_loader is not None and (step % cfg.eval_every == 0 or last)
                if evaluated:
                    metrics = log_eval()
                best = evaluated and selection is not None and _select(selection, state, step, metrics)
                if step % cfg.ckpt_every == 0 or last or (evaluated and selection is not None):
                    state.save_checkpoint(ckpt_path)     # a selecting run: at every evaluation, so
                    live.make_summary()                  # best.pt and its record agree on a resume
                if best:
                    _link_best(ckpt_path)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(l1=f"{logs['l1']:.4f}", refresh=False)
            if on_step is not None and ctx.is_main:
                on_step(step, cfg.steps)
            if selection is not None and selection.out_of_patience:
                break
    finally:
        batches.close()
        release_data_parallel(state)
        if bar is not None:
            bar.close()
    if selection is not None and not selection.finished:      # end on the best validation step's weights
        state, metrics = _restore_best(state, selection, ckpt_path, cfg, ctx, live)
    if live is not None:
        if val_loader is not None and not metrics:             # nothing left to train: score, don't re-log
            metrics = evaluate(state, val_loader)
        if not resumed and state.step == start_step:           # e.g. steps: 0 — still leave a checkpoint
            state.save_checkpoint(ckpt_path)
        live.end()
    metrics = broadcast_object(metrics)
    barrier()                                                  # the checkpoint exists when any rank returns
    last_step = selection.last_step if selection is not None else state.step
    return {"step": state.step, "start_step": start_step, "last_step": last_step, "checkpoint": ckpt_path,
            "live_dir": live_dir, "metrics": metrics, "vgg_loss": state.vgg_status, "history": history,
            "state": state, "selection": selection.to_dict() if selection is not None else None}
