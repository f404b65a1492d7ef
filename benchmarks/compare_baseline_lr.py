"""Is the Baseline's learning rate its own best? A learning-rate sweep of the from-scratch cells on validation.

    .venv/bin/python benchmarks/compare_baseline_lr.py [--corpus synthetic] [--n-frames 100] [--scales 1 2]
    .venv/bin/python benchmarks/compare_baseline_lr.py --method prior --scales 1 0.5 2    # Ours' rates, the same way

Issue 15 asks for a fair baseline: trained from scratch with learning rates chosen for it on
validation, not inherited from the fine-tune. ``adapt``'s rates (``lr_g``, ``lr_d``, ``lr_texture``) were
set for the fine-tune of the prior, and at them most Baseline cells were still climbing when the
200-step budget ended. Each ``--scales`` value multiplies all three rates (``deadlib.train.baseline``,
as the ``baseline`` stage does with ``baseline.lr_scale``, where the choice goes); the study's Baseline cell
(``deadlib.eval.cell.run_cell("scratch")``, no generic data) then runs on every held-out person of the
corpus with that setting for ``--steps`` steps without early stopping, validating every
``adapt.eval_every`` steps on the person's **validation** span. The choice is read from those
validation curves only (the best validation lower-face PSNR per person and scale, paired with scale 1
by person); each cell's test metrics at its best validation step are written beside them for the
record, never used to choose. Both pipelines' ``prepare`` must have run (the prior is not read).

``--method prior`` sweeps Ours' cell (the prior fine-tuned with generic windows mixed in) the same way:
the symmetric check that ``adapt``'s rates are Ours' own best; its results record the steps of the prior
it fine-tuned (``prior_steps``: a longer prior may move Ours' best rate). A cell whose training diverges (the
divergence guard of ``deadlib.train.loop``) is recorded as diverged, not a crash.

Writes ``benchmarks/results/baseline_lr_<corpus>_n<N>.json`` (``ours_lr_…`` for ``--method prior``, ``--name`` another stem;
README's generated ``baseline_lr`` blocks read them); the cells go to ``--work`` (reused when present, so an interrupted run resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deadlib.core.config import load_params
from deadlib.tools.machine import describe
from deadlib.train.baseline import RATES, scaled_rates
from deadlib.train.loop import TrainingDiverged

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_texture_init as cells  # noqa: E402  (the cell runner and result writer it shares)
from compare_prior_steps import pipeline  # noqa: E402  (the steps the recorded prior trained)

REPO = cells.REPO

def variant_name(scale: float) -> str:
    return f"lr_x{scale:g}"


RESULTS = {"scratch": "baseline_lr", "prior": "ours_lr"}   # results file prefix by method


def run(corpus: str, n_frames: int, steps: int, scales: list[float], work: Path, seed: int = 0,
        method: str = "scratch") -> dict:
    params = load_params(REPO / "params.yaml")
    identities = params[cells.CORPORA[corpus][0]]["identities"]
    work = work / method                                         # never reuse the other method's cells
    work.mkdir(parents=True, exist_ok=True)
    variants = {scale: cells.variant_params(work, variant_name(scale),
                                            {**scaled_rates(params["adapt"], scale), "patience": 0, "steps": steps})
                for scale in scales}
    ran = []
    for identity in identities:
        for scale, params_path in variants.items():             # interleaved: a cut-short run still pairs
            entry = {"identity": identity, "variant": variant_name(scale), "scale": scale}
            try:
                cell = cells.run_variant_cell(corpus, identity, variant_name(scale), params_path, n_frames, seed, work,
                                              method=method)
            except TrainingDiverged as err:                      # a too-high rate is a result, not a crash
                print(f"{entry['variant']} {identity}: diverged: {err}", flush=True)
                ran.append({**entry, "selected_step": None, "val_psnr_lower": {}, "test": {}, "train_seconds": None,
                            "diverged": str(err)})
                continue
            ran.append({**entry, "selected_step": cell["selected_step"], "val_psnr_lower": cell["val"].get("psnr_lower", {}),
                        "test": cell["test"], "train_seconds": cell["train_seconds"]})
    result = {"corpus": corpus, "method": method, "n_frames": n_frames, "steps": steps, "seed": seed,
              "rates": {key: params["adapt"][key] for key in RATES}, "scales": scales,
              "adv_start_fraction": params["adapt"]["adv_start_fraction"], "machine": describe(), "cells": ran}
    if method == "prior":                                        # Ours' best rate may move with the prior
        result["prior_steps"] = pipeline(corpus)[2]
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=sorted(cells.CORPORA), default="synthetic")
    ap.add_argument("--n-frames", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0],
                    help="multipliers of adapt.lr_g / lr_d / lr_texture; the first is the baseline of the pairing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", choices=sorted(RESULTS), default="scratch",
                    help="scratch = the Baseline (default); prior = Ours, the symmetric check of its rates")
    ap.add_argument("--work", type=Path, default=None,
                    help="cell folders, one subfolder per method (default: /tmp/baseline_lr_<corpus>)")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--name", default=None,
                    help="results file stem (default: baseline_lr_<corpus>_n<N>, ours_lr_… for --method prior)")
    args = ap.parse_args(argv)
    result = run(args.corpus, args.n_frames, args.steps, args.scales, args.work or Path(f"/tmp/baseline_lr_{args.corpus}"),
                 args.seed, args.method)
    if not args.no_save:
        cells.write_results(args.name or f"{RESULTS[args.method]}_{args.corpus}_n{args.n_frames}", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
