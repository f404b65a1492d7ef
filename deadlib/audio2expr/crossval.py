"""Speaker-fold cross-validation of audio-to-expression settings on the PRIOR people only.

How an ``audio2expr`` setting is chosen without looking at a held-out person: the prior people
are split into ``folds`` groups of speakers (every ``folds``-th name, sorted); for each group the
model is pre-trained on the other prior people exactly as the ``train_audio2expr`` stage does
(their train parts, early stopping on their own validation spans) and scored on the group's whole
clips (train + validation parts) — speakers it never heard, as a new person is. The figure is
the jaw-coefficient correlation with the tracked one (mouth opening), the mean over the unseen
people, beside their lip vertex error. The held-out people (``splits["heldout"]``) are never
loaded.

Command line (``--set`` overrides the profile's ``audio2expr`` settings, dotted keys)::

    python -m deadlib.audio2expr.crossval --cache-root real/data/prepared --steps 800 \\
        --set train.formant_warp=0.0 --out cv_nowarp.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from deadlib.audio2expr.stage import (
    a2e_settings,
    evaluate_clips,
    load_person_clips,
    pretrain,
)
from deadlib.core.config import merge_overrides, parse_overrides
from deadlib.core.files import write_json
from deadlib.data.dataset import load_splits
from deadlib.data.face3d import ExpressionBasis


def speaker_folds(names: list[str], folds: int) -> list[list[str]]:
    """Every ``folds``-th name of the sorted list: ``folds`` disjoint groups covering all names."""
    if not 2 <= folds <= len(names):
        raise ValueError(f"need 2 <= folds <= {len(names)} prior people, got folds={folds}")
    ordered = sorted(names)
    return [ordered[k::folds] for k in range(folds)]


def override(settings: Mapping, assignments: list[str]) -> dict:
    """``settings`` with ``key.sub=value`` assignments applied (values parsed as YAML; an unknown key is an error)."""
    return merge_overrides("audio2expr", settings, parse_overrides(assignments))


def cross_validate(settings: Mapping, cache_root: str | Path, folds: int = 3, progress: bool = False) -> dict[str, Any]:
    """Scores of ``settings`` on unseen prior speakers → {mean_jaw_corr, mean_lve_mm, people: [...]}."""
    cache_root = Path(cache_root)
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    prior = load_splits(cache_root)["prior"]
    window = settings["train"]["window"]
    people = []
    for k, unseen in enumerate(speaker_folds(prior, folds)):
        seen = [n for n in prior if n not in unseen]
        clips = [c for n in seen for c in load_person_clips(cache_root, n, "train", min_len=window)]
        val = [c for n in seen for c in load_person_clips(cache_root, n, "val")]
        model, history = pretrain(settings, clips, basis, "cpu", progress, val_clips=val)
        for name in unseen:
            whole = load_person_clips(cache_root, name, "train") + load_person_clips(cache_root, name, "val")
            if whole:
                scores = evaluate_clips(model, whole, basis, settings["chunk"])
                people.append({"fold": k, "name": name, "frames": int(sum(len(e) for _, e in whole)),
                               "jaw_corr": scores["jaw_corr"], "lve_mean_mm": scores["lve_mean_mm"],
                               "best_step": history.get("best_step")})
    return {"folds": folds, "mean_jaw_corr": float(np.mean([p["jaw_corr"] for p in people])),
            "mean_lve_mm": float(np.mean([p["lve_mean_mm"] for p in people])), "people": people}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m deadlib.audio2expr.crossval", description=__doc__.splitlines()[0])
    ap.add_argument("--cache-root", required=True, help="a prepared corpus (prepare stage output)")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the profile's)")
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                    help="override an audio2expr setting, e.g. train.formant_warp=0.0 (repeatable)")
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    settings = override(a2e_settings(args.profile, args.params), args.assignments)
    if args.steps is not None:
        settings["train"]["steps"] = args.steps
    start = time.perf_counter()
    result = {"settings": settings, **cross_validate(settings, args.cache_root, args.folds),
              "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps({k: result[k] for k in ("folds", "mean_jaw_corr", "mean_lve_mm", "seconds")}))
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
