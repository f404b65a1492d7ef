"""Prior stage (§3.2): one shared renderer + one neural texture per prior identity.

Train set = the train parts of the prior identities; validation = ``n_val_windows`` fixed
windows spread evenly over their validation spans (the test parts are never read). Writes the checkpoint and DVCLive
logs under ``out_dir`` and flat metrics (numbers only) to ``metrics_path``.

Command line (the DVC stage; one process, or N under torchrun — see ``deadlib.train.launch``)::

    python -m deadlib.train.prior --profile smoke --cache-root data/prepared --out models/prior --metrics m.json
    torchrun --nproc_per_node 8 -m deadlib.train.prior --profile full ...           # 8 GPUs, one node
    python -m deadlib.train.prior --profile smoke --synthetic-data 3 --out /tmp/p    # no cache needed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from deadlib.core.config import parse_overrides, stage_config, write_settings
from deadlib.core.files import atomic_output, write_json
from deadlib.data.dataset import load_splits
from deadlib.model.renderer import to_uint8
from deadlib.train.distributed import (
    DistContext,
    current_context,
    init_distributed,
    shutdown_distributed,
)
from deadlib.train.loop import TrainConfig, train


def prior_config(profile: str | None = None, params_path: str | os.PathLike | None = None) -> TrainConfig:
    """``train_prior`` + ``renderer`` sections of params.yaml under ``profile``."""
    section = stage_config("train_prior", profile, params_path=params_path)
    renderer = stage_config("renderer", profile, params_path=params_path)
    return TrainConfig.from_dict(section, renderer=renderer)


def val_indices(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when n <= k)."""
    if n <= k:
        return list(range(n))
    return np.linspace(0, n - 1, k).round().astype(int).tolist()


def data_fingerprint(cache_root: str | os.PathLike, names: list[str]) -> str:
    """sha1 over the prior identities' report.json (splits) and track.npz (fits, crops, meshes):
    a prepared cache whose fits or splits changed gives another value."""
    return _files_digest(Path(cache_root), [f"{name}/{leaf}" for name in sorted(names) for leaf in ("report.json", "track.npz")])


