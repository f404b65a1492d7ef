"""Is the real prior short of training on 2 cores? Its length, judged on the held-out people (issue 14).

    .venv/bin/python benchmarks/compare_prior_steps.py [--corpus real] [--steps 3600 4800 6000] [--n-frames 100] \
        [--seeds 0]

When this was written the real pipeline's prior trained ``train_prior.steps`` (1200 at the default
profile, ≈ 17 min on 2 cores), and its own validation PSNR on the prior people was still rising when it
stopped (``real/models/prior/dvclive``). Its answer (3600 steps: every held-out cell better on
validation) is now the real prior's own length, ``real_study.prior_steps`` (``deadlib.train.real_prior``),
so for the real corpus ``--steps`` starts at 3600; the synthetic prior still trains 1200. Rendering the
clip's own TRACKED expressions, the adapted renderer puts the lips ≈ 1.0–1.3 px (at 256 px) from the
real ones (the ``reenact`` stages' ``tracked`` column), while a perfect 128 px render pasted the same
way is 0.3–0.4 px off: the renderer's fidelity, not its resolution, holds the lip landmark distance
above issue 14's 1.0 px. This asks whether more prior training buys fidelity on people the prior never
saw.

Each ``--steps`` K above the recorded prior's continues it (``python -m deadlib.train.prior --resume
always --set steps=K``; the rates are constant, and a resume is exact on CPU, so these are the weights a
fresh K-step run reaches) into ``--work/prior_K``, each from the longest shorter one. Every prior is then
fine-tuned into the study's Ours cell of each held-out person (``real_study.identities``, the first
``--n-frames`` frames, the real study's rates: ``deadlib.train.ours_rates``, validation step selection;
``--corpus synthetic``: ``study.identities`` and ``adapt``'s rates, as the synthetic study's Ours cells)
and scored on the person's VALIDATION span only (the test parts are never read):

- ``val_psnr_lower`` / ``val_psnr`` / ``val_ssim``: the cell's in-training validation at its selected step;
- ``lmd_mouth_px`` (lip landmark distance at 256 px, as the ``reenact`` stages measure it) and
  ``mouth_open_r`` (FaceMesh mouth opening of the render vs the real frames): the cell's renders of
  its validation span, pasted into the native frames with the dub's blend (``deadlib.dub.render.composite``),
  cropped at 256 px, against the real frames — renderer fidelity given the tracked geometry;
- for reference the same two for the prepared crop itself pasted back (a perfect 128 px render).

Plus each prior's own validation on the prior people (its last evaluation). Differences are paired
by person and seed against the first ``--steps``. Writes ``benchmarks/results/prior_steps_<corpus>.json`` (or ``--name``)
(README blocks ``prior_steps``, ``prior_steps_synthetic``, ``prior_steps_4800``); cells and priors stay in ``--work`` (reused: a
cut-short run resumes). Needs the pipeline's ``prepare`` and ``train_prior`` (``dvc repro [real/dvc.yaml]``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from deadlib.core.config import load_params, stage_config
from deadlib.core.intervals import mean_ci, paired_summary
from deadlib.core.measures import pearson
from deadlib.data import face3d
from deadlib.data.crop import crop_frame
from deadlib.dub.dubbing import dub_settings
from deadlib.dub.render import composite
from deadlib.eval.lip_metrics import detect_landmarks, landmark_distance
from deadlib.tools.machine import describe
from deadlib.train.ours_rates import write_ours_params
from deadlib.train.prior import read_live_series

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_texture_init import (  # noqa: E402
    CORPORA,
    REPO,
    run_variant_cell,
    variant_cell_name,
    write_results,
)
from compare_upscale import lower_paste_mask, rendered_frames, span_frames  # noqa: E402

METRICS = {"real": "real/metrics/train_prior.json", "synthetic": "metrics/train_prior.json"}  # the prior's record
LMD_SIZE = 256          # the reenact stages' reenact.lmd_size: landmarks on 256 px face crops
VAL_KEYS = ("psnr_lower", "psnr", "ssim")
FIDELITY_KEYS = ("lmd_mouth_px", "mouth_open_r")


def prior_steps(folder: Path) -> int | None:
    """The step a prior folder's training reached (its metrics file), None when it has none."""
    metrics = folder / "metrics.json"
    return json.loads(metrics.read_text())["steps"] if metrics.is_file() else None


