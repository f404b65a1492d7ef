"""One cell of the per-person style study (§3.4): the style layer of a held-out actor fitted on the
SAME first N frames its renderer is adapted on (the study's data sizes), scored on its test part.

The person's model is made exactly as ``deadlib.audio2expr.stage.fit_person`` makes it for the
``audio2expr.style.frames`` frames of the train_audio2expr stage: a fine-tuned copy of the
pre-trained model (when N reaches ``style.finetune.min_frames``) and the 2K-parameter ``StyleLayer``
(scale and bias per expression coefficient). The flat metrics say whether
the person's model helps at this N: lip vertex error (mm) and jaw correlation on the actor's test part with
the generic model (``*_before``), with the person's model (``*_after``) and of a still neutral face
(``lve_mean_mm_static``). The layer is written where ``dub --style`` can take it.

Command line (the ``style`` matrix stage of dvc.yaml)::

    python -m deadlib.audio2expr.style_stage --identity synth_h00 --n-frames 100 \\
        --a2e models/audio2expr/audio2expr.pt --cache-root data/prepared \\
        --out models/style/synth_h00_n100.pt --metrics metrics/style/synth_h00_n100.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from deadlib.audio2expr.stage import (
    a2e_settings,
    basis_digest,
    fit_person,
    load_a2e,
    load_person_clips,
    save_style,
    score_person,
)
from deadlib.core.config import write_settings
from deadlib.core.files import write_json
from deadlib.data.dataset import load_splits
from deadlib.data.face3d import ExpressionBasis


class StyleStageError(ValueError):
    """The style cell cannot run with these inputs; the message says why and what to do."""


def run_style_cell(identity: str, n_frames: int, a2e_path: str | os.PathLike, cache_root: str | os.PathLike,
                   out_path: str | os.PathLike, metrics_path: str | os.PathLike, profile: str | None = None,
                   params_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fit ``identity``'s style layer on its first ``n_frames`` train frames; write layer + flat metrics."""
    cache_root = Path(cache_root)
    if identity in load_splits(cache_root)["prior"]:
        raise StyleStageError(f"{identity!r} is a prior identity (the audio-to-expression model trained on it); "
                              "pick a held-out one")
    settings = a2e_settings(profile, params_path)
    base, info = load_a2e(a2e_path)
    basis = ExpressionBasis.load(cache_root / "expr_basis.npz")
    if info["basis_digest"] != basis_digest(basis):
        raise StyleStageError(f"{a2e_path} was trained for another expression basis than {cache_root}/expr_basis.npz; "
                              "re-run train_audio2expr after prepare")
    test = load_person_clips(cache_root, identity, "test")
    if not test:
        raise StyleStageError(f"{identity}: no tracked face frames in its test part; nothing to score on")
    person, history = fit_person(base, cache_root, identity, basis, settings, n_frames=n_frames)
    fitted = sum(len(e) for _, e in load_person_clips(cache_root, identity, "train", n_frames))
    scores = score_person(person, base, test, basis, settings["chunk"])
    save_style(out_path, person, base, identity, {"frames": int(n_frames), "fitted_frames": fitted,
                                                  "finetune_steps": history["finetune_steps"]})
    metrics: dict[str, float] = {"n_frames": int(n_frames), "fitted_frames": int(fitted),
                                 "finetune_steps": history["finetune_steps"],
                                 "style_steps": len(history["loss"]), "style_final_loss": float(history["loss"][-1]),
                                 "lve_mean_mm_static": scores["static_lve_mean_mm"],
                                 "scale_mean_abs_dev": float((person.style.scale - 1).abs().mean()),
                                 "bias_mean_abs": float(person.style.bias.abs().mean())}
    for when in ("before", "after"):
        metrics.update({f"{k}_{when}": float(scores[when][k]) for k in ("lve_mean_mm", "lve_max_mm", "jaw_corr")})
    metrics["lve_gain_mm"] = metrics["lve_mean_mm_before"] - metrics["lve_mean_mm_after"]   # > 0: the layer helps
    if not all(np.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"non-finite style metrics for {identity} at N={n_frames}: {metrics}")
    write_json(metrics_path, metrics)
    write_settings(metrics_path, {"style": settings["style"], "chunk": settings["chunk"], "profile": settings["profile"]})
    return {"metrics": metrics, "model": person, "scores": scores, "history": history}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m deadlib.audio2expr.style_stage`` — one (identity, N) style cell."""
    ap = argparse.ArgumentParser(prog="python -m deadlib.audio2expr.style_stage", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--params", default=None)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--n-frames", type=int, required=True)
    ap.add_argument("--a2e", default="models/audio2expr/audio2expr.pt")
    ap.add_argument("--cache-root", default="data/prepared")
    ap.add_argument("--out", required=True, help="style-layer file to write (e.g. models/style/<id>_n<N>.pt)")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args(argv)
    out = run_style_cell(args.identity, args.n_frames, args.a2e, args.cache_root, args.out, args.metrics,
                         args.profile, args.params)
    print(json.dumps(out["metrics"], indent=2))
    return out


if __name__ == "__main__":
    main()