def _files_digest(root: Path, relative: list[str]) -> str:
    """sha1 over each file's path (relative to ``root``, in the given order) and bytes."""
    digest = hashlib.sha1()
    for rel in relative:
        digest.update(rel.encode())
        with open(root / rel, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# The package folders the prior stage's code lives in: every file of dvc.yaml's train_prior deps lies
# in one (tests/unit/test_train.py checks it), so hashing these folders sees every edit DVC sees.
PRIOR_CODE = ("core", "data", "model", "train")


def code_fingerprint(folders: tuple[str, ...] = PRIOR_CODE) -> str:
    """sha1 over the Python sources of ``folders`` of the deadlib package (paths and bytes): another
    value whenever code the prior can run changed, as DVC's own dependency check sees it."""
    root = Path(__file__).resolve().parents[1]
    return _files_digest(root, [p.relative_to(root).as_posix() for f in folders for p in sorted((root / f).rglob("*.py"))])


def forget_checkpoint_of_other_data(out_dir: str | os.PathLike, fingerprint: str) -> bool:
    """Delete ``out_dir``'s checkpoint (and logs) unless it was trained with ``fingerprint`` — the
    prepared data's and the code's (``data_fingerprint.txt`` beside it); then record ``fingerprint``.
    True when one was deleted. The persistent DVC output would otherwise resume a finished prior
    of the old data or code, because its settings still match, and DVC would record the new code
    for weights it never ran."""
    out_dir = Path(out_dir)
    record, ckpt = out_dir / "data_fingerprint.txt", out_dir / "checkpoint.pt"
    stale = ckpt.is_file() and (not record.is_file() or record.read_text().strip() != fingerprint)
    if stale:
        print(f"not resuming {ckpt}: it was trained on another prepared cache or by other code; starting over",
              file=sys.stderr)
        ckpt.unlink()
        shutil.rmtree(out_dir / "dvclive", ignore_errors=True)
    with atomic_output(record) as tmp:
        tmp.write_text(fingerprint + "\n")
    return stale


def _window_dataset(cache_root, names, split, window, n_refs, seed, ref_split=None) -> Dataset:
    from deadlib.data.dataset import WindowDataset

    return WindowDataset(cache_root, names, split=split, window=window, n_refs=n_refs, seed=seed, ref_split=ref_split)


def train_prior(cfg: TrainConfig | Mapping, cache_root: str | os.PathLike, splits: Mapping | str | os.PathLike,
                out_dir: str | os.PathLike, metrics_path: str | os.PathLike = "metrics/train_prior.json",
                progress: bool = True, make_dataset: Callable[..., Dataset] | None = None,
                ctx: DistContext | None = None, resume: bool | str = True) -> dict[str, Any]:
    """Train the prior and write its metrics; returns checkpoint / live_dir / metrics paths and values.

    Validation runs on the prior identities' validation spans (references from their train
    parts); the test parts are never read. ``make_dataset(cache_root, names, split, window, n_refs,
    seed, ref_split=None)`` defaults to
    ``deadlib.data.dataset.WindowDataset`` (tests pass an in-memory stand-in). Under torchrun every
    rank calls this; rank 0 writes the metrics. ``resume`` as in :func:`deadlib.train.loop.train`
    (``"matching"``: only a checkpoint written with the same settings).
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    ctx = ctx or current_context(cfg.device)
    names = load_splits(splits)["prior"]
    if make_dataset is None and resume == "matching" and ctx.is_main:
        forget_checkpoint_of_other_data(out_dir, f"data {data_fingerprint(cache_root, names)} code {code_fingerprint()}")
    make = make_dataset or _window_dataset
    r = cfg.renderer
    train_set = make(cache_root, names, "train", r.window, r.n_refs, cfg.seed)
    val_part = make(cache_root, names, "val", r.window, r.n_refs, cfg.seed, ref_split="train")
    val_set = Subset(val_part, val_indices(len(val_part), cfg.n_val_windows))
    result = train(cfg, train_set, val_set, out_dir, resume=resume, progress=progress, identities=names, ctx=ctx)
    m = result["metrics"]
    metrics = {"psnr": m["psnr"], "ssim": m["ssim"], "psnr_lower": m["psnr_lower"], "psnr_copy_ref": m["psnr_copy_ref"],
               "psnr_lower_copy_ref": m["psnr_lower_copy_ref"],
               "ssim_copy_ref": m["ssim_copy_ref"], "l1": m["l1"], "steps": result["step"],
               "vgg_loss_enabled": int(result["vgg_loss"] == "enabled"), "n_identities": len(names),
               "n_train_windows": len(train_set), "n_val_windows": len(val_set)}
    metrics_path = Path(metrics_path)
    if ctx.is_main:
        write_json(metrics_path, metrics)
        write_settings(metrics_path, cfg.to_dict())
    return {"checkpoint": result["checkpoint"], "live_dir": result["live_dir"], "metrics_path": metrics_path,
            "metrics": metrics, "vgg_loss": result["vgg_loss"], "state": result["state"], "val_set": val_set}


# --- command line (DVC stage, torchrun) ---------------------------------------------------------

def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m deadlib.train.prior`` — one process, or every rank of a torchrun launch."""
    ap = argparse.ArgumentParser(prog="python -m deadlib.train.prior", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="smoke | default | full (default: params.yaml's)")
    ap.add_argument("--params", default=None, help="params file (default: params.yaml above the cwd)")
    ap.add_argument("--cache-root", default="data/prepared", help="prepared cache (the prepare stage's output)")
    ap.add_argument("--splits", default=None, help="JSON with prior/heldout (default: <cache-root>/splits.json)")
    ap.add_argument("--out", default="models/prior", help="checkpoint + DVCLive folder")
    ap.add_argument("--metrics", default="metrics/train_prior.json")
    ap.add_argument("--synthetic-data", type=int, default=0, metavar="N",
                    help="train on N in-memory SyntheticWindows identities instead of the cache (tests, DDP checks)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override train_prior settings, e.g. steps=10 grad_accum=2 renderer.base_channels=8")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--resume", choices=("matching", "always", "never"), default="matching",
                    help="matching (default): continue a checkpoint only if it was written with the same settings "
                         "(a killed run), else start over; always: continue any checkpoint of these sizes")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = prior_config(args.profile, args.params)
    if args.set:
        over = parse_overrides(args.set)
        base = cfg.to_dict()
        over["renderer"] = {**base["renderer"], **over.get("renderer", {})}
        cfg = TrainConfig.from_dict({**base, **over})
    ctx = init_distributed(device=cfg.device)
    try:
        make, splits = None, args.splits or Path(args.cache_root) / "splits.json"
        if args.synthetic_data:
            from deadlib.data.synthetic_windows import synthetic_names, synthetic_split

            make, splits = synthetic_split(cfg.renderer.resolution), {"prior": synthetic_names(args.synthetic_data)}
        out = train_prior(cfg, args.cache_root, splits, args.out, args.metrics, progress=not args.no_progress,
                          make_dataset=make, ctx=ctx,
                          resume={"matching": "matching", "always": True, "never": False}[args.resume])
        if ctx.is_main:
            print(json.dumps(out["metrics"]), file=sys.stderr)
        return out
    finally:
        shutdown_distributed()


