"""How a new person's texture should start (``adapt.texture_init``): random noise or the prior's mean.

    .venv/bin/python benchmarks/compare_texture_init.py [--corpus real] [--n-frames 100] [--steps 200]

Runs the study's "Ours" cell (``deadlib.eval.cell.run_cell``: prior fine-tune with generic data mixed
1:1) on each held-out person of the corpus (``real``: ``real_study.identities`` with the real
pipeline's prior and prepared data; ``synthetic``: ``study.identities``), once per init, for a fixed
``--steps`` budget with no early stopping, validating every ``adapt.eval_every`` steps on the
person's **validation** span. The choice between inits is read from those validation curves only
(which init reaches the higher validation lower-face PSNR, and at which step); each cell's test
metrics at its best validation step are written beside them for the record, never used to choose.
Adapt-now (dubbing a new video) trains a fixed number of steps without validation, so the curves
also say how many steps it needs. Both pipelines' ``train_prior`` (and ``prepare``) must have run.

Writes ``benchmarks/results/texture_init_<corpus>.json`` (README's generated ``texture_init`` block
reads it); the cells' own files go to ``--work`` (reused when present, so an interrupted run resumes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from deadlib.core.config import load_params
from deadlib.eval.cell import run_cell
from deadlib.model.texture import TEXTURE_INITS
from deadlib.tools.machine import describe
from deadlib.train.prior import read_live_series

REPO = Path(__file__).resolve().parents[1]
CORPORA = {"real": ("real_study", "real/data/prepared", "real/models/prior"),
           "synthetic": ("study", "data/prepared", "models/prior")}
REPORTED = ("psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "lmd_mouth_px", "psnr")


def variant_params(work: Path, name: str, adapt_overrides: dict) -> Path:
    """params.yaml with ``adapt`` updated by ``adapt_overrides``, written to ``work/params_<name>.yaml``."""
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["adapt"].update(adapt_overrides)
    path = work / f"params_{name}.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def variant_cell_name(variant: str, identity: str, n_frames: int, seed: int) -> str:
    """The folder (and ``.json``) name of a benchmark's cell in its work folder."""
    return f"{variant}_{identity}_n{n_frames}_s{seed}"


def run_variant_cell(corpus: str, identity: str, variant: str, params_path: Path, n_frames: int, seed: int,
                     work: Path, method: str = "prior", prior_dir: Path | None = None) -> dict:
    """The study cell of ``method`` ("prior" = Ours, "scratch" = the Baseline) of ``identity`` under
    ``params_path``, from the corpus's recorded prior unless ``prior_dir`` names another one (reused
    from ``work`` when its metrics file exists): {"selected_step", "val":
    {metric: {step: value}} from the validation span, "test": the test metrics of the weights it ended
    on, "train_seconds"}."""
    _, cache_root, recorded_prior = CORPORA[corpus]
    prior_dir = prior_dir or REPO / recorded_prior
    name = variant_cell_name(variant, identity, n_frames, seed)
    metrics_path = work / f"{name}.json"
    start = time.perf_counter()
    if not metrics_path.is_file():
        run_cell(method, identity, n_frames, REPO / cache_root, prior_dir, work / name, metrics_path,
                 profile="default", params_path=params_path, progress=False, seed=seed)
    metrics = json.loads(metrics_path.read_text())
    live = next((d.parent for d in (work / name).rglob("plots") if d.is_dir()), None)
    series = read_live_series(live, "val/") if live else {}
    val = {key.removeprefix("val/"): {int(s): float(v) for s, v in zip(*curve)} for key, curve in series.items()}
    print(f"{name}: {time.perf_counter() - start:.0f} s, ended on step {metrics['selected_step']}, "
          f"validation psnr_lower {val.get('psnr_lower')}", flush=True)
    return {"selected_step": metrics["selected_step"], "val": val, "test": {k: metrics.get(k) for k in REPORTED},
            "train_seconds": metrics.get("train_seconds")}


def run(corpus: str, n_frames: int, steps: int, work: Path, seed: int = 0) -> dict:
    params = load_params(REPO / "params.yaml")
    identities = params[CORPORA[corpus][0]]["identities"]
    work.mkdir(parents=True, exist_ok=True)
    variants = {init: variant_params(work, init, {"texture_init": init, "patience": 0, "steps": steps})
                for init in TEXTURE_INITS}
    cells = []
    for identity in identities:
        for init, params_path in variants.items():             # interleaved: a cut-short run still pairs
            cell = run_variant_cell(corpus, identity, init, params_path, n_frames, seed, work)
            cells.append({"identity": identity, "init": init, "selected_step": cell["selected_step"],
                          "val_psnr_lower": cell["val"].get("psnr_lower", {}), "test": cell["test"],
                          "train_seconds": cell["train_seconds"]})
    return {"corpus": corpus, "n_frames": n_frames, "steps": steps, "seed": seed,
            "adv_start_fraction": params["adapt"]["adv_start_fraction"], "machine": describe(), "cells": cells}


def write_results(name: str, result: dict) -> Path:
    """``result`` as ``benchmarks/results/<name>.json`` (what README's generated blocks read)."""
    out = REPO / "benchmarks" / "results" / f"{name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="real")
    ap.add_argument("--n-frames", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--work", type=Path, default=None, help="cell folders (default: /tmp/texture_init_<corpus>)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.corpus, args.n_frames, args.steps, args.work or Path(f"/tmp/texture_init_{args.corpus}"))
    if not args.no_save:
        write_results(f"texture_init_{args.corpus}", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
