"""README tables generated from the committed metrics files — never typed by hand.

Every results table of README.md sits between a pair of markers

    <!-- generated:NAME -->  ...  <!-- /generated:NAME -->

and is rebuilt from ``metrics/`` by this module; a unit test fails when README and metrics
disagree, so a rerun that moves a number cannot leave a stale table behind. Tables show every
metric the stage writes (``null`` = not computable here, shown as —), whichever way it points.

    python -m deadlib.tools.readme_tables            # rewrite README.md's generated blocks
    python -m deadlib.tools.readme_tables --check    # exit 1 (listing the blocks) when README is stale

It refuses to rewrite README while a metrics file that git tracks is missing from the workspace:
DVC deletes a stage's outputs when the stage starts, so during a run the README would otherwise
say "does not exist yet" for results that are committed (``--allow-missing`` overrides).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from deadlib.core.config import load_params
from deadlib.core.intervals import mean_ci
from deadlib.eval.study import (
    ABLATION_METRICS,
    CURVE_METRICS,
    LABELS,
    LOWER_IS_BETTER,
    NO_DIRECTION,
    SIZE_LABELS,
    ablation_table,
    derived_rows,
    difference_table,
    expected_cells,
    fmt_ci,
    load_cells,
    markdown_table,
    paired_differences,
    style_table,
    summarise,
)
from deadlib.reenact.selfdub import DRIVES
from deadlib.tools.findings import (
    GENERATED,
    REENACT_TARGETS,
    actor_means,
    actor_pairs,
    actor_wins,
    reenact_findings,
    study_findings,
)
from deadlib.tools.lock_status import (
    CURRENT,
    NOT_RUN,
    STALE,
    state_of_output,
    status_table,
)
from deadlib.train.study_config import parse_cell_name

BLOCK = re.compile(r"(<!-- generated:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.S)


def _fmt(value: Any) -> str:
    """Numbers with 4 significant digits (ints as ints); None → —."""
    if value is None:
        return "—"
    if isinstance(value, bool) or isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                                              and abs(value) >= 1):
        return str(int(value))
    return f"{value:.4g}"


def _fmt_paired(d: dict | None, absent: str = "—") -> str:
    """A paired difference from ``deadlib.core.intervals.paired_summary``: mean ± 95 % (pairs higher / pairs)."""
    if d is None:
        return absent
    half = d["ci95"]
    spread = "" if half is None or not math.isfinite(half) else f" ± {half:.3f}"
    return f"{d['mean']:+.3f}{spread} ({d['higher']}/{d['n']})"


def _source(*paths: str) -> str:
    return f"_Generated from {' and '.join(f'`{p}`' for p in paths)} by `python -m deadlib.tools.readme_tables`._\n"


def _seeds(seeds: list[int]) -> str:
    """'seed 0' or 'seeds 0, 1' for a results file's seed list."""
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)}"


def flat_table(root: Path, label: str) -> str:
    """The flat metrics JSON ``root/label`` as a two-column table, every key in file order."""
    path = root / label
    if not path.is_file():
        return f"_`{label}` does not exist yet: run its DVC stage (`dvc repro`)._\n"
    metrics = json.loads(path.read_text())
    return (markdown_table(["metric", "value"], [[k, _fmt(v)] for k, v in metrics.items()]) + "\n"
            + _record_note(root, [label]) + _source(label))


