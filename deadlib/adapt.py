"""Adaptation to a new actor (§3.3) and the scratch baseline (§4.4), one study cell at a time.

``adapt`` gives the held-out actor a fresh random neural texture and trains it, together with
the renderer, on the FIRST ``n_frames`` training frames of that actor, with generic prior windows
mixed in (``deadlib.mixing``). The renderer (and discriminator) start from the prior checkpoint,
or from scratch when ``prior_ckpt`` is None — the baseline of Table 4 / Fig. 7. Both get the same
step budget per N (``study_config.step_budget``); optimisers start fresh and the step counter
starts at 0. ``run_cell`` = adapt + reconstruction evaluation + flat metrics file.

Command line (what the study's notebook does, without the figures)::

    python -m deadlib.adapt --profile smoke --method prior --identity synth_h00 --n-frames 25 \
        --cache-root data/prepared --prior-dir models/prior --out models/adapt/prior_synth_h00_n25 \
        --metrics metrics/adapt/prior_synth_h00_n25.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch.utils.data import Dataset, Subset

from .config import seed_everything, stage_config
from .distributed import DistContext, current_context
from .mixing import MixedDataset
from .prior import load_splits, val_indices
from .study_config import cell_name, section, step_budget
from .train import TrainConfig, load_checkpoint, train

ADAPT_ONLY = ("mixed_ratio", "scratch_mixed_ratio", "steps_by_n", "adv_start_fraction")


class AdaptError(ValueError):
    """Adaptation cannot run with these inputs; the message says why and what to do."""


def adapt_config(profile: str | None, params_path: str | os.PathLike | None, n_frames: int,
                 params: Mapping | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """(TrainConfig for a cell of ``n_frames``, adapt-only settings) from params.yaml.

    ``steps`` = the step budget of N; ``adv_start_step`` = adv_start_fraction × steps."""
    sec = section("adapt", profile, params_path, params)
    extra = {k: sec.pop(k) for k in ADAPT_ONLY if k in sec}
    extra.setdefault("mixed_ratio", 1.0)
    extra.setdefault("scratch_mixed_ratio", 0.0)
    extra.setdefault("adv_start_fraction", 0.5)
    if "steps_by_n" not in extra:
        raise AdaptError("params adapt section needs steps_by_n (the step budget per data size N)")
    steps = step_budget(n_frames, extra["steps_by_n"])
    sec.update(steps=steps, adv_start_step=int(round(extra["adv_start_fraction"] * steps)))
    renderer = stage_config("renderer", profile, params=params, params_path=params_path)
    return TrainConfig.from_dict(sec, renderer=renderer), extra


def window_dataset(cache_root, names, split, window, n_refs, seed, n_train_frames=None) -> Dataset:
    """``deadlib.dataset.WindowDataset`` (the default ``make_dataset``)."""
    from .dataset import WindowDataset

    return WindowDataset(cache_root, names, split=split, n_train_frames=n_train_frames, window=window,
                         n_refs=n_refs, seed=seed)


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
          ctx: DistContext | None = None) -> dict[str, Any]:
    """Train one cell: ``identity`` on its first ``n_frames`` train frames for ``cfg.steps`` steps.

    ``prior_ckpt`` None = from scratch (baseline). ``splits``: the prior identities mixed in at
    ``mixed_ratio`` generic:actor windows (0 = none). Checkpoint and DVCLive logs go to
    ``out_dir`` (a rerun resumes / returns at once). Returns train()'s result plus ``info``
    (numbers for the metrics file) and the datasets.
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
    test = make(cache_root, [identity], "test", r.window, r.n_refs, cfg.seed)
    val = Subset(test, val_indices(len(test), cfg.n_val_windows))
    out_dir = Path(out_dir)
    initial = None
    if prior_ckpt is not None and not (out_dir / "checkpoint.pt").is_file():
        initial = _prior_state(prior_ckpt, cfg, identity, ctx.device)
    start = time.perf_counter()
    result = train(cfg, data, val, out_dir, resume=True, progress=progress, identities=data.names,
                   initial_state=initial, ctx=ctx)
    seconds = time.perf_counter() - start
    done = result["step"] - result["start_step"]
    info = {"n_frames": int(n_frames), "steps": int(result["step"]), "init_prior": int(prior_ckpt is not None),
            "mixed_ratio": float(mixed_ratio), "person_fraction": data.person_fraction,
            "n_train_windows": data.n_person, "n_generic_windows_per_epoch": data.n_generic,
            "train_seconds": seconds if done else None, "seconds_per_step": seconds / done if done else None,
            "vgg_loss_enabled": int(result["vgg_loss"] == "enabled"),
            **{f"val_{k}": v for k, v in result["metrics"].items()}}
    return {**result, "info": info, "train_set": data, "val_set": val, "test_set": test}