def pipeline(corpus: str) -> tuple[Path, Path, int | None]:
    """``corpus``'s prepared cache, recorded prior folder and the steps that prior trained (None
    without its metrics record)."""
    _, cache, prior = CORPORA[corpus]
    record = REPO / METRICS[corpus]
    return REPO / cache, REPO / prior, json.loads(record.read_text())["steps"] if record.is_file() else None


def ensure_prior(steps: int, work: Path, profile: str, corpus: str) -> Path:
    """The prior folder trained to ``steps``: ``corpus``'s recorded one, or ``work/prior_<steps>``
    continued from the longest shorter prior there is (trained here when missing)."""
    import shutil

    from deadlib.train.prior import main as train_prior_main

    cache, recorded, recorded_steps = pipeline(corpus)
    if steps == recorded_steps:
        return recorded
    out = work / f"prior_{steps}"
    if prior_steps(out) == steps:
        return out
    trained = {recorded_steps: recorded}
    for folder in work.glob("prior_*"):
        reached = prior_steps(folder)
        if reached is not None and folder.name == f"prior_{reached}":
            trained[reached] = folder
    start = max(k for k in trained if k < steps)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(trained[start], out)
    (out / "metrics.json").unlink(missing_ok=True)          # the copy's record is not this run's
    print(f"training the prior from step {start} to {steps} in {out}", flush=True)
    train_prior_main(["--profile", profile, "--cache-root", str(cache), "--out", str(out),
                      "--metrics", str(out / "metrics.json"), "--set", f"steps={steps}", "--resume", "always",
                      "--no-progress"])
    return out


def prior_validation(folder: Path) -> dict:
    """The prior's last in-training validation on the prior people ({metric: value})."""
    series = read_live_series(folder / "dvclive", "val/")
    return {key.removeprefix("val/"): float(values[-1]) for key, (_, values) in series.items()}


def fidelity(pairs, blend: dict, resolution: int) -> dict:
    """Lip landmark distance (256 px) and mouth-opening r of pasted renders vs the real frames.

    ``pairs``: (native frame, render (S, S, 3), frame → crop affine, packed mask) per frame."""
    mine, real = [], []
    for frame, render, affine, packed in pairs:
        pasted = composite(frame, render, affine, lower_paste_mask(packed, blend, resolution), blend)
        big = affine * (LMD_SIZE / resolution)
        mine.append(crop_frame(pasted, big, LMD_SIZE))
        real.append(crop_frame(frame, big, LMD_SIZE))
    ours, truth = detect_landmarks(np.stack(mine), upscale=None), detect_landmarks(np.stack(real), upscale=None)
    lmd, rate, _ = landmark_distance(ours, truth)
    both = np.isfinite(ours).all((1, 2)) & np.isfinite(truth).all((1, 2))
    r = pearson(face3d.mouth_gap(ours[both]), face3d.mouth_gap(truth[both])) if both.sum() >= 10 else None
    return {"lmd_mouth_px": lmd, "mouth_open_r": r, "landmark_rate": rate, "frames": len(mine)}