# --- helpers for the stage notebook -------------------------------------------------------------

def read_live_series(live_dir: str | os.PathLike, prefix: str = "") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """DVCLive metric histories: {"train/l1": (steps, values), ...} (names starting with ``prefix``)."""
    root = Path(live_dir) / "plots" / "metrics"
    series = {}
    for tsv in sorted(root.rglob("*.tsv")):
        name = tsv.relative_to(root).with_suffix("").as_posix()
        if not name.startswith(prefix):
            continue
        rows = [line.split("\t") for line in tsv.read_text().splitlines()]
        head, body = rows[0], [r for r in rows[1:] if r and r[0]]
        col = head.index(tsv.stem)
        steps = np.array([int(r[head.index("step")]) for r in body])
        series[name] = (steps, np.array([float(r[col]) for r in body]))
    return series


def mouth_crops(images: torch.Tensor, mouth_mask: torch.Tensor, margin: float = 0.35) -> torch.Tensor:
    """Square crops (N, 3, s, s) around the union of the mouth masks (N, 1, H, W), with margin."""
    ys, xs = torch.nonzero(mouth_mask.amax(0)[0] > 0.5, as_tuple=True)
    h, w = images.shape[-2:]
    if len(ys) == 0:
        cy, cx, half = h // 2, w // 2, h // 4
    else:
        cy, cx = int(ys.float().mean()), int(xs.float().mean())
        half = int(max(ys.max() - ys.min(), xs.max() - xs.min()) * (0.5 + margin)) + 2
    half = min(half, h // 2, w // 2)
    y0, x0 = min(max(cy - half, 0), h - 2 * half), min(max(cx - half, 0), w - 2 * half)
    return images[..., y0:y0 + 2 * half, x0:x0 + 2 * half]


def architecture_summary(cfg: TrainConfig, device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Rows (module, parameters, GFLOPs per output frame) for the renderer at ``cfg``'s sizes."""
    from deadlib.model.renderer import (
        Renderer,
        count_parameters,
        flops_per_frame,
        make_discriminator,
        make_texture_bank,
    )

    r = cfg.renderer
    renderer = Renderer(r, device)
    rows = [{"module": "audio encoder", "params": count_parameters(renderer.audio)},
            {"module": "generator", "params": count_parameters(renderer.generator)},
            {"module": "renderer total", "params": count_parameters(renderer),
             "gflops_per_frame": flops_per_frame(renderer) / 1e9},
            {"module": "discriminator", "params": count_parameters(make_discriminator(r, device))},
            {"module": "neural texture (per identity)", "params": count_parameters(make_texture_bank(r, ["x"], device))}]
    return rows


@torch.no_grad()
def render_clip(state, dataset: Dataset, start: int = 0, n_windows: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Render windows start, start+T, ... of one identity back to back → (pred, target) uint8
    (N·T, H, W, 3). Assumes consecutive dataset indices are windows shifted by one frame."""
    from deadlib.train.loop import predict

    t = state.cfg.renderer.window
    first = dataset[start]
    items = [dataset[i] for i in range(start, min(len(dataset), start + n_windows * t), t)]
    items = [it for it in items if it["identity"] == first["identity"]]
    out = predict(state, torch.utils.data.default_collate(items))
    return to_uint8(out["pred"].flatten(0, 1)), to_uint8(out["frames"].flatten(0, 1))


if __name__ == "__main__":
    main()
