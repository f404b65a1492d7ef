"""Another corpus's speech mixed into audio-to-expression pre-training, measured on unseen speakers.

Issue 14 asks whether the synthetic corpus's speech helps audio-to-expression on real speech. Its
targets live in another expression basis (each prepared corpus fits its own, ``expr_basis.npz``),
so ``clips_in_basis`` re-encodes them: coefficients → the residual mesh of their own basis
(468 × 3, cm) → the weighted least-squares coefficients of this corpus's basis. ``mix_clips``
sets the share of training windows drawn from the other corpus (training samples windows
uniformly, so a list repeated k times weighs k times more). ``cross_validate_mixed`` is
``deadlib.audio2expr.crossval``'s generic-model scoring with the other corpus added to every
fold's pre-training: early stopping on the seen speakers' validation spans and the scores on the
unseen speakers' whole clips stay on this corpus only, and its held-out people are never loaded.

No pipeline stage imports it: the synthetic speech was measured and not adopted (README "Does the
synthetic corpus's speech help?", ``benchmarks/compare_a2e_variants.py --extra-cache``), and
``fold_models`` also trains the speaker folds of ``benchmarks/compare_a2e_ensemble.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from deadlib.audio2expr.crossval import speaker_folds
from deadlib.audio2expr.model import Audio2Expression
from deadlib.audio2expr.stage import evaluate_clips, load_person_clips, pretrain
from deadlib.data.dataset import load_splits
from deadlib.data.face3d import ExpressionBasis

Clips = list[tuple[np.ndarray, np.ndarray]]  # (mel (M, 80), expr (N, K)) runs of face frames


def clips_in_basis(cache_root: str | Path, names: list[str], basis: ExpressionBasis, split: str = "train",
                   min_len: int = 1) -> Clips:
    """``names``' clips from another prepared corpus with their expressions re-encoded in ``basis``
    (what ``basis`` cannot express is dropped)."""
    source = ExpressionBasis.load(Path(cache_root) / "expr_basis.npz")
    clips = [c for n in names for c in load_person_clips(cache_root, n, split, min_len=min_len)]
    return [(mel, basis.encode(source.offsets(expr))) for mel, expr in clips]


def mix_clips(own: Clips, extra: Clips, share: float | None, window: int = 1) -> Clips:
    """Training clips with ``extra`` drawing about ``share`` of the ``window``-frame windows:
    None = both as they are, 1 = ``extra`` only, 0 < share < 1 = the smaller side repeated to the
    nearest whole number of times."""
    if not extra or share is None:
        return own + extra
    if not 0 < share <= 1:
        raise ValueError(f"extra_share must be in (0, 1], got {share}")
    if share == 1 or not own:
        return list(extra)
    positions = lambda clips: sum(max(0, len(e) - window + 1) for _, e in clips)  # noqa: E731
    ratio = share / (1 - share) * positions(own) / max(1, positions(extra))  # wanted repeats of extra per own
    if ratio >= 1:
        return own + extra * round(ratio)
    return own * round(1 / ratio) + extra


def fold_models(settings: Mapping, cache_root: str | Path, extra: Clips | None = None, share: float | None = None,
                folds: int = 3) -> Iterator[tuple[int, list[str], Audio2Expression, dict]]:
    """(fold, unseen speakers, model, history) per speaker fold of ``cache_root``'s prior people: the
    model pre-trained as ``crossval.cross_validate`` does on the other folds' train parts (+ ``extra``
    at ``share``), early-stopped on their validation spans."""
    cache_root = Path(cache_root)
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    prior = load_splits(cache_root)["prior"]
    window = settings["train"]["window"]
    for k, unseen in enumerate(speaker_folds(prior, folds)):
        seen = [n for n in prior if n not in unseen]
        own = [c for n in seen for c in load_person_clips(cache_root, n, "train", min_len=window)]
        val = [c for n in seen for c in load_person_clips(cache_root, n, "val")]
        model, history = pretrain(settings, mix_clips(own, list(extra or []), share, window), basis, "cpu", False,
                                  val_clips=val)
        yield k, unseen, model, history


def unseen_clips(cache_root: str | Path, name: str) -> Clips:
    """An unseen speaker's whole clip as crossval scores it: its train and validation parts."""
    return load_person_clips(cache_root, name, "train") + load_person_clips(cache_root, name, "val")


def cross_validate_mixed(settings: Mapping, cache_root: str | Path, extra: Clips, share: float | None,
                         folds: int = 3) -> dict[str, Any]:
    """Generic-model scores of ``settings`` on unseen prior speakers of ``cache_root`` when every fold
    also pre-trains on ``extra`` at ``share`` → {mean_jaw_corr, mean_lve_mm, people: [...]}, the
    form of ``crossval.cross_validate`` (same folds, same validation, same scores)."""
    basis = ExpressionBasis.load(Path(cache_root) / "expr_basis.npz")
    people = []
    for k, unseen, model, history in fold_models(settings, cache_root, extra, share, folds):
        for name in unseen:
            whole = unseen_clips(cache_root, name)
            if whole:
                scores = evaluate_clips(model, whole, basis, settings["chunk"])
                people.append({"fold": k, "name": name, "frames": int(sum(len(e) for _, e in whole)),
                               "jaw_corr": scores["jaw_corr"], "lve_mean_mm": scores["lve_mean_mm"],
                               "best_step": history.get("best_step")})
    return {"folds": folds, "mean_jaw_corr": float(np.mean([p["jaw_corr"] for p in people])),
            "mean_lve_mm": float(np.mean([p["lve_mean_mm"] for p in people])), "people": people}
