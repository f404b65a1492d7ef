"""How a person's audio-to-expression gains from its own frames at several adaptation sizes, one fold model per fold.

    PYTHONPATH=. .venv/bin/python benchmarks/compare_a2e_adapt_frames.py [--ensemble 1] [--frames 100 250]
        [--out benchmarks/results/a2e_adapt_frames_one_model_real.json]

The real pipeline's ``audio2expr_crossval`` stage adapts each unseen prior speaker at ``style.frames``
(250) only. This runs the same speaker folds of the PRIOR people (``deadlib.audio2expr.crossval.fold_models``:
the generic model pre-trained on the other folds, early-stopped on their validation spans; held-out
people never loaded) at ``--ensemble`` members and adapts every unseen speaker at each ``--frames`` size
twice — the style layer alone and the fine-tuned copy + style layer (``fit_person``, at every size whatever
``style.finetune.min_frames`` says) — scoring each on
the speaker's validation span, which no adaptation saw. Per speaker: ``jaw_corr_whole`` (generic, whole
clip, as the stage's ``mean_jaw_corr``), ``jaw_corr_generic`` and ``jaw_corr_{style,adapted}_{frames}``
with their lip vertex errors. Used to compare one model with the ensemble on the same prepared corpus and
to choose ``audio2expr.style.finetune.min_frames`` (README "Does the gain survive the person's own fine-tune?").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deadlib.audio2expr.crossval import fold_models, unseen_clips
from deadlib.audio2expr.stage import (
    a2e_settings,
    evaluate_clips,
    fit_person,
    load_person_clips,
)
from deadlib.core.files import write_json
from deadlib.data.face3d import ExpressionBasis
from deadlib.tools.machine import describe

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-root", default="real/data/prepared")
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 250])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "a2e_adapt_frames_one_model_real.json"))
    args = ap.parse_args(argv)
    root = args.cache_root
    settings = {**a2e_settings("default", params_path=REPO / "params.yaml"), "ensemble": args.ensemble}
    basis = ExpressionBasis.load(Path(root) / "expr_basis.npz")
    # Per size, the style layer alone and the fine-tuned copy + style layer. The fine-tune is measured at
    # every size: the pipeline's min_frames threshold (set from this comparison) would otherwise skip it
    # below itself and make "adapted" equal "style" there.
    tune = {**settings["style"]["finetune"], "min_frames": 0}
    variants = {frames: {label: {**settings, "style": {**settings["style"], "frames": frames, "finetune": finetune}}
                         for label, finetune in (("style", None), ("adapted", tune))}
                for frames in args.frames}
    start, people = time.time(), []
    for k, unseen, model, _ in fold_models(settings, root, 3):
        for name in unseen:
            whole, own_val = unseen_clips(root, name), load_person_clips(root, name, "val")
            if not whole or not own_val:
                continue
            row = {"fold": k, "name": name,
                   "jaw_corr_whole": evaluate_clips(model, whole, basis, settings["chunk"])["jaw_corr"],
                   "jaw_corr_generic": evaluate_clips(model, own_val, basis, settings["chunk"])["jaw_corr"]}
            for frames, by_label in variants.items():
                for label, variant in by_label.items():
                    scores = evaluate_clips(fit_person(model, root, name, basis, variant)[0], own_val, basis,
                                            settings["chunk"])
                    row[f"jaw_corr_{label}_{frames}"] = scores["jaw_corr"]
                    row[f"lve_mean_mm_{label}_{frames}"] = scores["lve_mean_mm"]
            people.append(row)
            print(json.dumps(row), flush=True)
    result = {"machine": describe(), "ensemble": args.ensemble, "frames": args.frames,
              "seconds": time.time() - start, "people": people}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
