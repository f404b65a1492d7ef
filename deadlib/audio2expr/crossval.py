"""Speaker-fold cross-validation of audio-to-expression settings on the PRIOR people only.

How an ``audio2expr`` setting is chosen without looking at a held-out person: the prior people
are split into ``folds`` groups of speakers (every ``folds``-th name, sorted); for each group the
model is pre-trained on the other prior people exactly as the ``train_audio2expr`` stage does
(their train parts, early stopping on their own validation spans; the ensemble of
``audio2expr.ensemble`` seeds when it is above 1) and scored on the group's whole
clips (train + validation parts) — speakers it never heard, as a new person is. The figure is
the jaw-coefficient correlation with the tracked one (mouth opening), the mean over the unseen
people, beside their lip vertex error. The held-out people (``splits["heldout"]``) are never
loaded.

With ``--adapt`` each unseen speaker is also adapted as a new person is (``fit_person`` on the
first ``style.frames`` frames of its train part) and the generic model, the style layer alone and
the person's model (fine-tuned copy + style layer) are all scored on its validation span, which
the adaptation never saw: ``mean_jaw_corr_{generic,style,adapted}`` and the paired difference
``adapted - style`` with a 95 % Student-t interval over speakers.

Command line (``--set`` overrides the profile's ``audio2expr`` settings, dotted keys)::

    python -m deadlib.audio2expr.crossval --cache-root real/data/prepared --steps 800 \\
        --set train.formant_warp=0.0 --out cv_nowarp.json

The ``audio2expr_crossval`` stage of real/dvc.yaml runs it with ``--adapt`` at the profile's own
settings, so the record of why ``audio2expr.style.finetune`` is on is rebuilt with the pipeline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from deadlib.audio2expr.stage import (
    A2EModel,
    a2e_settings,
    evaluate_clips,
    fit_person,
    load_person_clips,
    pretrain_ensemble,
)
from deadlib.core.config import merge_overrides, parse_overrides, write_settings
from deadlib.core.files import write_json
from deadlib.core.intervals import mean_ci
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


Clips = list[tuple[np.ndarray, np.ndarray]]  # (mel (M, 80), expr (N, K)) runs of face frames


def fold_models(settings: Mapping, cache_root: str | Path, folds: int = 3, progress: bool = False,
                training: Callable[[Clips], Clips] | None = None) -> Iterator[tuple[int, list[str], A2EModel, list[dict]]]:
    """(fold, unseen speakers, generic model, its histories) per speaker fold of ``cache_root``'s prior
    people: the model pre-trained as the ``train_audio2expr`` stage does (``pretrain_ensemble``) on the
    other folds' train parts, early-stopped on their validation spans. ``training`` maps those clips
    to the ones trained on (``deadlib.audio2expr.mixing`` adds another corpus's speech)."""
    cache_root = Path(cache_root)
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    prior = load_splits(cache_root)["prior"]
    window = settings["train"]["window"]
    for k, unseen in enumerate(speaker_folds(prior, folds)):
        seen = [n for n in prior if n not in unseen]
        clips = [c for n in seen for c in load_person_clips(cache_root, n, "train", min_len=window)]
        val = [c for n in seen for c in load_person_clips(cache_root, n, "val")]
        model, histories = pretrain_ensemble(settings, clips if training is None else training(clips), basis, "cpu",
                                             progress, val_clips=val)
        yield k, unseen, model, histories


def unseen_clips(cache_root: str | Path, name: str) -> Clips:
    """An unseen speaker's whole clip as it is scored: its train and validation parts."""
    return load_person_clips(cache_root, name, "train") + load_person_clips(cache_root, name, "val")


def cross_validate(settings: Mapping, cache_root: str | Path, folds: int = 3, progress: bool = False,
                   adapt: bool = False, training: Callable[[Clips], Clips] | None = None) -> dict[str, Any]:
    """Scores of ``settings`` on unseen prior speakers → {mean_jaw_corr, mean_lve_mm, people: [...]}
    (+ the adapted scores on their validation spans with ``adapt``, see the module's doc; ``training``
    as in ``fold_models``)."""
    cache_root = Path(cache_root)
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    style_only = {**settings, "style": {**settings["style"], "finetune": None}}
    people = []
    for k, unseen, model, histories in fold_models(settings, cache_root, folds, progress, training):
        best_steps = [history.get("best_step") for history in histories]
        for name in unseen:
            whole = unseen_clips(cache_root, name)
            if not whole:
                continue
            own_val = load_person_clips(cache_root, name, "val") if adapt else []  # the adaptation's scoring span
            scores = evaluate_clips(model, whole, basis, settings["chunk"])
            row = {"fold": k, "name": name, "frames": int(sum(len(e) for _, e in whole)),
                   "jaw_corr": scores["jaw_corr"], "lve_mean_mm": scores["lve_mean_mm"],
                   "best_step": best_steps[0] if len(best_steps) == 1 else best_steps}
            if adapt and own_val:
                variants = {"generic": model, "style": fit_person(model, cache_root, name, basis, style_only)[0]}
                variants["adapted"], fitted = fit_person(model, cache_root, name, basis, settings)
                row["finetune_steps"] = fitted["finetune_steps"]
                for label, m in variants.items():
                    val_scores = evaluate_clips(m, own_val, basis, settings["chunk"])
                    row[f"jaw_corr_{label}"], row[f"lve_mean_mm_{label}"] = val_scores["jaw_corr"], val_scores["lve_mean_mm"]
            people.append(row)
    result = {"folds": folds, "mean_jaw_corr": float(np.mean([p["jaw_corr"] for p in people])),
              "mean_lve_mm": float(np.mean([p["lve_mean_mm"] for p in people])), "people": people}
    adapted = [p for p in people if "jaw_corr_adapted" in p]
    if adapt and adapted:
        for key in ("jaw_corr", "lve_mean_mm"):
            for label in ("generic", "style", "adapted"):
                result[f"mean_{key}_{label}"] = float(np.mean([p[f"{key}_{label}"] for p in adapted]))
        gain = np.array([p["jaw_corr_adapted"] - p["jaw_corr_style"] for p in adapted])
        half = mean_ci(gain)[1]  # Student-t over the speakers; None for one speaker
        result.update(n_adapted=len(adapted), jaw_corr_gain_of_finetune=float(gain.mean()),
                      jaw_corr_gain_of_finetune_ci95=float("nan") if half is None else half,
                      finetune_better=int((gain > 0).sum()))
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m deadlib.audio2expr.crossval", description=__doc__.splitlines()[0])
    ap.add_argument("--cache-root", required=True, help="a prepared corpus (prepare stage output)")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the profile's)")
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                    help="override an audio2expr setting, e.g. train.formant_warp=0.0 (repeatable)")
    ap.add_argument("--adapt", action="store_true",
                    help="also adapt each unseen speaker (fine-tune + style layer) and score its validation span")
    ap.add_argument("--out", default=None, help="write the whole result (settings, every speaker) as JSON here")
    ap.add_argument("--metrics", default=None, help="write the flat summary here (+ its .settings.json), for DVC")
    args = ap.parse_args(argv)
    settings = override(a2e_settings(args.profile, args.params), args.assignments)
    if args.steps is not None:
        settings["train"]["steps"] = args.steps
    start = time.perf_counter()
    result = {"settings": settings, **cross_validate(settings, args.cache_root, args.folds, adapt=args.adapt),
              "seconds": round(time.perf_counter() - start, 1)}
    summary = {k: v for k, v in result.items() if k not in ("settings", "people")}
    print(json.dumps(summary))
    if args.out:
        write_json(args.out, result)
    if args.metrics:
        write_json(args.metrics, summary)
        write_settings(args.metrics, settings)
    return result


if __name__ == "__main__":
    main()