def summarise(people: dict, steps: list[int], seeds: list[int]) -> dict:
    """Per prior length: means over person × seed of every score, and the paired difference to the first."""
    base = str(steps[0])
    keys = [f"val_{k}" for k in VAL_KEYS] + list(FIDELITY_KEYS)
    out = {}
    for k in map(str, steps):
        runs = [people[p][k][str(s)] for p in people for s in seeds]
        entry = {key: mean_ci([r[key] for r in runs])[0] for key in (*keys, "selected_step", "train_seconds")}
        if k != base:
            entry["vs_first"] = {key: paired_summary([people[p][k][str(s)][key] - people[p][base][str(s)][key]
                                                      for p in people for s in seeds
                                                      if people[p][k][str(s)][key] is not None
                                                      and people[p][base][str(s)][key] is not None])
                                 for key in keys}
        out[k] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="real")
    ap.add_argument("--steps", type=int, nargs="+", default=None,
                    help="prior lengths; the first is the paired reference, the recorded prior's length "
                         "(default: it, + 1200, + 2400)")
    ap.add_argument("--n-frames", type=int, default=None, help="adaptation frames (default the study's ablation_size)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--work", type=Path, default=None, help="priors and cells (default /tmp/prior_steps_<corpus>)")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--name", default=None, help="results file stem (default prior_steps_<corpus>)")
    args = ap.parse_args(argv)
    cache, recorded, recorded_steps = pipeline(args.corpus)
    if not (cache / "splits.json").is_file() or not (recorded / "checkpoint.pt").is_file() or recorded_steps is None:
        raise SystemExit(f"the {args.corpus} pipeline's prepare and train_prior outputs are missing: run "
                         f"`dvc repro {'real/dvc.yaml:' if args.corpus == 'real' else ''}train_prior` first")
    args.steps = args.steps or [recorded_steps, recorded_steps + 1200, recorded_steps + 2400]
    if args.steps[0] != recorded_steps or sorted(args.steps) != args.steps:
        raise SystemExit(f"--steps must be ascending and start at the recorded prior's {recorded_steps} steps")
    params = load_params(REPO / "params.yaml")
    study = params[CORPORA[args.corpus][0]]
    n_frames = args.n_frames or int(study["ablation_size"])
    args.work = args.work or Path(f"/tmp/prior_steps_{args.corpus}")
    args.work.mkdir(parents=True, exist_ok=True)
    # the study's Ours rates: the real study's derived ones; the synthetic Ours cells read adapt's directly
    cell_params = (write_ours_params(REPO / "params.yaml", args.work / "params_ours.yaml") if args.corpus == "real"
                   else REPO / "params.yaml")
    blend = dub_settings(args.profile, REPO / "params.yaml")["blend"]
    resolution = int(stage_config("prepare", args.profile, params_path=REPO / "params.yaml")["resolution"])

    priors = {str(k): {"folder": str(ensure_prior(k, args.work, args.profile, args.corpus))} for k in args.steps}
    for entry in priors.values():
        entry["validation"] = prior_validation(Path(entry["folder"]))
        print(f"prior {entry['folder']}: validation {entry['validation']}", flush=True)
    people: dict[str, dict] = {}
    ceiling: dict[str, dict] = {}
    for person in study["identities"]:
        folder = cache / person
        ceiling[person] = fidelity(span_frames(folder, "val", 1), blend, resolution)
        print(f"{person}: perfect 128 px render {ceiling[person]}", flush=True)
        people[person] = {}
        for k in map(str, args.steps):
            people[person][k], variant = {}, f"prior{k}"
            for seed in args.seeds:
                cell = run_variant_cell(args.corpus, person, variant, cell_params, n_frames, seed, args.work,
                                        prior_dir=Path(priors[k]["folder"]))
                step = cell["selected_step"]
                scores = {f"val_{key}": cell["val"].get(key, {}).get(step) for key in VAL_KEYS}
                cell_dir = args.work / variant_cell_name(variant, person, n_frames, seed)
                scores |= fidelity(rendered_frames(cell_dir, folder, n_frames), blend, resolution)
                people[person][k][str(seed)] = {**scores, "selected_step": step,
                                                "train_seconds": cell["train_seconds"]}
                print(f"  prior {k} steps, seed {seed}: {people[person][k][str(seed)]}", flush=True)
    summary = summarise(people, args.steps, args.seeds)
    for k, entry in summary.items():
        diffs = "  ".join(f"{key} {d['mean']:+.3f} ± {d['ci95'] or 0:.3f} ({d['higher']}/{d['n']})"
                          for key, d in entry.get("vs_first", {}).items() if d)
        print(f"prior {k:>5} steps: lmd {entry['lmd_mouth_px']:.3f} px, val psnr_lower {entry['val_psnr_lower']:.2f}  {diffs}")
    result = {"machine": describe(), "corpus": args.corpus, "profile": args.profile, "n_frames": n_frames,
              "seeds": args.seeds,
              "steps": args.steps, "blend": blend, "lmd_size": LMD_SIZE, "priors": priors, "people": people,
              "perfect_render": ceiling, "summary": summary}
    if not args.no_save:
        write_results(args.name or f"prior_steps_{args.corpus}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
