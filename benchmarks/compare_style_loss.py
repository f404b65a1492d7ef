"""What can stand in for the paper's VGG term offline, and does it sharpen the mouth? (issue 14, item 4)

    .venv/bin/python benchmarks/compare_style_loss.py [--corpus real] [--n-frames 100] [--steps 100]
                                                       [--variants none grad_l1 random_vgg] [--seeds 0]

The paper's loss has a VGG-19 perceptual (Gram / style) term; its ImageNet weights cannot be
downloaded here, so every record so far trained without it (``vgg_loss_enabled: 0``) and the
rendered mouths are softer than the real ones. This script fine-tunes the study's "Ours" cell
(``deadlib.train.adapt.adapt``: the prior, a fresh texture, generic windows mixed 1:1) on each held-out
person's first ``--n-frames`` train frames for a fixed ``--steps`` (no early stopping), once per
variant, with the ``lambda_vgg`` slot of the loss filled by:

* ``none``        nothing (what every record does today: the term is off);
* ``grad_l1``     L1 between the image gradients (per colour channel, finite differences) of output
                  and target at full and half resolution: an edge term needing no weights;
* ``random_vgg``  the Gram-matrix style loss of a RANDOMLY initialised VGG-19 cut after relu2_2 (fixed
                  seed), each layer's error relative to the target Gram's size (random features'
                  Grams are tiny: the plain loss measured 4e-4 of L1): random convolutional features
                  still carry texture statistics (Ustyuzhaninov et al., 2016) — a proxy for the real
                  VGG term, named as one.

Each variant's weight is params ``train_prior.lambda_vgg`` / ``adapt.lambda_vgg`` as they stand (not
tuned; each cell records the term's mean size over its steps relative to the L1 term,
``term_over_l1``, so a term too small to matter shows as such). The variants are injected into this process only (``deadlib.train.loop``'s VGG loader and
style loss are swapped); nothing in the pipeline changes.

Scored on each person's **validation** span only (every window, references from the N train
frames; the test part is never read): PSNR / SSIM inside the lower-face and mouth masks, and the
**sharpness ratio** — per frame, the variance of the Laplacian of the output's luminance inside the
mouth mask over that of the real frame (1 = as sharp as the truth; a blurry mouth is well below 1),
mean over frames. Paired by person and seed against ``none`` with ``deadlib.core.intervals``.

Writes ``benchmarks/results/style_loss_<corpus>.json``; cells (checkpoints, logs) go to ``--work``
and an interrupted run resumes there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import deadlib.train.loop as train_loop
from deadlib.core.config import load_params
from deadlib.core.intervals import mean_ci, paired_summary
from deadlib.eval.evaluate import crop_metrics, render_test
from deadlib.eval.sharpness import sharpness_ratio
from deadlib.model.vgg import VGGFeatures, _vgg19_trunk
from deadlib.tools.machine import describe
from deadlib.train.adapt import adapt, cell_settings
from deadlib.train.losses import gram_matrix, to_imagenet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_texture_init import (  # noqa: E402
    CORPORA,
    REPO,
    variant_cell_name,
    variant_params,
    write_results,
)

VARIANTS = ("none", "grad_l1", "random_vgg")
SCORES = ("psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "mouth_sharpness_ratio")


# ----------------------------------------------------------------------------- the stand-ins


class RandomShallowVGG(VGGFeatures):
    """VGG-19's first two blocks (relu1_2, relu2_2) with random weights from a fixed seed: a PROXY of
    the ImageNet VGG features (same architecture, no learned filters)."""

    def __init__(self, seed: int = 0):
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        trunk = _vgg19_trunk()
        torch.random.set_rng_state(generator_state)   # the cell's own random stream is left as it was
        super().__init__(trunk, {"relu1_2": 3, "relu2_2": 8})


class GradientFeatures(nn.Module):
    """Marker module: its presence in the VGG slot selects ``gradient_l1`` as the loss."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:   # never called: gradient_l1 reads images
        raise RuntimeError("GradientFeatures is a marker for gradient_l1")


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite differences of (N, C, H, W) → dx (N, C, H, W−1), dy (N, C, H−1, W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the image gradients of ``pred`` and ``target`` (…, 3, H, W) at full and half size."""
    pred, target = pred.reshape(-1, *pred.shape[-3:]), target.reshape(-1, *target.shape[-3:]).detach()
    loss = pred.new_zeros(())
    for scale in (1, 2):
        p, t = (pred, target) if scale == 1 else (F.avg_pool2d(pred, scale), F.avg_pool2d(target, scale))
        for gp, gt in zip(image_gradients(p), image_gradients(t)):
            loss = loss + (gp - gt).abs().mean()
    return loss


def _device(args: tuple, kwargs: dict):
    """The device argument of a ``load_vgg19_features(weights_path, hub_dir, device)`` call."""
    return kwargs.get("device") or (args[2] if len(args) > 2 else None) or "cpu"


def relative_gram_loss(net: nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gram (style) loss of ``net``'s feature maps, each layer's error relative to the target Gram's mean
    magnitude: random features' Grams are orders of magnitude smaller than trained VGG's, so the plain
    loss at lambda_vgg would vanish (≈ 4e-4 of L1 measured); this one is scale-free."""
    pred, target = pred.reshape(-1, *pred.shape[-3:]), target.reshape(-1, *target.shape[-3:])
    feats_pred = net(to_imagenet(pred))
    with torch.no_grad():
        feats_target = net(to_imagenet(target))
    loss = pred.new_zeros(())
    for fp, ft in zip(feats_pred, feats_target):
        g_target = gram_matrix(ft)
        loss = loss + (gram_matrix(fp) - g_target).abs().mean() / g_target.abs().mean().clamp_min(1e-12)
    return loss


def install(variant: str) -> None:
    """Point deadlib.train.loop's VGG loader (and, for grad_l1, its style loss) at ``variant``'s stand-in."""
    if variant == "none":      # the loader fails, so setup_vgg turns the term off and the style loss is never called
        def unavailable(*_a, **_k):
            raise train_loop.WeightsUnavailable("compare_style_loss: variant 'none' trains without the term")
        train_loop.load_vgg19_features = unavailable
    elif variant == "random_vgg":
        train_loop.load_vgg19_features = lambda *a, **k: RandomShallowVGG().to(_device(a, k))
        train_loop.vgg_style_loss = relative_gram_loss
    elif variant == "grad_l1":
        train_loop.load_vgg19_features = lambda *a, **k: GradientFeatures()
        train_loop.vgg_style_loss = lambda _net, pred, target: gradient_l1(pred, target)
    else:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")


# ----------------------------------------------------------------------------- scoring


def validation_scores(state, val_set) -> dict:
    """Region PSNR/SSIM and the mouth sharpness ratio over every window of the validation span."""
    rendered = render_test(state, val_set)
    scores, _ = crop_metrics(rendered["pred"], rendered["real"], rendered["lower"], rendered["mouth"])
    return {**{k: scores[k] for k in SCORES if k in scores},
            "mouth_sharpness_ratio": sharpness_ratio(rendered["pred"], rendered["real"], rendered["mouth"]),
            "frames": int(len(rendered["pred"]))}


# ----------------------------------------------------------------------------- the comparison


def run_cell(corpus: str, identity: str, variant: str, params_path: Path, n_frames: int, seed: int, work: Path,
             root: Path = REPO) -> dict:
    """One fine-tune under ``variant`` (reused from ``work`` when its scores file exists) → its validation
    scores; ``root``: the workspace holding the pipeline's prepared data and prior."""
    _, cache_root, prior_dir = CORPORA[corpus]
    name = variant_cell_name(variant, identity, n_frames, seed)
    scores_path = work / f"{name}.json"
    if scores_path.is_file():
        return json.loads(scores_path.read_text())
    install(variant)
    cfg, ratio = cell_settings("prior", "default", params_path, seed=seed)
    start = time.perf_counter()
    result = adapt(root / prior_dir / "checkpoint.pt", identity, n_frames, cfg, root / cache_root,
                   root / cache_root / "splits.json", work / name, ratio, progress=False)
    seconds = time.perf_counter() - start
    val_full = result["val_set"].dataset                       # the whole validation span, not the in-training subset
    history = result["history"]
    term = [h["vgg"] for h in history if "vgg" in h]
    l1 = [h["l1"] for h in history if "vgg" in h]
    cell = {"identity": identity, "seed": seed, "variant": variant, "vgg_loss": result["vgg_loss"],
            # the term's size next to the L1 term it joins, mean over the steps (weights as applied)
            "term_over_l1": float(np.mean(term) / np.mean(l1)) if term else None,
            "train_seconds": seconds, "steps": result["info"]["steps"], **validation_scores(result["state"], val_full)}
    scores_path.write_text(json.dumps(cell, indent=1) + "\n")
    print(f"{name}: {seconds:.0f} s, term {result['vgg_loss']} ({cell['term_over_l1']} of L1), " + ", ".join(
        f"{k} {cell[k]:.3f}" for k in SCORES if cell.get(k) is not None), flush=True)
    return cell


def summarise(cells: list[dict], variants: list[str]) -> dict:
    """Per variant: mean of each score and, against ``variants[0]``, the paired difference per (person, seed)."""
    by_key = {(c["identity"], c["seed"], c["variant"]): c for c in cells}
    out = {}
    for v in variants:
        mine = [c for c in cells if c["variant"] == v]
        row = {k: mean_ci([c.get(k) for c in mine])[0] for k in (*SCORES, "train_seconds", "term_over_l1")}
        if v != variants[0]:
            row["vs_" + variants[0]] = {
                k: paired_summary([c[k] - by_key[(c["identity"], c["seed"], variants[0])][k] for c in mine
                                   if (c["identity"], c["seed"], variants[0]) in by_key and c.get(k) is not None
                                   and by_key[(c["identity"], c["seed"], variants[0])].get(k) is not None])
                for k in SCORES}
        out[v] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="real")
    ap.add_argument("--n-frames", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--root", type=Path, default=REPO,
                    help="workspace whose prepared data and prior are used (e.g. a clone that ran the pipeline)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/compare_style_loss"))
    ap.add_argument("--out", default=None, help="results name (default style_loss_<corpus>)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml")
    identities = params[CORPORA[args.corpus][0]]["identities"]
    work = args.work / args.corpus
    work.mkdir(parents=True, exist_ok=True)
    eval_every = min(params["adapt"]["eval_every"], args.steps)
    params_path = variant_params(work, "fixed", {"steps": args.steps, "select_metric": None, "patience": 0,
                                                 "eval_every": eval_every})
    cells = [run_cell(args.corpus, identity, variant, params_path, args.n_frames, seed, work, args.root)
             for seed in args.seeds for identity in identities for variant in args.variants]  # interleaved
    result = {"corpus": args.corpus, "n_frames": args.n_frames, "steps": args.steps, "seeds": args.seeds,
              "lambda_vgg": params["adapt"]["lambda_vgg"], "machine": describe(), "cells": cells,
              "variants": summarise(cells, args.variants)}
    for v, row in result["variants"].items():
        print(f"{v:<12}" + "  ".join(f"{k} {row[k]:.3f}" for k in SCORES if row.get(k) is not None))
    write_results(args.out or f"style_loss_{args.corpus}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
