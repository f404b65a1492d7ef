"""What a rerun of study cells moved: each cell's metrics now vs in an earlier commit, paired by cell.

    .venv/bin/python benchmarks/compare_study_records.py --before f06bdf8 --method scratch --name baseline_lr_rerun

``dvc metrics diff`` lists every number that changed, file by file; this answers the question a
reader asks of a rerun that changed a setting (e.g. the Baseline's learning rates): per N, the mean
of each metric before and after and the after − before difference paired by actor and seed, with
its 95 % Student-t interval. The validation columns (``val_*``, the score each cell selected its step
on) say whether the change helps on data the choice may see; the test columns are what the study
reports. Reads the study cells' metrics files (``<folder>/<method>_<actor>_n<N>_s<seed>.json``, no
ablation variants) in the working tree and, with ``git show``, in ``--before``.

Writes ``benchmarks/results/<name>.json`` (README's generated block of that name reads it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from deadlib.core.files import atomic_output
from deadlib.core.intervals import mean_ci, paired_summary
from deadlib.train.study_config import parse_cell_name

REPO = Path(__file__).resolve().parents[1]
KEYS = ("val_psnr_lower", "psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "lmd_mouth_px",
        "sync_expert_lse_c", "sync_expert_lse_d", "psnr", "selected_step")


def git_json(root: Path, commit: str, path: str) -> dict | None:
    """The JSON file ``path`` as committed in ``commit`` (None: not in that commit)."""
    done = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{path}"], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def git_commit(root: Path, ref: str) -> str:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", ref], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {ref!r} is not a commit of {root}: {done.stderr.strip()}")
    return done.stdout.strip()


def compare(root: Path, before: str, method: str, folder: str = "metrics/adapt", keys=KEYS) -> dict:
    """{"before", "method", "sizes": {N: {metric: {"before", "after", "difference"}}}, "cells"}."""
    pairs: dict[int, list[tuple[dict, dict]]] = {}
    names = []
    for path in sorted((root / folder).glob(f"{method}_*.json")):
        cell = parse_cell_name(path.stem)
        if cell is None or cell["method"] != method or cell["variant"]:
            continue                                     # sidecars (.settings, .reasons) and ablation variants
        old = git_json(root, before, f"{folder}/{path.name}")
        if old is None:
            continue
        pairs.setdefault(cell["n_frames"], []).append((old, json.loads(path.read_text())))
        names.append(path.stem)
    if not pairs:
        raise SystemExit(f"error: no {method} cell of {folder} is both in the working tree and in {before}")
    sizes = {}
    for n, cells in sorted(pairs.items()):
        sizes[str(n)] = {key: {"before": mean_ci([o.get(key) for o, _ in cells])[0],
                               "after": mean_ci([a.get(key) for _, a in cells])[0],
                               "difference": paired_summary([a[key] - o[key] for o, a in cells
                                                             if a.get(key) is not None and o.get(key) is not None])}
                         for key in keys}
    return {"before": git_commit(root, before), "method": method, "folder": folder, "cells": names, "sizes": sizes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="the commit whose records the working tree's are compared with")
    ap.add_argument("--method", choices=("prior", "scratch"), default="scratch")
    ap.add_argument("--folder", default="metrics/adapt")
    ap.add_argument("--name", required=True, help="results file name (benchmarks/results/<name>.json)")
    ap.add_argument("--root", type=Path, default=REPO, help="the workspace (a git checkout) holding the records")
    args = ap.parse_args(argv)
    if not args.name or Path(args.name).name != args.name or args.name.endswith(".json"):
        ap.error(f"--name {args.name!r}: a file name without folder or .json (written to benchmarks/results/<name>.json)")
    result = compare(args.root, args.before, args.method, args.folder)
    out = REPO / "benchmarks" / "results" / f"{args.name}.json"
    with atomic_output(out) as tmp:  # a failed run leaves the previous results file as it was
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO)} ({len(result['cells'])} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