def _is_dvc_repo(root: Path) -> bool:
    return (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file()


def _record_note(root: Path, outputs: list[str]) -> str:
    """A line saying which of ``outputs`` the code on this commit would not reproduce ('' when all would)."""
    if not _is_dvc_repo(root):
        return ""
    states = {path: state_of_output(root, path) for path in outputs}
    old = [p for p, state in states.items() if state in (STALE, NOT_RUN)]
    if not old:
        return ""
    return (f"_**Older record**: the code, params or inputs on this commit differ from what made "
            f"{'it' if len(outputs) == 1 else f'{len(old)} of these {len(outputs)}'} "
            f"(`python -m deadlib.tools.lock_status --stale` says what changed)._\n\n")


def _study_cells(root: Path, section: str = "study", metrics_dir: str = "metrics/adapt") -> tuple[dict, list[dict]]:
    """(params' study section, the committed cells of its identities)."""
    study = load_params(root / "params.yaml")[section]
    folder = root / metrics_dir
    cells = load_cells(folder) if folder.is_dir() else []
    return study, [r for r in cells if r["identity"] in study["identities"]]


def study_tables(root: Path, section: str = "study", metrics_dir: str = "metrics/adapt") -> str:
    """Size study: one row per (metric, method or floor), one column per N, "mean ± 95 % interval"
    over actors × seeds; then Ours − Baseline paired by run. Every metric the harness computes."""
    study, rows = _study_cells(root, section, metrics_dir)
    if not rows:
        return f"_No cell of `{metrics_dir}` exists yet: run the study stages._\n"
    summary = summarise([*rows, *derived_rows(rows)], CURVE_METRICS)
    sizes = sorted({int(r["n_frames"]) for r in rows if r["label"] in ("Baseline", "Ours")})
    table = []
    for metric in CURVE_METRICS:
        arrow = "" if metric in NO_DIRECTION else " ↓" if metric in LOWER_IS_BETTER else " ↑"
        for label in SIZE_LABELS:
            cells = [fmt_ci(summary.get((label, n)), metric) for n in sizes]
            if label in ("Baseline", "Ours") or any(c != "—" for c in cells):
                table.append([metric + arrow, label, *cells])
    runs = {label: sorted({(n, summary[(label, n)]["n_runs"]) for (lab, n) in summary if lab == label})
            for label in ("Baseline", "Ours")}
    header, diffs = difference_table(paired_differences(rows, CURVE_METRICS), CURVE_METRICS, sizes)
    counts = "; ".join(f"{label}: " + ", ".join(f"N={n}: {k}" for n, k in runs[label]) for label in runs)
    return (markdown_table(["metric", "method", *[f"N={n}" for n in sizes]], table)
            + f"\nParams ask for held-out identities {', '.join(study['identities'])} × seeds {study.get('seeds', [0])}; "
            f"runs found per cell: {counts}. ± = half-width of the 95 % Student-t interval over runs "
            "(none for a single run).\n\n"
            + markdown_table(header, diffs)
            + "\nPaired by actor and seed; * = the 95 % interval of the difference excludes 0.\n\n"
            + _record_note(root, _metrics_files(root, metrics_dir)) + _source(f"{metrics_dir}/*.json"))


def _metrics_files(root: Path, folder: str) -> list[str]:
    """The cells' metrics files of ``folder`` (settings files excluded), repository-relative."""
    return sorted(f"{folder}/{p.name}" for p in (root / folder).glob("*.json")
                  if not p.name.endswith((".settings.json", ".reasons.json")))


ACTOR_METRICS = GENERATED  # the generated region


def _steps(cells: list[dict]) -> str:
    """"kept / trained" optimiser steps of a method's cells (mean over seeds): the validation-selected
    step whose weights were scored and the steps run; cells from before selection show "—"."""
    kept, trained = (mean_ci([c.get(k) for c in cells])[0] for k in ("selected_step", "steps"))
    return "—" if kept is None or trained is None else f"{kept:.0f} / {trained:.0f}"


def actor_table(root: Path, section: str = "study", metrics_dir: str = "metrics/adapt") -> str:
    """Ours vs Baseline actor by actor at every N (mean over seeds), on the generated-region metrics:
    with three actors an average can hide a person for whom the prior loses, so the sign is shown
    per person and counted."""
    _, rows = _study_cells(root, section, metrics_dir)
    pairs = actor_pairs(rows)
    if not pairs:
        return f"_No actor of `{metrics_dir}` has both an Ours and a Baseline cell yet._\n"
    table = []
    for (ident, n), cells_of in pairs.items():
        cells = []
        for m in ACTOR_METRICS:
            ours, base = actor_means(cells_of, m)
            if ours is None or base is None:
                cells.append("—")
                continue
            digits = 3 if "ssim" in m else 2
            cells.append(f"{ours:.{digits}f} vs {base:.{digits}f} ({ours - base:+.{digits}f})")
        table.append([ident, str(n), str(len(cells_of["Ours"])), *cells,
                      " · ".join(_steps(cells_of[label]) for label in ("Ours", "Baseline"))])
    header = ["actor", "N", "seeds", *[m + (" ↓" if m in LOWER_IS_BETTER else " ↑") for m in ACTOR_METRICS],
              "steps kept / trained (Ours · Baseline)"]
    tally = "; ".join(f"{m} {w} of {k}" for m, (w, k) in actor_wins(pairs, ACTOR_METRICS).items())
    return (markdown_table(header, table)
            + f"\nOurs vs Baseline (Ours − Baseline), mean over seeds. Ours better in: {tally} actor × N pairs. "
            "Steps: the validation-selected step whose weights were scored / the steps trained before "
            "patience ran out (or the budget). "
            + _source(f"{metrics_dir}/*.json"))


def study_status(root: Path, section: str = "study", metrics_dir: str = "metrics/adapt", ablations: bool = True) -> str:
    """Which of the cells the study's params ask for have a metrics file: a table built from an
    incomplete study says so itself. ``ablations`` False: the pipeline runs no ablation cells."""
    study = dict(load_params(root / "params.yaml")[section])
    if not ablations:
        study.pop("ablation_size", None)
    expected = expected_cells(study)
    have = {p.stem for p in (root / metrics_dir).glob("*.json")} if (root / metrics_dir).is_dir() else set()
    missing = [name for name in expected if name not in have]
    groups: dict[tuple[int, int, str], int] = {}
    for name in missing:
        cell = parse_cell_name(name) or {}
        key = (cell.get("n_frames", 0), cell.get("seed", 0), cell.get("variant") or "")
        groups[key] = groups.get(key, 0) + 1
    listed = "; ".join(f"N = {n}, seed {seed}{f' ({v})' if v else ''}: {k}" for (n, seed, v), k in sorted(groups.items()))
    grid = (f"{len(study['identities'])} actors × N {', '.join(map(str, study['sizes']))} × seeds "
            f"{', '.join(map(str, study.get('seeds', [0])))} × {' / '.join(study.get('methods', ['prior', 'scratch']))}"
            + (f" + 2 ablations × {len(study['identities'])} actors at N = {study['ablation_size']}"
               if study.get("ablation_size") is not None else ""))
    state = "**complete**" if not missing else f"**incomplete**: {len(missing)} missing ({listed})"
    return (f"Cells asked for by `params.yaml` `{section}` ({grid}): {len(expected)}; with a metrics file in "
            f"`{metrics_dir}`: {len(expected) - len(missing)} — {state}.{_cells_current(root, expected, have, metrics_dir)}\n\n"
            + _source("params.yaml", f"{metrics_dir}/*.json",
                      *([f"{metrics_dir.split('/')[0]}/dvc.lock" if metrics_dir.startswith("real/") else "dvc.lock"]
                        if _is_dvc_repo(root) else [])))


def _cells_current(root: Path, expected: list[str], have: set[str], metrics_dir: str) -> str:
    """' Of those, made by the code on this commit: k (...)' from the lock records; '' outside a DVC repo."""
    if not _is_dvc_repo(root):
        return ""
    present = [name for name in expected if name in have]
    states = {name: state_of_output(root, f"{metrics_dir}/{name}.json") for name in present}
    current = [n for n, st in states.items() if st == CURRENT]
    if len(current) == len(present):
        return " Every one of them was made by the code, params and inputs on this commit (`dvc.lock`)."
    by_method: dict[str, list[int]] = {}
    for name, st in states.items():
        cell = parse_cell_name(name) or {}
        label = LABELS.get((cell.get("method"), cell.get("variant") or ""), name)
        counts = by_method.setdefault(label, [0, 0])
        counts[st == CURRENT] += 1
    parts = ", ".join(f"{label} {ok} of {ok + old}" for label, (old, ok) in sorted(by_method.items()))
    return (f" Of those, made by the code, params and inputs on this commit: **{len(current)}** ({parts}); the "
            f"other {len(present) - len(current)} are older records (`dvc.lock`), so the tables below mix code versions "
            "until they are rerun.")


def pipeline_status(root: Path, pipeline: str = "dvc.yaml") -> str:
    """Stage by stage: how many lock records the code on this commit would reproduce (deadlib.tools.lock_status)."""
    if not _is_dvc_repo(root):
        return "_Not a DVC repository._\n"
    rows = status_table(root, pipeline)
    total = sum(int(r[1]) for r in rows)
    current = sum(int(r[2]) for r in rows)
    rest = "every one of them" if current == total else f"**{current}**"
    return (f"Of the {total} stage records of `{pipeline}`, {rest} {'was' if current == total else 'were'} made by "
            f"the code, params and inputs on this commit{'' if current == total else '; the rest are older records or were never run'}:\n\n"
            + markdown_table(["stage", "entries", "current", "older record", "not run", "why not current"], rows)
            + "\n" + _source(pipeline, pipeline.replace("dvc.yaml", "dvc.lock")))


def findings_block(root: Path, section: str = "study", metrics_dir: str = "metrics/adapt",
                   dub: str | None = "metrics/dub.json") -> str:
    """The study's findings in sentences (deadlib.tools.findings), from the same cells as the tables."""
    study, rows = _study_cells(root, section, metrics_dir)
    if not rows:
        return f"_No cell of `{metrics_dir}` exists yet: run the study stages._\n"
    params = load_params(root / "params.yaml")
    sizes = sorted({int(r["n_frames"]) for r in rows if r["label"] in ("Baseline", "Ours")})
    summary = summarise([*rows, *derived_rows(rows)], CURVE_METRICS)
    dub_path = root / dub if dub else None
    dub_metrics = json.loads(dub_path.read_text()) if dub_path is not None and dub_path.is_file() else None
    text = study_findings(rows, summary, sizes, params.get("adapt", {}).get("steps"), study.get("ablation_size"),
                          dub_metrics)
    return text + "\n" + _source(f"{metrics_dir}/*.json", *([dub] if dub_metrics else []))


def ablation_block(root: Path) -> str:
    study, rows = _study_cells(root)
    header, table = ablation_table(summarise([*rows, *derived_rows(rows)], ABLATION_METRICS),
                                   int(study["ablation_size"]), ABLATION_METRICS)
    ablation_cells = [f"metrics/adapt/{Path(r['file']).name}" for r in rows if r.get("variant")]
    return (markdown_table(header, [[*r[:-1], _fmt(r[-1])] for r in table])
            + f"\nN = {study['ablation_size']}.\n\n" + _record_note(root, ablation_cells) + _source("metrics/adapt/*.json"))


def style_block(root: Path, folder: str = "metrics/style") -> str:
    if not (root / folder).is_dir():
        return f"_`{folder}` does not exist yet: run the style stages._\n"
    header, table = style_table(root / folder)
    return (markdown_table(header, [list(map(_fmt, r)) for r in table]) + "\n"
            + _record_note(root, _metrics_files(root, folder)) + _source(f"{folder}/*.json"))


DRIVE_LABELS = {"own": "own speech", "silence": "silence (floor)", "other": "other speaker (leak control)",
                "tts": "espeak-ng voice", "tracked": "own tracked expressions (renderer ceiling)"}
TARGET_TEXT = {">=": "≥ {}", "<=": "≤ {}", "abs<=": "0 ± {}"}  # how a findings.REENACT_TARGETS rule is shown


def _reenact_reports(root: Path, folder: str) -> dict[str, dict]:
    """{actor: its self-reenactment metrics} of ``folder`` (no settings / reasons side files), by actor name."""
    files = sorted((root / folder).glob("*.json")) if (root / folder).is_dir() else []
    return {f.stem: json.loads(f.read_text()) for f in files if not f.name.endswith((".settings.json", ".reasons.json"))}


def _no_reenact(folder: str) -> str:
    return f"_No file in `{folder}` yet: run `dvc repro real/dvc.yaml` (its reenact stages)._\n"


def reenact_block(root: Path, folder: str = "real/metrics/reenact") -> str:
    """Self-reenactment of the real held-out actors: per actor, every metric of every model set ×
    drive next to the ground truth; then, for issue 14's target metrics, the mean over actors of
    every model set × drive."""
    reports = _reenact_reports(root, folder)
    if not reports:
        return _no_reenact(folder)
    sets = list(load_params(root / "params.yaml")["reenact"]["model_sets"])
    out, loaded = [], []
    for actor, m in reports.items():
        columns = [(s, d) for s in sets for d in DRIVES if any(k.startswith(f"{s}_{d}_") for k in m)]
        metrics = list(dict.fromkeys(k[len(f"{s}_{d}_"):] for k in m for s, d in columns if k.startswith(f"{s}_{d}_")))
        rows = []
        for metric in metrics:
            arrow = " ↓" if metric in LOWER_IS_BETTER else ""
            rows.append([metric + arrow, *[_fmt(m.get(f"{s}_{d}_{metric}")) for s, d in columns],
                         _fmt(m.get(f"groundtruth_{metric}"))])
        out.append(f"**{actor}** ({m.get('test_frames')} test frames, adapted on the first "
                   f"{m.get('adapt_frames')} frames)\n\n"
                   + markdown_table(["metric", *[f"{s} · {d}" for s, d in columns], "real frames"], rows))
        loaded.append(m)
    summary = []
    for metric, (op, limit) in REENACT_TARGETS.items():
        target = TARGET_TEXT[op].format(limit)
        for s in sets:
            cells = []
            for d in DRIVES:
                values = [m[f"{s}_{d}_{metric}"] for m in loaded if m.get(f"{s}_{d}_{metric}") is not None]
                cells.append(_fmt(sum(values) / len(values)) if values else "—")
            summary.append([metric, target, s, *cells, str(len(loaded))])
    return ("\n".join(out) + "\n"
            + markdown_table(["metric", "target (issue 14)", "models", *[DRIVE_LABELS.get(d, d) for d in DRIVES],
                              "actors"], summary)
            + "\nMean over actors. " + _source(f"{folder}/*.json"))


def _precise(value: Any) -> str:
    """10 significant digits: a rerun that agrees to 8 digits must not look identical."""
    if isinstance(value, str):
        return value
    return f"{value:.10g}" if isinstance(value, float) and not value.is_integer() else _fmt(value)


def reruns_block(root: Path, folder: str = "metrics/reruns") -> str:
    """Every rerun record (``python -m deadlib.tools.rerun_record``): which outputs were byte-identical
    and every metric of every rerun stage, recorded vs rerun, with the relative difference."""
    files = sorted((root / folder).glob("*.json")) if (root / folder).is_dir() else []
    if not files:
        return f"_No rerun record in `{folder}` yet (`python -m deadlib.tools.rerun_record`)._\n"
    out = []
    for path in files:
        r = json.loads(path.read_text())
        lock = r.get("lock", "dvc.lock")
        lines = [f"**{r['name']}**: rerun on {r['rerun_date']} ({r['rerun_machine']}) vs the record of "
                 f"commit {r['recorded_commit']} ({r['recorded_on']})"
                 + ("" if lock == "dvc.lock" else f"; stages of `{lock}`") + ".\n"]
        rows = []
        for stage, e in r["stages"].items():
            same = "same" if e["code_deps_identical"] and e["params_identical"] else "**different**"
            upstream = ", ".join(f"`{d}` {'identical' if ok else 'differs'}" for d, ok in e["upstream_data_identical"].items())
            outs = ", ".join(f"`{p}` {'identical' if ok else 'differs'}" for p, ok in e["outs_identical"].items())
            lines.append(f"- `{stage}`: code and params {same}; inputs: {upstream or '—'}; outputs: {outs}.")
            for metric, m in e["metrics"].items():
                rel = m["relative_difference"]
                rows.append([f"`{stage}`", metric, _precise(m["recorded"]), _precise(m["rerun"]),
                             "—" if rel is None else ("0" if rel == 0 else f"{rel:.1e}")])
        out.append("\n".join(lines) + "\n\n"
                   + markdown_table(["stage", "metric", "recorded", "rerun", "relative difference"], rows))
    return "\n".join(out) + "\n" + _source(f"{folder}/*.json")


def reenact_findings_block(root: Path, folder: str = "real/metrics/reenact",
                           judge: str = "real/metrics/sync_expert.json") -> str:
    """The self-reenactment findings in sentences (deadlib.tools.findings.reenact_findings)."""
    reports = _reenact_reports(root, folder)
    if not reports:
        return _no_reenact(folder)
    sets = list(load_params(root / "params.yaml")["reenact"]["model_sets"])
    expert = json.loads((root / judge).read_text()) if (root / judge).is_file() else None
    return reenact_findings(reports, sets, expert) + "\n" + _source(f"{folder}/*.json", *([judge] if expert else []))


def validation_curves_block(r: dict, key: str, column: str, base: str, ahead: Callable[[str], str]) -> str:
    """Validation curves (lower-face PSNR by step) of the same cell under variants (``cell[key]``), each
    cell's best validation step and its test metrics there (for the record; the choice is read from
    validation only), with a summary pairing every other variant with ``base`` by person."""
    steps = sorted({int(s) for c in r["cells"] for s in c["val_psnr_lower"]})
    tests = next((list(c["test"]) for c in r["cells"] if c["test"]), [])
    rows = [[c["identity"], c[key], *[_fmt(c["val_psnr_lower"].get(str(s), c["val_psnr_lower"].get(s)))
                                      for s in steps],
             "diverged" if c.get("diverged") else str(c["selected_step"]), *[_fmt(c["test"].get(k)) for k in tests]]
            for c in r["cells"]]
    by_person: dict[str, dict[str, dict]] = {}
    for c in r["cells"]:
        if not c.get("diverged"):                                 # a diverged run has no best score to pair
            by_person.setdefault(c["identity"], {})[c[key]] = c
    diverged = [f"{c[key]} for {c['identity']}" for c in r["cells"] if c.get("diverged")]
    best = lambda c: max(c["val_psnr_lower"].values())          # noqa: E731  the cell's best validation score
    first = lambda c: c["val_psnr_lower"].get(str(steps[0]), c["val_psnr_lower"].get(steps[0]))  # noqa: E731
    summary = ""
    for other in dict.fromkeys(c[key] for c in r["cells"] if c[key] != base):
        pairs = [(p, v[base], v[other]) for p, v in by_person.items() if {base, other} <= set(v)]
        if not pairs:
            continue
        wins = sum(best(o) > best(b) for _, b, o in pairs)
        summary += (f"Best validation lower-face PSNR, {other} − {base}: "
                    + ", ".join(f"{p} {best(o) - best(b):+.2f} dB (steps {b['selected_step']} → {o['selected_step']})"
                                for p, b, o in pairs)
                    + f"; {ahead(other)} is ahead on {wins} of {len(pairs)} people. At step {steps[0]}: "
                    + ", ".join(f"{p} {first(o) - first(b):+.2f} dB" for p, b, o in pairs) + ".\n\n")
    if diverged:
        summary += f"Training diverged (the divergence guard stopped it): {', '.join(diverged)}.\n\n"
    return (summary + markdown_table(["person", column, *[f"val @ {s}" for s in steps], "best val step",
                                      *[f"test {k}" for k in tests]], rows)
            + f"\n{r['corpus']} held-out people, N = {r['n_frames']}, seed {r['seed']}, {r['steps']} steps without early "
            f"stopping (the GAN terms start at step {int(round(r['adv_start_fraction'] * r['steps']))}); {r['machine']}. ")


def texture_init_block(root: Path, path: str = "benchmarks/results/texture_init_real.json") -> str:
    """benchmarks/compare_texture_init.py: the same "Ours" cell with a random or a prior-mean texture."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_texture_init.py`._\n"
    r = json.loads(file.read_text())
    return (validation_curves_block(r, "init", "texture init", "random", lambda other: f"the {other} texture")
            + _source(path))


def baseline_lr_block(root: Path, path: str = "benchmarks/results/baseline_lr_synthetic_n100.json") -> str:
    """benchmarks/compare_baseline_lr.py: the Baseline (from-scratch) cell with its learning rates scaled."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_baseline_lr.py`._\n"
    r = json.loads(file.read_text())
    rates = ", ".join(f"{k} {v:g}" for k, v in r["rates"].items())
    base = next(c["variant"] for c in r["cells"] if c["scale"] == r["scales"][0])   # the pairing's reference
    params = load_params(root / "params.yaml")
    if r.get("method") != "prior":
        study = (f"the cell swept is the Baseline's, which the study runs at × "
                 f"{_fmt(params.get('baseline', {}).get('lr_scale'))} (params.yaml `baseline.lr_scale`)")
    elif r.get("corpus") == "real":
        study = (f"the cell swept is Ours' (the prior fine-tuned with generic windows mixed in), which the real study "
                 f"runs at × {_fmt(params.get('real_study', {}).get('ours_lr_scale'))} (params.yaml "
                 f"`real_study.ours_lr_scale`)")
    else:
        study = "the cell swept is Ours' (the prior fine-tuned with generic windows mixed in), which the study runs at × 1"
    if r.get("prior_steps"):
        study += f"; the prior fine-tuned was trained {r['prior_steps']} steps"
    return (validation_curves_block(r, "variant", "learning rates", base, lambda other: other)
            + f"Scale 1 = `adapt`'s rates ({rates}); {study}. " + _source(path))


def study_records_block(root: Path, path: str = "benchmarks/results/baseline_lr_rerun.json") -> str:
    """benchmarks/compare_study_records.py: a method's study cells now vs an earlier commit's records,
    per N: the means before → after and the after − before difference paired by actor and seed."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_study_records.py`._\n"
    r = json.loads(file.read_text())
    sizes = list(r["sizes"])
    keys = list(r["sizes"][sizes[0]])
    rows = [[key, *[f"{_fmt(r['sizes'][n][key]['before'])} → {_fmt(r['sizes'][n][key]['after'])}, "
                    f"{_fmt_paired(r['sizes'][n][key]['difference'])}" for n in sizes]] for key in keys]
    return (markdown_table(["metric", *[f"N = {n}: before → after, after − before (pairs higher)" for n in sizes]], rows)
            + f"\n`{r['method']}` cells of `{r['folder']}` ({len(r['cells'])}) in the working tree vs commit {r['before']}, "
            f"paired by actor and seed, 95 % Student-t interval; `val_psnr_lower` is the validation score each "
            f"cell selected its step on, the rest are test metrics. " + _source(path))


def adapt_now_block(root: Path, path: str = "benchmarks/results/adapt_now_real_n100.json") -> str:
    """benchmarks/compare_adapt_now.py: adapt-now's schedule (texture start × steps) scored on the real
    held-out people's validation spans at its last step, each variant paired with the baseline by
    person and seed; test metrics of the same weights for the record; ``autocast`` = the precision
    the variant trained under (float32 in results written before it existed)."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_adapt_now.py`._\n"
    r = json.loads(file.read_text())
    val_keys = list(next(iter(r["variants"].values()))["val_final"])
    test_keys = list(next(iter(r["variants"].values()))["test"])

    rows = [[name, v["init"], str(v["steps"]), _fmt(v.get("lr_scale", 1)), v.get("dtype", "float32"),
             *[_fmt(v["val_final"][k]) for k in val_keys],
             *[_fmt_paired(v["vs_baseline"][k], "—") if v["vs_baseline"] else "baseline" for k in val_keys],
             *[_fmt(v["test"][k]) for k in test_keys], _fmt(v["train_seconds"])] for name, v in r["variants"].items()]
    return (markdown_table(["variant", "texture start", "steps", "lr × adapt's", "autocast", *[f"val {k}" for k in val_keys],
                            *[f"val {k} − baseline (higher)" for k in val_keys], *[f"test {k}" for k in test_keys],
                            "train s"], rows)
            + f"\n{r['corpus']} held-out people, adaptation on their first {r['n_frames']} frames, "
            f"{_seeds(r['seeds'])}; "
            f"every run ends on its last step (no selection, as adapt-now), the GAN terms from "
            f"{r['adv_start_fraction']:g} of its steps; validation = {r['val_windows']} windows of each person's "
            f"validation span at the last step, differences paired by person and seed with a 95 % Student-t "
            f"interval; test columns are the same weights on the test part (for the record, not for choosing); "
            f"{r['machine']}. " + _source(path))


def a2e_variants_block(root: Path, path: str = "benchmarks/results/a2e_variants_real.json") -> str:
    """benchmarks/compare_a2e_variants.py: audio-to-expression settings scored by speaker-fold
    cross-validation on the prior people (unseen speakers), each against the baseline, paired by speaker."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_a2e_variants.py`._\n"
    r = json.loads(file.read_text())

    rows = [[name, ", ".join(f"`{a}`" for a in v["assignments"]) or "params.yaml when run", _fmt(v["mean_jaw_corr"]),
             " / ".join(_fmt(x) for x in v.get("per_seed_jaw_corr", [])) or "—",
             _fmt_paired(v.get("jaw_corr_vs_baseline")), _fmt(v["mean_lve_mm"]), _fmt_paired(v.get("lve_mm_vs_baseline")),
             ", ".join(str(s) for s in v["best_steps"]), _fmt(v["seconds"])] for name, v in r["variants"].items()]
    seeds = r.get("seeds", 1)
    mixed = (f"; the `mix.share` variants also pre-train on `{r['extra_cache']}`'s prior people (their train parts, "
             "expressions re-encoded in this corpus's basis; the share is that of the training windows drawn "
             "from them, `all` = both corpora as they are), validated and scored on this corpus only"
             if r.get("extra_cache") else "")
    return (markdown_table(["variant", "overrides", "jaw r", "jaw r per seed",
                            "jaw r − baseline (speakers higher)", "LVE mm ↓", "LVE − baseline (speakers higher)",
                            "kept steps (per fold)", "seconds per seed"], rows)
            + f"\n{r['protocol']}{mixed}; {r['folds']} speaker folds × {seeds} seed{'s' if seeds > 1 else ''} (each "
            f"speaker's score averaged over the seeds), differences paired by speaker with a 95 % Student-t "
            f"interval; {r['machine']}. " + _source(path))


def a2e_ensemble_block(root: Path, path: str = "benchmarks/results/a2e_ensemble_real.json") -> str:
    """benchmarks/compare_a2e_ensemble.py: audio-to-expression models of several seeds averaged, scored by
    speaker-fold cross-validation on the prior people, paired by speaker with single seeds."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_a2e_ensemble.py`._\n"
    r = json.loads(file.read_text())
    seeds = r["seeds"]
    rows = [[f"{m} (seed{'s' if m > 1 else ''} {', '.join(str(x) for x in seeds[:m])})", _fmt(r["ensemble_jaw_corr"][m - 1]),
             _fmt(r["ensemble_lve_mean_mm"][m - 1])] for m in range(1, len(seeds) + 1)]
    rows.append(["1, each seed alone", " / ".join(_fmt(x) for x in r["single_jaw_corr"]),
                 " / ".join(_fmt(x) for x in r["single_lve_mean_mm"])])
    s = len(seeds)
    pairs = [[f"all {s} averaged − the single seeds' mean", _fmt_paired(r["jaw_corr_vs_single_mean"]),
              _fmt_paired(r["lve_mean_mm_vs_single_mean"])],
             [f"all {s} averaged − seed {seeds[0]} alone", _fmt_paired(r["jaw_corr_vs_first_seed"]),
              _fmt_paired(r["lve_mean_mm_vs_first_seed"])]]
    return (markdown_table(["models averaged", "jaw r", "LVE mm ↓"], rows) + "\n"
            + markdown_table(["comparison", "jaw r (speakers higher)", "LVE mm (speakers higher)"], pairs)
            + f"\n{r['protocol']}; {r['folds']} speaker folds, {len(r['people'])} unseen speakers, one model per fold "
            f"and seed (seed offsets {', '.join(str(x) for x in seeds)} on params' seed), predictions averaged "
            f"before scoring; differences paired by speaker with a 95 % Student-t interval; "
            f"{_fmt(sum(r['seconds_per_seed']) / len(r['seconds_per_seed']))} s of training per seed; {r['machine']}. "
            + _source(path))


def style_loss_block(root: Path, path: str = "benchmarks/results/style_loss_real.json") -> str:
    """benchmarks/compare_style_loss.py: offline stand-ins for the VGG term, scored on the held-out
    people's validation spans (region PSNR/SSIM, mouth sharpness ratio), paired with 'none'."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_style_loss.py`._\n"
    r = json.loads(file.read_text())
    names = list(r["variants"])
    keys = ("psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "mouth_sharpness_ratio")
    rows = [[name, _fmt(v["term_over_l1"]), *[_fmt(v[k]) for k in keys],
             *[_fmt_paired(v[f"vs_{names[0]}"][k]) if f"vs_{names[0]}" in v else "—" for k in keys],
             _fmt(v["train_seconds"])] for name, v in r["variants"].items()]
    return (markdown_table(["variant", "term / L1", *[f"val {k}" for k in keys],
                            *[f"val {k} − {names[0]} (higher)" for k in keys], "train s"], rows)
            + f"\n{r['corpus']} held-out people, the Ours cell on their first {r['n_frames']} frames for "
            f"{r['steps']} steps (no early stopping), {_seeds(r['seeds'])}, "
            f"lambda_vgg {r['lambda_vgg']:g}; every score on each person's whole validation span (the test part is "
            f"not read); differences paired by person and seed with a 95 % Student-t interval; {r['machine']}. "
            + _source(path))


def upscale_block(root: Path, path: str = "benchmarks/results/upscale_real.json") -> str:
    """benchmarks/compare_upscale.py: the prepared crop pasted back into its own native frame per
    enlargement kernel (the ceiling of a perfect 128 px render), paired with 'linear' by person."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_upscale.py`._\n"
    r = json.loads(file.read_text())
    keys = ("psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "sharpness_lower", "sharpness_mouth")
    base = r["kernels"][0]
    rows = [[kernel, *[_fmt(v[k]) for k in keys],
             *[_fmt_paired(v.get(f"vs_{base}", {}).get(k), "reference" if kernel == base else "—") for k in keys],
             _fmt(v["seconds"] * 1e3)] for kernel, v in r["summary"].items()]
    people = r["people"]
    mags = [p[base]["magnification"] for p in people.values()]
    frames = sum(p[base]["frames"] for p in people.values())
    if r.get("renders"):
        what = (f"{len(people)} real held-out people ({frames} frames: every frame of each one's validation span), "
                f"the face {min(mags):.1f}–{max(mags):.1f}× the 128 px crop; each person's study cell ({r['renders']}) "
                f"renders the span and the RENDER is pasted into the native frame with the dub's blend "
                f"(`{r['profile']}` profile); ")
    else:
        what = (f"{len(people)} real people ({frames} frames: "
                f"{'every frame' if r['stride'] == 1 else 'one frame in ' + _fmt(r['stride'])} of each corpus person's "
                f"validation span, and the whole of {', '.join(r['clips']) or 'no clip'}), the face "
                f"{min(mags):.1f}–{max(mags):.1f}× the 128 px crop; the prepared crop (what a perfect renderer would "
                f"draw) pasted back into its own native frame with the dub's blend (`{r['profile']}` profile); ")
    return (markdown_table(["upscale", *[f"val {k}" for k in keys], *[f"{k} − {base} (higher)" for k in keys],
                            "composite ms/frame"], rows)
            + "\n" + what +
            f"region scores against the native frame, sharpness = Laplacian variance output / real (1 = as sharp); "
            f"differences paired by person with a 95 % Student-t interval (people ahead / people); {r['machine']}. "
            + _source(path))


def a2e_probe_block(root: Path, path: str = "benchmarks/results/a2e_feature_probe_real.json") -> str:
    """benchmarks/probe_a2e_features.py: ridge probes of the jaw coefficient on unseen prior speakers,
    by feature set and ridge strength (rows) and share of the training speech (columns)."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/probe_a2e_features.py`._\n"
    r = json.loads(file.read_text())
    fractions = sorted({row["fraction"] for row in r["rows"]})
    cells: dict[tuple[str, float], dict[float, Any]] = {}
    for row in r["rows"]:
        cells.setdefault((row["features"], row["lambda"]), {})[row["fraction"]] = row["mean_jaw_corr"]
    rows = [[features, _fmt(lam), *[_fmt(by.get(f)) for f in fractions]]  # a fraction not probed: —
            for (features, lam), by in cells.items()]
    reason = f" Phone rows: {r['phone_reason']}." if r.get("phone_reason") else ""
    reference = r.get("transformer_crossval_mean_jaw_corr")
    return (markdown_table(["features", "ridge λ", *[f"jaw r, {f:.0%} of the speech" for f in fractions]], rows)
            + f"\n{r['speakers']} prior speakers in {r['folds']} folds ({r['train_frames']} train frames in all), features "
            f"of ±{r['context']} frames; mean over the unseen speakers of the correlation with the tracked jaw "
            f"coefficient on their train + validation parts (below 100 %: a random contiguous span of each seen "
            f"speaker's train part, mean of the draws). For comparison, the audio-to-expression transformer on the same "
            f"folds (`audio2expr_crossval`): {_fmt(reference)}.{reason} {r['machine']}. " + _source(path))


def prior_steps_block(root: Path, path: str = "benchmarks/results/prior_steps_real.json") -> str:
    """benchmarks/compare_prior_steps.py: the real prior trained longer, each length fine-tuned into
    the held-out people's Ours cells and scored on their validation spans, paired with the first."""
    file = root / path
    if not file.is_file():
        return f"_`{path}` does not exist yet: run `benchmarks/compare_prior_steps.py`._\n"
    r = json.loads(file.read_text())
    keys = ("val_psnr_lower", "val_psnr", "val_ssim", "lmd_mouth_px", "mouth_open_r")
    paired = ("val_psnr_lower", "lmd_mouth_px", "mouth_open_r")
    first = str(r["steps"][0])
    rows = [[steps, _fmt(r["priors"][steps]["validation"].get("psnr_lower")),
             *[_fmt(v[k]) for k in keys],
             *[_fmt_paired(v.get("vs_first", {}).get(k), "reference" if steps == first else "—") for k in paired],
             _fmt(v["selected_step"]), _fmt(v["train_seconds"])] for steps, v in r["summary"].items()]
    corpus = r.get("corpus", "real")
    perfect = r["perfect_render"].values()
    rows.append(["perfect 128 px render", "—", "—", "—", "—",
                 _fmt(mean_ci([p["lmd_mouth_px"] for p in perfect])[0]),
                 _fmt(mean_ci([p["mouth_open_r"] for p in perfect])[0]), "—", "—", "—", "—", "—"])
    return (markdown_table(["prior steps", "prior's val psnr_lower (prior people)", *[f"cell {k}" for k in keys],
                            *[f"{k} − {first} steps (higher)" for k in paired], "selected step", "cell train s"], rows)
            + f"\nThe {corpus} prior at each length, fine-tuned into the Ours cell of each of the {len(r['people'])} "
            f"{corpus} held-out people (first {r['n_frames']} frames, the {corpus} study's rates, validation step selection; "
            f"{_seeds(r['seeds'])}); every cell column is on the person's validation "
            f"span (the test parts are not read): `val_*` the in-training validation at the selected step, "
            f"`lmd_mouth_px` (at {r['lmd_size']} px) and `mouth_open_r` the cell's renders pasted into the native "
            f"frames against the real frames (FaceMesh, as the `reenact` stages); the last row is the prepared crop "
            f"pasted the same way. Differences paired by person and seed with a 95 % Student-t interval; "
            f"{r['machine']}. " + _source(path))


BLOCKS: dict[str, Callable[[Path], str]] = {
    "prepare": lambda root: flat_table(root, "metrics/prepare.json"),
    "train_prior": lambda root: flat_table(root, "metrics/train_prior.json"),
    "study": study_tables,
    "study_actors": actor_table,
    "findings": findings_block,
    "study_status": study_status,
    "ablation": ablation_block,
    "audio2expr": lambda root: flat_table(root, "metrics/train_audio2expr.json"),
    "style": style_block,
    "dub": lambda root: flat_table(root, "metrics/dub.json"),
    "sync_expert": lambda root: flat_table(root, "metrics/sync_expert.json"),
    "real_prepare": lambda root: flat_table(root, "real/metrics/prepare.json"),
    "real_train_prior": lambda root: flat_table(root, "real/metrics/train_prior.json"),
    "real_sync_expert": lambda root: flat_table(root, "real/metrics/sync_expert.json"),
    "real_audio2expr": lambda root: flat_table(root, "real/metrics/train_audio2expr.json"),
    "real_audio2expr_crossval": lambda root: flat_table(root, "real/metrics/audio2expr_crossval.json"),
    "real_study": lambda root: study_tables(root, "real_study", "real/metrics/adapt"),
    "real_study_actors": lambda root: actor_table(root, "real_study", "real/metrics/adapt"),
    "real_findings": lambda root: findings_block(root, "real_study", "real/metrics/adapt", None),
    "real_study_status": lambda root: study_status(root, "real_study", "real/metrics/adapt", ablations=False),
    "real_style": lambda root: style_block(root, "real/metrics/style"),
    "real_reenact": reenact_block,
    "real_reenact_findings": reenact_findings_block,
    "reruns": reruns_block,
    "texture_init": texture_init_block,
    "baseline_lr": baseline_lr_block,
    "baseline_lr_n25": lambda root: baseline_lr_block(root, "benchmarks/results/baseline_lr_synthetic_n25.json"),
    "baseline_lr_n1000": lambda root: baseline_lr_block(root, "benchmarks/results/baseline_lr_synthetic_n1000.json"),
    "baseline_lr_real": lambda root: baseline_lr_block(root, "benchmarks/results/baseline_lr_real_n100.json"),
    "baseline_lr_rerun": study_records_block,
    "baseline_lr_rerun_real": lambda root: study_records_block(root, "benchmarks/results/baseline_lr_rerun_real.json"),
    "ours_lr_rerun_real": lambda root: study_records_block(root, "benchmarks/results/ours_lr_rerun_real.json"),
    "prior_steps_rerun_real": lambda root: study_records_block(root, "benchmarks/results/prior_steps_rerun_real.json"),
    "host_rerun_real_prior": lambda root: study_records_block(root, "benchmarks/results/host_rerun_real_prior.json"),
    "host_rerun_real_scratch": lambda root: study_records_block(root, "benchmarks/results/host_rerun_real_scratch.json"),
    "host_rerun_synth_prior": lambda root: study_records_block(root, "benchmarks/results/host_rerun_synth_prior.json"),
    "host_rerun_synth_scratch": lambda root: study_records_block(root, "benchmarks/results/host_rerun_synth_scratch.json"),
    "prior_steps_4800": lambda root: prior_steps_block(root, "benchmarks/results/prior_steps_real_4800.json"),
    "ours_lr": lambda root: baseline_lr_block(root, "benchmarks/results/ours_lr_synthetic_n100.json"),
    "ours_lr_real": lambda root: baseline_lr_block(root, "benchmarks/results/ours_lr_real_n100.json"),
    "ours_lr_real_prior3600": lambda root: baseline_lr_block(root, "benchmarks/results/ours_lr_real_n100_prior3600.json"),
    "a2e_variants": a2e_variants_block,
    "adapt_now": adapt_now_block,
    "style_loss": style_loss_block,
    "upscale": upscale_block,
    "upscale_renders": lambda root: upscale_block(root, "benchmarks/results/upscale_renders_real.json"),
    "a2e_probe": a2e_probe_block,
    "a2e_probe_norm": lambda root: a2e_probe_block(root, "benchmarks/results/a2e_feature_probe_norm_real.json"),
    "prior_steps": prior_steps_block,
    "prior_steps_synthetic": lambda root: prior_steps_block(root, "benchmarks/results/prior_steps_synthetic.json"),
    "adapt_now_n250": lambda root: adapt_now_block(root, "benchmarks/results/adapt_now_real_n250.json"),
    "adapt_now_lr_real": lambda root: adapt_now_block(root, "benchmarks/results/adapt_now_lr_real_n250.json"),
    "adapt_now_bf16_real": lambda root: adapt_now_block(root, "benchmarks/results/adapt_now_bf16_real_n100.json"),
    "a2e_variants_seeds": lambda root: a2e_variants_block(root, "benchmarks/results/a2e_variants_real_seeds.json"),
    "a2e_mix": lambda root: a2e_variants_block(root, "benchmarks/results/a2e_mix_real.json"),
    "a2e_mix_seeds": lambda root: a2e_variants_block(root, "benchmarks/results/a2e_mix_real_seeds.json"),
    "a2e_ensemble": a2e_ensemble_block,
    "pipeline_status": pipeline_status,
    "real_pipeline_status": lambda root: pipeline_status(root, "real/dvc.yaml"),
}


def render(readme: str, root: Path) -> tuple[str, list[str]]:
    """README text with every generated block rebuilt; also the names of the blocks that changed."""
    changed: list[str] = []

    def rebuild(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"README has a generated block {name!r} that deadlib.tools.readme_tables does not know; "
                           f"known: {sorted(BLOCKS)}")
        body = BLOCKS[name](root)
        if body != match["body"]:
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(rebuild, readme), changed


METRICS_DIRS = ("metrics", "real/metrics")


def missing_tracked_metrics(root: Path) -> list[str]:
    """Metrics files git tracks under ``METRICS_DIRS`` that are absent from the workspace (e.g. a
    stage is running and DVC removed its outputs); [] when ``root`` is not a git work tree."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", *METRICS_DIRS],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return sorted(p for p in listed.split("\0") if p and not (root / p).is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deadlib.tools.readme_tables", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=Path(__file__).resolve().parents[2], type=Path)
    parser.add_argument("--check", action="store_true", help="only report stale blocks (exit 1)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="rewrite even when metrics files that git tracks are missing from the workspace")
    args = parser.parse_args(argv)
    path = args.root / "README.md"
    missing = [] if args.check or args.allow_missing else missing_tracked_metrics(args.root)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        print(f"README.md not rewritten: {len(missing)} committed metrics file(s) are missing ({shown}). "
              "A DVC stage that is running removes its outputs first: wait for it, or restore them with "
              "`git checkout -- <file>`; --allow-missing rewrites anyway.", file=sys.stderr)
        return 1
    text, changed = render(path.read_text(), args.root)
    if args.check:
        if changed:
            print(f"README.md is stale in blocks {changed}: run python -m deadlib.tools.readme_tables", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"README.md: rebuilt {changed or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
