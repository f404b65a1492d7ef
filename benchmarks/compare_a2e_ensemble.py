"""Does averaging audio-to-expression models trained at several seeds follow unseen speakers better?

    .venv/bin/python benchmarks/compare_a2e_ensemble.py [--cache-root real/data/prepared] [--seeds 0 1 2 3]
        [--threads 1] [--work /tmp/a2e_ensemble_real] [--only]

One training seed moves the generic model's mean jaw correlation on unseen real speakers by as much
as every training variant tried (README "Which training generalises to unseen speakers"): the
model's error has a large part that depends on the seed. Averaging the predictions of models
trained at different seeds removes part of it. This benchmark trains the generic model of each
speaker fold of the PRIOR people (``deadlib.audio2expr.crossval.fold_models``: the crossval protocol,
early stopping on the seen speakers' validation spans) at every seed of ``--seeds``, keeps each
model's predictions on the unseen speakers' whole clips, and scores, per speaker, every single
seed and the average of the first m seeds' predictions (m = 1 .. S). The held-out people are never
loaded, so a choice read from this file peeks at no test frame.

The comparison, paired by speaker with a 95 % Student-t interval: the ensemble of all seeds against
the mean of the single seeds' scores (what one training run gives on average) and against the
first seed alone (what the pipeline trains today).

Each (seed, fold) run's predictions go to ``--work`` and are reused, so two processes can split
the seeds (``--only``: train and write no results file) and a last run gathers them. Writes
``benchmarks/results/a2e_ensemble_<corpus>.json`` (README's generated ``a2e_ensemble`` block).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from deadlib.audio2expr.crossval import fold_models, unseen_clips
from deadlib.audio2expr.stage import a2e_settings, evaluate_clips, score_predictions
from deadlib.core.files import write_json
from deadlib.core.intervals import paired_summary
from deadlib.data.face3d import ExpressionBasis
from deadlib.tools.machine import describe

REPO = Path(__file__).resolve().parents[1]


def seed_predictions(cache_root: Path, settings: dict, seed: int, folds: int, work: Path) -> dict:
    """{speaker: {"pred": (N, K), "target": (N, K), "best_step"}} of the models trained at ``seed``
    (the params' seed + ``seed``), read from ``work`` when a previous run wrote them."""
    path = work / f"seed{seed}.npz"
    meta_path = path.with_suffix(".json")
    # one model per seed (no audio2expr.ensemble): this benchmark averages the seeds' models itself
    settings = {**{k: v for k, v in settings.items() if k != "ensemble"}, "seed": int(settings.get("seed") or 0) + seed}
    meta = json.loads(meta_path.read_text()) if path.is_file() and meta_path.is_file() else None
    if meta is not None and meta["settings"] == json.loads(json.dumps(settings)):
        with np.load(path) as data:
            return {n: {"pred": data[f"{n}/pred"], "target": data[f"{n}/target"], "best_step": meta["best_step"][n]}
                    for n in meta["names"]}
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    start = time.perf_counter()
    out = {}
    for _, unseen, model, (history,) in fold_models(settings, cache_root, folds=folds):
        for name in unseen:
            whole = unseen_clips(cache_root, name)
            if whole:
                scores = evaluate_clips(model, whole, basis, settings["chunk"])
                out[name] = {"pred": scores["pred"], "target": scores["target"], "best_step": history.get("best_step")}
    work.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{n}/{k}": v[k] for n, v in out.items() for k in ("pred", "target")})
    write_json(meta_path, {"settings": settings, "names": list(out), "seconds": round(time.perf_counter() - start, 1),
                           "best_step": {n: v["best_step"] for n, v in out.items()}})
    return out


def summarise(per_seed: list[dict], basis: ExpressionBasis) -> dict:
    """Per speaker: every single seed's scores and the ensemble of the first m seeds (m = 1 .. S);
    the means over speakers and the paired comparisons of the full ensemble."""
    names = list(per_seed[0])
    for run in per_seed[1:]:
        if list(run) != names or any(not np.array_equal(run[n]["target"], per_seed[0][n]["target"]) for n in names):
            raise ValueError("the seeds' runs disagree on the unseen speakers or their targets")
    people = []
    for name in names:
        target = per_seed[0][name]["target"]
        singles = [score_predictions(run[name]["pred"], target, basis) for run in per_seed]
        ensembles = [score_predictions(np.mean([run[name]["pred"] for run in per_seed[:m]], axis=0), target, basis)
                     for m in range(1, len(per_seed) + 1)]
        people.append({"name": name, "single": singles, "ensemble": ensembles})
    out = {"n_seeds": len(per_seed), "people": people}
    for key in ("jaw_corr", "lve_mean_mm"):
        single = np.array([[x[key] for x in p["single"]] for p in people])  # (speakers, seeds)
        ensemble = np.array([[x[key] for x in p["ensemble"]] for p in people])  # (speakers, models averaged)
        out[f"single_{key}"] = single.mean(axis=0).tolist()
        out[f"ensemble_{key}"] = ensemble.mean(axis=0).tolist()
        out[f"{key}_vs_single_mean"] = paired_summary((ensemble[:, -1] - single.mean(axis=1)).tolist())
        out[f"{key}_vs_first_seed"] = paired_summary((ensemble[:, -1] - single[:, 0]).tolist())
    return out


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-root", default="real/data/prepared")
    ap.add_argument("--corpus", default="real", help="name used in the results file")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="seed offsets added to params' seed")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (two 1-thread runs share 2 cores well)")
    ap.add_argument("--only", action="store_true", help="train the given seeds and write no results file")
    ap.add_argument("--work", default=None, help="folder of the per-seed predictions (default: /tmp/a2e_ensemble_<corpus>)")
    ap.add_argument("--out", default=None, help="results file (default: benchmarks/results/a2e_ensemble_<corpus>.json)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cache_root = Path(args.cache_root)
    settings = a2e_settings("default", REPO / "params.yaml")
    work = Path(args.work or f"/tmp/a2e_ensemble_{args.corpus}")
    per_seed = []
    for seed in args.seeds:
        per_seed.append(seed_predictions(cache_root, settings, seed, args.folds, work))
        print(json.dumps({"seed": seed, "done": len(per_seed[-1])}), flush=True)
    if args.only:
        return None
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    result = summarise(per_seed, basis)
    seconds = [json.loads((work / f"seed{s}.json").read_text())["seconds"] for s in args.seeds]
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"a2e_ensemble_{args.corpus}.json"
    write_json(out, {"machine": describe(), "cache_root": str(cache_root), "folds": args.folds, "seeds": args.seeds,
                     "threads": torch.get_num_threads(), "seconds_per_seed": seconds,
                     "protocol": "deadlib.audio2expr.crossval.fold_models on the prior people only (generic model, "
                                 "unseen speakers' train + validation parts)", **result})
    print(json.dumps({k: v for k, v in result.items() if k != "people"}, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
