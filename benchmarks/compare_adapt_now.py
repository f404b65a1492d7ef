"""How many adapt-now steps a new person needs, and from which texture (issue 18, goal 3).

    .venv/bin/python benchmarks/compare_adapt_now.py [--corpus real] [--n-frames 100] \
        [--variants random:100 mean:50 mean:75 random:100:0.5 random:100:1:bfloat16] [--seeds 0 1] [--name NAME]

Adapt-now (``dub --identity adapt-now``) trains a fixed number of steps (``dub.adapt.steps``) with no
validation to stop on, so its step count is the largest share of a new person's cost
(``benchmarks/bench_new_person.py``). Each ``INIT:STEPS`` variant runs adapt-now's schedule — the
study's "Ours" cell (``deadlib.eval.cell.run_cell``: prior fine-tune, generic data mixed 1:1) with
``adapt.steps`` = STEPS, the GAN terms from ``adapt.adv_start_fraction`` of them, no step selection
(the run ends on its last step, as adapt-now does) and the texture starting as INIT — on every real
held-out person (``real_study.identities``; ``synthetic``: ``study.identities``) and seed. A fourth field
``bfloat16`` runs the whole cell under bfloat16 autocast, as ``dub.adapt.train_dtype: bfloat16`` runs
adapt-now (training and, here, the cell's validation and test renders too: rounding alone leaves a render
≈ 44 dB PSNR from the float32 one on a random renderer, deadlib/model/inference.py); its ``train_seconds`` against the first variant's is the
speed-up, on this machine's CPU.

The choice is read from each person's **validation** span only: lower-face PSNR (and whole-crop
PSNR/SSIM) of the last step, over ``--val-windows`` windows, each variant paired with the first
variant (the baseline: today's adapt-now) by person and seed. Every cell's test metrics are written
beside them for the record, never used to choose. Writes ``benchmarks/results/adapt_now_<corpus>_n<N>.json``
(README's generated ``adapt_now`` block reads it); cells go to ``--work`` (reused, so a cut-short run
resumes). Both pipelines' ``train_prior`` (and ``prepare``) must have run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deadlib.core.config import load_params, resolve_device
from deadlib.core.intervals import mean_ci, paired_summary
from deadlib.model.inference import RENDER_DTYPES, render_precision
from deadlib.model.texture import TEXTURE_INITS
from deadlib.tools.machine import describe
from deadlib.train.baseline import scaled_rates

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_texture_init import (  # noqa: E402
    CORPORA,
    REPO,
    run_variant_cell,
    variant_params,
    write_results,
)

VAL_KEYS = ("psnr_lower", "psnr", "ssim")       # what train()'s in-training validation logs (val/*)


def parse_variant(text: str) -> tuple[str, int, float, str]:
    """``INIT:STEPS[:SCALE[:DTYPE]]`` → (init, steps, learning-rate scale (1 = adapt's rates), autocast dtype)."""
    parts = text.split(":")
    parts += ["1", "float32"][len(parts) - 2:] if 2 <= len(parts) <= 4 else []   # no SCALE / DTYPE: adapt's
    init, steps, scale, dtype = parts if len(parts) == 4 else ("", "", "", "")
    try:
        lr_scale = float(scale)
    except ValueError:
        lr_scale = -1.0
    if (init not in TEXTURE_INITS or not steps.isdigit() or int(steps) < 1 or not lr_scale > 0
            or dtype not in RENDER_DTYPES):
        raise argparse.ArgumentTypeError(f"--variants {text!r}: expected INIT:STEPS[:SCALE[:DTYPE]] with INIT one of "
                                         f"{TEXTURE_INITS}, SCALE > 0 (× adapt's lr_g / lr_d / lr_texture) and "
                                         f"DTYPE one of {RENDER_DTYPES}")
    return init, int(steps), lr_scale, dtype


def variant_name(init: str, steps: int, lr_scale: float, dtype: str = "float32") -> str:
    """'random100', 'random100_lr0.5' when the rates are scaled, '…_bf16' under bfloat16 autocast."""
    return f"{init}{steps}" + ("" if lr_scale == 1 else f"_lr{lr_scale:g}") + ("" if dtype == "float32" else "_bf16")


def last_step(curve: dict) -> float | None:
    """The value at the highest step of a {step: value} curve (keys int or str), None when empty."""
    return curve[max(curve, key=int)] if curve else None


def paired(cells: list[dict], base: str, other: str, key: str) -> dict | None:
    """``other − base`` of the final validation ``key`` per (person, seed): mean, 95 % half-width, count higher."""
    final = {(c["identity"], c["seed"], c["variant"]): c["val_final"].get(key) for c in cells}
    diff = [final[(p, s, other)] - final[(p, s, base)] for (p, s, v) in final
            if v == other and final.get((p, s, base)) is not None and final[(p, s, other)] is not None]
    return paired_summary(diff)


def run(corpus: str, n_frames: int, variants: list[tuple[str, int, float, str]], seeds: list[int], val_windows: int,
        work: Path) -> dict:
    params = load_params(REPO / "params.yaml")
    identities = params[CORPORA[corpus][0]]["identities"]
    eval_every = params["adapt"]["eval_every"]
    work.mkdir(parents=True, exist_ok=True)
    names = [variant_name(*v) for v in variants]
    paths = {name: variant_params(work, name, {"texture_init": init, "steps": steps, "select_metric": None,
                                               "patience": 0, "eval_every": min(eval_every, steps),
                                               "n_val_windows": val_windows, **scaled_rates(params["adapt"], scale)})
             for name, (init, steps, scale, _) in zip(names, variants)}
    device = resolve_device(params["device"])          # the cells' device: autocast must name its type
    cells = []
    for seed in seeds:
        for identity in identities:
            for name, (init, steps, _, dtype) in zip(names, variants):   # interleaved: a cut-short run still pairs
                with render_precision(dtype, device):                    # adapt-now's dub.adapt.train_dtype
                    cell = run_variant_cell(corpus, identity, name, paths[name], n_frames, seed, work)
                cells.append({"identity": identity, "seed": seed, "variant": name, "init": init, "steps": steps,
                              "val_final": {k: last_step(cell["val"].get(k, {})) for k in VAL_KEYS},
                              "val_psnr_lower": cell["val"].get("psnr_lower", {}), "test": cell["test"],
                              "train_seconds": cell["train_seconds"]})
    summary = {}
    for name, (init, steps, scale, dtype) in zip(names, variants):
        mine = [c for c in cells if c["variant"] == name]
        summary[name] = {"init": init, "steps": steps, "lr_scale": scale, "dtype": dtype,
                         "val_final": {k: mean_ci([c["val_final"][k] for c in mine])[0] for k in VAL_KEYS},
                         "vs_baseline": {k: paired(cells, names[0], name, k) for k in VAL_KEYS} if name != names[0] else None,
                         "test": {k: mean_ci([c["test"][k] for c in mine])[0] for k in mine[0]["test"]},
                         "train_seconds": mean_ci([c["train_seconds"] for c in mine])[0]}
    return {"corpus": corpus, "n_frames": n_frames, "seeds": seeds, "val_windows": val_windows,
            "adv_start_fraction": params["adapt"]["adv_start_fraction"], "baseline": names[0],
            "machine": describe(), "variants": summary, "cells": cells}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="real")
    ap.add_argument("--n-frames", type=int, default=100, help="adaptation frames (issue 18: the first 100)")
    ap.add_argument("--variants", nargs="+", type=parse_variant,
                    default=[("random", 100, 1.0, "float32"), ("mean", 50, 1.0, "float32"), ("mean", 75, 1.0, "float32")],
                    help="INIT:STEPS[:SCALE[:DTYPE]] ...; the first is the baseline (today's adapt-now); SCALE "
                         "multiplies adapt's three learning rates (default 1); DTYPE bfloat16 trains under "
                         "bfloat16 autocast (default float32)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--val-windows", type=int, default=32, help="validation windows per person (adapt.n_val_windows)")
    ap.add_argument("--work", type=Path, default=None, help="cell folders (default: /tmp/adapt_now_<corpus>)")
    ap.add_argument("--name", default=None, help="results file name (default adapt_now_<corpus>_n<N>)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.corpus, args.n_frames, args.variants, args.seeds, args.val_windows,
                 args.work or Path(f"/tmp/adapt_now_{args.corpus}"))
    for name, v in result["variants"].items():
        d = v["vs_baseline"] and v["vs_baseline"]["psnr_lower"]
        print(f"{name}: validation psnr_lower {v['val_final']['psnr_lower']:.2f}"
              + (f", vs baseline {d['mean']:+.2f} dB ({d['higher']}/{d['n']} higher)" if d else " (baseline)"))
    if not args.no_save:
        write_results(args.name or f"adapt_now_{args.corpus}_n{args.n_frames}", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