def cell_settings(method: str, n_frames: int, profile: str | None = None,
                  params_path: str | os.PathLike | None = None,
                  mixed_ratio: float | None = None) -> tuple[TrainConfig, float]:
    """(TrainConfig, mixed ratio) of a study cell; ``mixed_ratio`` None = params by method."""
    cfg, extra = adapt_config(profile, params_path, n_frames)
    if mixed_ratio is None:
        mixed_ratio = extra["mixed_ratio"] if method == "prior" else extra["scratch_mixed_ratio"]
    return cfg, float(mixed_ratio)


def run_cell(method: str, identity: str, n_frames: int, cache_root: str | os.PathLike,
             prior_dir: str | os.PathLike | None, out_dir: str | os.PathLike, metrics_path: str | os.PathLike,
             profile: str | None = None, params_path: str | os.PathLike | None = None,
             mixed_ratio: float | None = None, variant: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Adapt (``method`` prior | scratch) + evaluate one cell; writes the flat metrics JSON and its
    ``.reasons.json`` sidecar. Evaluation outputs (samples, videos) go to ``out_dir/eval``."""
    from .evaluate import EvalSettings, evaluate_identity, write_metrics

    cfg, ratio = cell_settings(method, n_frames, profile, params_path, mixed_ratio)
    if method == "prior" and prior_dir is None:
        raise AdaptError("method 'prior' needs prior_dir (the prior stage's output folder)")
    prior_ckpt = Path(prior_dir) / "checkpoint.pt" if method == "prior" else None
    if prior_ckpt is not None and not prior_ckpt.is_file():
        raise AdaptError(f"no prior checkpoint at {prior_ckpt}; run the train_prior stage first")
    splits = Path(cache_root) / "splits.json"
    result = adapt(prior_ckpt, identity, n_frames, cfg, cache_root, splits, out_dir, ratio, progress=progress)
    settings = EvalSettings.from_dict(section("evaluate", profile, params_path))
    metrics, reasons, outputs = evaluate_identity(result["state"], cache_root, identity, settings,
                                                  Path(out_dir) / "eval", load_splits(splits)["prior"],
                                                  progress=progress)
    metrics = {**result["info"], **metrics}
    if metrics["train_seconds"] is None:
        reasons.update(dict.fromkeys(("train_seconds", "seconds_per_step"),
                                     "no step trained in this call: the run in out_dir was already complete"))
    cell = {"method": method, "identity": identity, "n_frames": int(n_frames), "variant": variant or "",
            "name": cell_name(method, identity, n_frames, variant), "profile": cfg.profile,
            "blend": settings.blend, "vgg_loss": result["vgg_loss"]}
    write_metrics(metrics_path, metrics, reasons, cell)
    return {**result, "metrics": metrics, "reasons": reasons, "cell": cell, "outputs": outputs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m deadlib.adapt`` — one study cell (adapt + evaluate + metrics)."""
    ap = argparse.ArgumentParser(prog="python -m deadlib.adapt", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--params", default=None)
    ap.add_argument("--method", choices=("prior", "scratch"), required=True)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--n-frames", type=int, required=True)
    ap.add_argument("--mixed-ratio", type=float, default=None, help="default: params by method")
    ap.add_argument("--variant", default=None, help="label of an ablation variant, e.g. nomix")
    ap.add_argument("--cache-root", default="data/prepared")
    ap.add_argument("--prior-dir", default="models/prior")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = run_cell(args.method, args.identity, args.n_frames, args.cache_root, args.prior_dir, args.out,
                   args.metrics, args.profile, args.params, args.mixed_ratio, args.variant)
    print(json.dumps(out["metrics"]), file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
