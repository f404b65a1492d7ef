"""Another corpus's speech mixed into audio-to-expression pre-training, measured on unseen speakers.

Issue 14 asks whether the synthetic corpus's speech helps audio-to-expression on real speech. Its
targets live in another expression basis (each prepared corpus fits its own, ``expr_basis.npz``),
so ``clips_in_basis`` re-encodes them: coefficients → the residual mesh of their own basis
(468 × 3, cm) → the weighted least-squares coefficients of this corpus's basis. ``mix_clips``
sets the share of training windows drawn from the other corpus (training samples windows
uniformly, so a list repeated k times weighs k times more). ``deadlib.audio2expr.crossval.cross_validate``
with ``training=lambda own: mix_clips(own, extra, share, window)`` adds the other corpus to every
fold's pre-training: early stopping on the seen speakers' validation spans and the scores on the
unseen speakers' whole clips stay on this corpus only, and its held-out people are never loaded.

No pipeline stage imports it: the synthetic speech was measured and not adopted (README "Does the
synthetic corpus's speech help?", ``benchmarks/compare_a2e_variants.py --extra-cache``).
"""

from __future__ import annotations

from pathlib import Path

from deadlib.audio2expr.crossval import Clips
from deadlib.audio2expr.stage import load_person_clips
from deadlib.data.face3d import ExpressionBasis


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
