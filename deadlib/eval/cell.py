"""One cell of the dataset-size study (§4.4): adapt (or train from scratch) on an actor's first N
frames with ``deadlib.train.adapt``, evaluate on its test part, write the flat metrics file.

Command line (what the study's notebook does, without the figures)::

    python -m deadlib.eval.cell --profile smoke --method prior --identity synth_h00 --n-frames 25 --seed 0 \
        --cache-root data/prepared --prior-dir models/prior --sync-expert models/sync_expert/sync_expert.pt \
        --out models/adapt/prior_synth_h00_n25_s0 --metrics metrics/adapt/prior_synth_h00_n25_s0.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from deadlib.core.config import stage_config, write_settings
from deadlib.data.dataset import load_splits
from deadlib.eval.evaluate import EvalSettings, evaluate_identity, write_metrics
from deadlib.train.adapt import AdaptError, adapt, cell_settings
from deadlib.train.study_config import cell_name


def run_cell(method: str, identity: str, n_frames: int, cache_root: str | os.PathLike,
             prior_dir: str | os.PathLike | None, out_dir: str | os.PathLike, metrics_path: str | os.PathLike,
             profile: str | None = None, params_path: str | os.PathLike | None = None,
             mixed_ratio: float | None = None, variant: str | None = None, progress: bool = True,
             seed: int = 0, sync_expert_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Adapt (``method`` prior | scratch, ``seed``) + evaluate one cell; writes the flat metrics JSON
    and its ``.reasons.json`` sidecar. Evaluation outputs (samples, videos) go to ``out_dir/eval``;
    ``sync_expert_path`` None leaves the sync-expert scores null, saying why."""
    cfg, ratio = cell_settings(method, profile, params_path, mixed_ratio, seed)
    if method == "prior" and prior_dir is None:
        raise AdaptError("method 'prior' needs prior_dir (the prior stage's output folder)")
    prior_ckpt = Path(prior_dir) / "checkpoint.pt" if method == "prior" else None
    if prior_ckpt is not None and not prior_ckpt.is_file():
        raise AdaptError(f"no prior checkpoint at {prior_ckpt}; run the train_prior stage first")
    splits = Path(cache_root) / "splits.json"
    result = adapt(prior_ckpt, identity, n_frames, cfg, cache_root, splits, out_dir, ratio, progress=progress)
    settings = EvalSettings.from_dict(stage_config("evaluate", profile, params_path=params_path))
    metrics, reasons, outputs = evaluate_identity(result["state"], cache_root, identity, settings,
                                                  Path(out_dir) / "eval", load_splits(splits)["prior"], n_frames,
                                                  sync_expert_path, progress=progress)
    metrics = {**result["info"], **metrics}
    if metrics["train_seconds"] is None:
        reasons.update(dict.fromkeys(("train_seconds", "seconds_per_step"),
                                     "no step trained in this call: the run in out_dir was already complete"))
    cell = {"method": method, "identity": identity, "n_frames": int(n_frames), "seed": int(seed),
            "variant": variant or "", "name": cell_name(method, identity, n_frames, variant, seed), "profile": cfg.profile,
            "blend": settings.blend, "vgg_loss": result["vgg_loss"]}
    write_metrics(metrics_path, metrics, reasons, cell)
    write_settings(metrics_path, {"train": cfg.to_dict(), "mixed_ratio": ratio, "evaluate": settings})
    return {**result, "metrics": metrics, "reasons": reasons, "cell": cell, "outputs": outputs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m deadlib.eval.cell`` — one study cell (adapt + evaluate + metrics)."""
    ap = argparse.ArgumentParser(prog="python -m deadlib.eval.cell", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--params", default=None)
    ap.add_argument("--method", choices=("prior", "scratch"), required=True)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--n-frames", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0, help="the cell's seed: texture init, references, batches")
    ap.add_argument("--sync-expert", default=None, help="sync_expert.pt of the train_sync_expert stage")
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
                   args.metrics, args.profile, args.params, args.mixed_ratio, args.variant,
                   seed=args.seed, sync_expert_path=args.sync_expert)
    print(json.dumps(out["metrics"]), file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
