"""Adaptation to a new actor (§3.3) and the scratch baseline (§4.4), one study cell at a time.

``adapt`` gives the held-out actor a fresh random neural texture and trains it, together with
the renderer, on the FIRST ``n_frames`` training frames of that actor, with generic prior windows
mixed in (``deadlib.train.mixing``). The renderer (and discriminator) start from the prior checkpoint,
or from scratch when ``prior_ckpt`` is None — the baseline of Table 4 / Fig. 7. Every cell gets the
same compute budget, ``adapt.steps`` optimiser steps whatever N and method, so the size curves do
not confound data with compute; optimisers start fresh and the step counter starts at 0.
In-training validation runs on the actor's validation span (references from its N train frames);
with ``adapt.select_metric`` each cell ends on the weights of its best validation step and stops
after ``adapt.patience`` evaluations without improvement (``deadlib.train.selection``), so a
fine-tune that peaks early is not scored on overfitted weights and a baseline still climbing uses
the whole budget. The test part is read only by ``deadlib.eval.evaluate``. A study cell (adapt + evaluate + metrics
file) is ``deadlib.eval.cell``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch.utils.data import Dataset, Subset

from deadlib.core.config import require_keys, seed_everything, stage_config
from deadlib.data.dataset import load_splits
from deadlib.train.distributed import DistContext, current_context
from deadlib.train.loop import TrainConfig, load_checkpoint, train
from deadlib.train.mixing import MixedDataset
from deadlib.train.prior import val_indices

ADAPT_ONLY = ("adv_start_fraction",)


class AdaptError(ValueError):
    """Adaptation cannot run with these inputs; the message says why and what to do."""


def adapt_config(profile: str | None, params_path: str | os.PathLike | None, params: Mapping | None = None,
                 seed: int | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """(TrainConfig of an adaptation, adapt-only settings) from params.yaml.

    ``adv_start_step`` = adv_start_fraction × steps; ``seed`` (a study cell's) replaces the global one."""
    sec = stage_config("adapt", profile, params=params, params_path=params_path)
    require_keys("adapt", sec, ADAPT_ONLY)
    extra = {k: sec.pop(k) for k in ADAPT_ONLY}
    sec["adv_start_step"] = int(round(extra["adv_start_fraction"] * sec["steps"]))
    if seed is not None:
        sec["seed"] = int(seed)
    renderer = stage_config("renderer", profile, params=params, params_path=params_path)
    return TrainConfig.from_dict(sec, renderer=renderer), extra


def window_dataset(cache_root, names, split, window, n_refs, seed, n_train_frames=None, ref_split=None) -> Dataset:
    """``deadlib.data.dataset.WindowDataset`` (the default ``make_dataset``)."""
    from deadlib.data.dataset import WindowDataset

    return WindowDataset(cache_root, names, split=split, n_train_frames=n_train_frames, window=window,
                         n_refs=n_refs, seed=seed, ref_split=ref_split)


def _prior_state(prior_ckpt: str | os.PathLike, cfg: TrainConfig, identity: str, device: torch.device):
    """The prior's renderer, D and textures with fresh optimisers, step 0, plus a new texture."""
    state = load_checkpoint(prior_ckpt, device, cfg, restore_rng=False, load_optimizers=False)
    if identity in state.bank:
        raise AdaptError(f"{identity!r} already has a texture in the prior {prior_ckpt}: it was a prior "
                         "identity, so adapting to it would test on training data; pick a held-out one")
    state.step, state.checkpoint_config = 0, None
    seed_everything(cfg.seed)                                       # the new texture's init
    state.add_identity(identity)
    return state


def adapt(prior_ckpt: str | os.PathLike | None, identity: str, n_frames: int, cfg: TrainConfig | Mapping,
          cache_root: str | os.PathLike, splits: Mapping | str | os.PathLike, out_dir: str | os.PathLike,
          mixed_ratio: float = 1.0, progress: bool = True, make_dataset: Callable[..., Dataset] | None = None,
          ctx: DistContext | None = None, on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train one cell: ``identity`` on its first ``n_frames`` train frames for at most ``cfg.steps``
    steps (validated on its validation span; ``info['selected_step']`` is the step whose weights it
    ends on, ``info['steps']`` the steps trained).

    ``prior_ckpt`` None = from scratch (baseline). ``splits``: the prior identities mixed in at
    ``mixed_ratio`` generic:actor windows (0 = none). Checkpoint and DVCLive logs go to
    ``out_dir`` (a rerun resumes / returns at once). ``on_step``: train()'s per-step hook. Returns
    train()'s result plus ``info`` (numbers for the metrics file) and the datasets.
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    ctx = ctx or current_context(cfg.device)
    r = cfg.renderer
    if n_frames < r.window:
        raise AdaptError(f"n_frames={n_frames} is shorter than one training window (T={r.window}); use N >= T")
    prior_names = load_splits(splits)["prior"]
    if identity in prior_names:
        raise AdaptError(f"{identity!r} is a prior identity; adapt to a held-out one")
    make = make_dataset or window_dataset
    person = make(cache_root, [identity], "train", r.window, r.n_refs, cfg.seed, n_train_frames=n_frames)
    generic = make(cache_root, prior_names, "train", r.window, r.n_refs, cfg.seed) if mixed_ratio > 0 else None
    data = MixedDataset(person, generic, mixed_ratio, cfg.seed)
    if len(data) < cfg.batch_size:
        raise AdaptError(f"{len(data)} training windows for {identity} at N={n_frames} (mixed_ratio "
                         f"{mixed_ratio}) are fewer than batch_size={cfg.batch_size}; use a larger N or batch")
    # validation span of the actor, references from the N frames it trains on: never the test part
    val_part = make(cache_root, [identity], "val", r.window, r.n_refs, cfg.seed, n_train_frames=n_frames,
                    ref_split="train")
    val = Subset(val_part, val_indices(len(val_part), cfg.n_val_windows))
    out_dir = Path(out_dir)
    initial = None
    if prior_ckpt is not None and not (out_dir / "checkpoint.pt").is_file():
        initial = _prior_state(prior_ckpt, cfg, identity, ctx.device)
    start = time.perf_counter()
    result = train(cfg, data, val, out_dir, resume=True, progress=progress, identities=data.names,
                   initial_state=initial, ctx=ctx, on_step=on_step)
    seconds = time.perf_counter() - start
    done = result["last_step"] - result["start_step"]
    chosen = result["selection"] or {}
    info = {"n_frames": int(n_frames), "steps": int(result["last_step"]), "selected_step": int(result["step"]),
            "stopped_early": int(bool(chosen.get("stopped_early"))), "init_prior": int(prior_ckpt is not None),
            "mixed_ratio": float(mixed_ratio), "person_fraction": data.person_fraction,
            "n_train_windows": data.n_person, "n_generic_windows_per_epoch": data.n_generic,
            "train_seconds": seconds if done else None, "seconds_per_step": seconds / done if done else None,
            "vgg_loss_enabled": int(result["vgg_loss"] == "enabled"),
            **{f"val_{k}": v for k, v in result["metrics"].items()}}
    return {**result, "info": info, "train_set": data, "val_set": val}


def cell_settings(method: str, profile: str | None = None, params_path: str | os.PathLike | None = None,
                  mixed_ratio: float | None = None, seed: int | None = None) -> tuple[TrainConfig, float]:
    """(TrainConfig, mixed ratio) of a study cell; ``mixed_ratio`` None = params' ``mixing`` by method;
    ``seed`` the cell's (texture init, references, batches)."""
    cfg, _ = adapt_config(profile, params_path, seed=seed)
    if mixed_ratio is None:
        mixed_ratio = stage_config("mixing", profile, params_path=params_path)[method]
    return cfg, float(mixed_ratio)
