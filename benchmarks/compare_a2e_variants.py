"""Which audio-to-expression training generalises to unseen real speakers: variants side by side.

    .venv/bin/python benchmarks/compare_a2e_variants.py [--cache-root real/data/prepared] [--steps 2000]
        [--variant NAME=KEY=VALUE[,KEY=VALUE...]]... [--seeds 2] [--out FILE] [--extra-cache data/prepared]

Each variant is a set of ``audio2expr`` overrides (dotted keys, as ``deadlib.audio2expr.crossval
--set``); ``baseline`` (params.yaml as it is) always runs. Every variant goes through the speaker-fold
cross-validation of ``deadlib.audio2expr.crossval`` on the PRIOR people only (pre-train on two thirds
of the speakers with early stopping on their validation spans, score the jaw-coefficient correlation
and the lip vertex error on the other third's whole clips): the held-out people are never loaded,
so a choice read from this file peeks at no test frame. For each variant against the baseline the
paired per-speaker difference of the jaw correlation (mouth opening follows the speech) is
reported with a 95 % Student-t interval over the speakers, and how many speakers improve. With
``--seeds S`` every variant trains at S seeds and each speaker's score is the mean over them: one
seed's training noise moves the mean jaw correlation by as much as the variants do, and a
by-speaker interval cannot see noise that shifts every speaker of a run together, so the table
also lists each seed's mean.

A variant may also mix another prepared corpus's speech into pre-training
(``deadlib.audio2expr.mixing``): ``--extra-cache data/prepared`` (the synthetic corpus; its prior
people's train parts, expressions re-encoded in this corpus's basis) and the pseudo-setting ``mix.share=S`` — the share of training windows drawn
from it (0 < S < 1; 1 = the other corpus only; ``all`` = both as they are, no reweighting).
Validation (early stopping) and scores stay on this corpus's prior people.

Writes ``benchmarks/results/a2e_variants_<corpus>.json`` or ``--out`` (README's generated
``a2e_variants`` and ``a2e_variants_seeds`` blocks read the real corpus's two files); each variant's
full cross-validation result goes to ``--work`` and is reused when present, so an interrupted run
resumes.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np
import torch

from deadlib.audio2expr.crossval import cross_validate, override
from deadlib.audio2expr.mixing import clips_in_basis, mix_clips
from deadlib.audio2expr.stage import a2e_settings
from deadlib.core.files import write_json
from deadlib.core.intervals import paired_summary
from deadlib.data.dataset import load_splits
from deadlib.data.face3d import ExpressionBasis
from deadlib.tools.machine import describe

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = {
    "input_norm": ["model.input_norm=speech_mean"],
    "speed": ["train.speed=0.1"],
    "freq_mask": ["train.freq_mask=8"],
    "speed_norm": ["model.input_norm=speech_mean", "train.speed=0.1"],
    "all_three": ["model.input_norm=speech_mean", "train.speed=0.1", "train.freq_mask=8"],
}


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``name=key=value,key=value`` → (name, [key=value, ...]); ``name=`` is params.yaml as it is."""
    name, sep, rest = text.partition("=")
    if not name or not sep:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...] or NAME=")
    return name, rest.split(",") if rest else []


def paired(base: list[dict], other: list[dict], key: str) -> dict | None:
    """Per-speaker ``other - base`` of ``key``: mean, 95 % half-width, speakers better (higher)."""
    by_name = {p["name"]: p[key] for p in base}
    return paired_summary([p[key] - by_name[p["name"]] for p in other if p["name"] in by_name])


MIX_KEY = "mix.share"


def split_mix(assignments: list[str]) -> tuple[list[str], float | str | None]:
    """(audio2expr assignments, the ``mix.share`` value: a float in (0, 1], "all", or None when absent)."""
    rest, share = [], None
    for item in assignments:
        key, _, value = item.partition("=")
        if key != MIX_KEY:
            rest.append(item)
        elif value == "all":
            share = "all"
        else:
            share = float(value)
            if not 0 < share <= 1:
                raise ValueError(f"{item}: the share must be in (0, 1] or 'all'")
    return rest, share


@functools.cache
def extra_clips(extra_cache: Path | None, cache_root: Path, window: int) -> list:
    """The other corpus's prior people's train clips in ``cache_root``'s expression basis (loaded and
    re-encoded once per process, not once per variant and seed; callers do not modify the list)."""
    if extra_cache is None:
        raise ValueError(f"a {MIX_KEY} variant needs --extra-cache (another prepared corpus)")
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    return clips_in_basis(extra_cache, load_splits(extra_cache)["prior"], basis, "train", min_len=window)


def run_one(cache_root: Path, settings: dict, assignments: list[str], folds: int, path: Path,
            extra_cache: Path | None = None) -> dict:
    """One variant at one seed: its cross-validation result, reused from ``path`` when the settings
    (and the mix) match."""
    share = split_mix(assignments)[1]
    mix = None if share is None else {"cache": str(extra_cache), "share": share}
    cached = json.loads(path.read_text()) if path.is_file() else None
    if (cached is not None and cached.get("settings") == json.loads(json.dumps(settings))
            and cached.get("mix") == mix):
        return cached
    window = settings["train"]["window"]
    training = None
    if mix is not None:
        extra = extra_clips(extra_cache, cache_root, window)
        training = lambda own: mix_clips(own, extra, None if share == "all" else share, window)  # noqa: E731
    start = time.perf_counter()
    result = {"settings": settings, "assignments": assignments, **({"mix": mix} if mix else {}),
              **cross_validate(settings, cache_root, folds, training=training),
              "seconds": round(time.perf_counter() - start, 1)}
    write_json(path, result)
    return result


def seed_mean(results: list[dict]) -> list[dict]:
    """Per-speaker scores averaged over the seeds' results (same folds, same speakers in each)."""
    people = []
    for rows in zip(*(r["people"] for r in results)):
        if len({row["name"] for row in rows}) != 1:
            raise ValueError(f"seeds disagree on the speaker order: {[row['name'] for row in rows]}")
        people.append({"name": rows[0]["name"], "jaw_corr": float(np.mean([row["jaw_corr"] for row in rows])),
                       "lve_mean_mm": float(np.mean([row["lve_mean_mm"] for row in rows])),
                       "best_steps": [row["best_step"] for row in rows]})
    return people


def run(cache_root: Path, variants: dict[str, list[str]], steps: int | None, work: Path, folds: int = 3,
        baseline: bool = True, seeds: int = 1, extra_cache: Path | None = None) -> dict:
    """Every variant (and the baseline unless ``baseline`` is False) at seeds 0..seeds-1.

    Seed 0 keeps the params' own seed offset (``<name>.json``); seed s > 0 adds s to it
    (``<name>_seed<s>.json``). The comparison pairs per-speaker scores averaged over the seeds, so
    the interval reflects speakers, and the training noise of one seed shrinks.
    """
    work.mkdir(parents=True, exist_ok=True)
    base_settings = a2e_settings("default", REPO / "params.yaml")
    base_settings.pop("ensemble", None)  # variants train one model per seed (compare_a2e_ensemble measures averaging)
    results = {}
    for name, assignments in {**({"baseline": []} if baseline else {}), **variants}.items():
        per_seed = []
        for s in range(seeds):
            settings = override(base_settings, split_mix(assignments)[0])
            settings["seed"] = int(settings["seed"]) + s
            if steps is not None:
                settings["train"]["steps"] = steps
            per_seed.append(run_one(cache_root, settings, assignments, folds,
                                    work / (f"{name}.json" if s == 0 else f"{name}_seed{s}.json"), extra_cache))
            print(json.dumps({"variant": name, "seed": settings["seed"], "mean_jaw_corr": per_seed[-1]["mean_jaw_corr"],
                              "mean_lve_mm": per_seed[-1]["mean_lve_mm"], "seconds": per_seed[-1]["seconds"]}),
                  flush=True)
        results[name] = {"assignments": assignments, "people": seed_mean(per_seed),
                         "seconds": round(float(np.mean([r["seconds"] for r in per_seed])), 1),
                         "per_seed_jaw_corr": [r["mean_jaw_corr"] for r in per_seed],
                         "settings": per_seed[0]["settings"]}
    if not baseline:
        return results
    base = results["baseline"]["people"]
    summary = {}
    for name, result in results.items():
        people = result["people"]
        row = {"assignments": result["assignments"],
               "mean_jaw_corr": float(np.mean([p["jaw_corr"] for p in people])),
               "mean_lve_mm": float(np.mean([p["lve_mean_mm"] for p in people])),
               "per_seed_jaw_corr": result["per_seed_jaw_corr"], "seconds": result["seconds"],
               "best_steps": sorted({s for p in people for s in p["best_steps"]})}
        if name == "baseline":  # params.yaml changes once a variant is adopted: keep what "baseline" meant
            row["settings"] = result["settings"]
        else:
            row["jaw_corr_vs_baseline"] = paired(base, people, "jaw_corr")
            row["lve_mm_vs_baseline"] = paired(base, people, "lve_mean_mm")
        summary[name] = row
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-root", default=str(REPO / "real/data/prepared"))
    ap.add_argument("--corpus", default="real", help="name used in the results file")
    ap.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the profile's)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--variant", action="append", type=parse_variant, default=None,
                    help="NAME=KEY=VALUE[,KEY=VALUE...] (repeatable; default: "
                         + "; ".join(f"{k}: {','.join(v)}" for k, v in DEFAULT_VARIANTS.items()) + ")")
    ap.add_argument("--extra-cache", default=None, help=f"another prepared corpus for {MIX_KEY} variants "
                    "(e.g. data/prepared, the synthetic corpus)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per variant (per-speaker scores averaged over them)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (two 1-thread runs share 2 cores well)")
    ap.add_argument("--only", action="store_true", help="run the given variants only (no baseline) and write no "
                    "results file: e.g. a second process on other variants; a last run without --only gathers them")
    ap.add_argument("--out", default=None, help="results file (default: benchmarks/results/a2e_variants_<corpus>.json); "
                    "e.g. a more-seeds check of two variants kept beside the main comparison")
    ap.add_argument("--work", default=None, help="folder of the per-variant results (default: /tmp/a2e_variants_<corpus>)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = dict(args.variant) if args.variant else DEFAULT_VARIANTS
    work = Path(args.work or f"/tmp/a2e_variants_{args.corpus}")
    extra_cache = Path(args.extra_cache) if args.extra_cache else None
    summary = run(Path(args.cache_root), variants, args.steps, work, args.folds, baseline=not args.only,
                  seeds=args.seeds, extra_cache=extra_cache)
    if args.only:
        return summary
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"a2e_variants_{args.corpus}.json"
    write_json(out, {"machine": describe(), "cache_root": str(args.cache_root), "folds": args.folds,
                     **({"extra_cache": str(extra_cache)} if extra_cache else {}),
                     "seeds": args.seeds, "protocol": "deadlib.audio2expr.crossval on the prior people only (generic model, unseen speakers)",
                     "variants": summary})
    print(f"wrote {out}")
    return summary


if __name__ == "__main__":
    main()
