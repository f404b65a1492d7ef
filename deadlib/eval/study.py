"""Aggregation of the adaptation study: per-cell metrics files → Table 1/3/4-style tables, curves
of metric vs N (prior vs scratch) and the Fig. 7-style sample grid.

Every cell wrote ``<metrics_dir>/<cell>.json`` (flat numbers) and ``<cell>.reasons.json``
(``cell`` labels: method, identity, n_frames, seed, variant). Rows are labelled

    Baseline                   method scratch (renderer + texture from scratch)
    Ours                       method prior, mixed data, post-processing (the full model)
    Ours w/o mixed data        variant nomix   (mixed_ratio 0)
    Ours w/o post-processing   variant nopost  (blend hard at evaluation: same mask, no blending)
    Copy reference / Copy input   the floors: the ``*_copy_ref`` / ``*_copy_input`` values that the
                               Ours cells measured for outputs that generate nothing
    Ground truth               the ``*_real`` values (sync scores of the real test frames)

and averaged over runs (identities × seeds): ``mean_ci`` gives the mean and the half-width of its
95 % Student-t interval, ``n_runs`` / ``n_ids`` over how many. ``paired_differences`` compares
Ours with Baseline run by run (same identity, N and seed): a difference is called significant
when its 95 % interval excludes 0. Outputs under ``out_dir``:
``size_<metric>.csv/.md`` (Table 4 style), ``ablation.csv/.md`` (Table 3), ``comparison.csv/.md``
(Table 1 style), ``curve_prior.csv`` / ``curve_scratch.csv`` (one row per N, for ``dvc plots``),
``size_curves.png`` and ``tables.md`` (all tables). ``python -m deadlib.eval.study`` runs it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from deadlib.core.config import stage_config, write_settings
from deadlib.core.files import write_json
from deadlib.core.intervals import mean_ci
from deadlib.train.study_config import cell_name, parse_cell_name

LABELS = {("scratch", ""): "Baseline", ("prior", ""): "Ours", ("prior", "nomix"): "Ours w/o mixed data",
          ("prior", "nopost"): "Ours w/o post-processing"}
# the generated region first (lower face, mouth), then lips and sync, then the mostly copied crop
# and the pasted frame; every metric the harness computes
CURVE_METRICS = ("psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "lmd_mouth_px", "sync_expert_lse_c",
                 "sync_expert_lse_d", "sync_expert_offset", "sync_conf_deadlib", "psnr", "ssim", "frame_psnr_box",
                 "frame_ssim_box", "frame_psnr", "frame_ssim", "fid", "fvd")
TABLE_METRICS = ("psnr", "ssim", "fid", "fvd")                     # the paper's columns
ABLATION_METRICS = ("psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "lmd_mouth_px", "sync_expert_lse_c",
                    "sync_expert_lse_d", "sync_conf_deadlib", "psnr", "ssim", "frame_psnr_box", "frame_ssim_box",
                    "frame_psnr", "frame_ssim", "fid", "frame_fid", "fvd")
LOWER_IS_BETTER = {"fid", "fvd", "frame_fid", "lmd_mouth_px", "sync_expert_lse_d"}
NO_DIRECTION = {"sync_expert_offset"}                               # 0 is best; the sign says which way
FLOORS = {"copy_ref": "Copy reference", "copy_input": "Copy input"}
GROUND_TRUTH = "Ground truth"


def load_cells(metrics_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per cell: its labels (``cell``), ``label`` and metrics; reasons under ``reasons``."""
    rows = []
    for path in sorted(Path(metrics_dir).glob("*.json")):
        if path.name.endswith((".reasons.json", ".settings.json")):
            continue
        side = path.with_suffix(".reasons.json")
        extra = json.loads(side.read_text()) if side.is_file() else {}
        cell = extra.get("cell") or parse_cell_name(path.stem) or {}   # .reasons.json: DVC-cached, may be absent
        if "method" not in cell:
            continue                                                   # not a study cell
        key = (cell["method"], cell.get("variant") or "")
        rows.append({**json.loads(path.read_text()), **cell, "label": LABELS.get(key, f"{key[0]} {key[1]}".strip()),
                     "reasons": extra.get("reasons", {}), "file": str(path)})
    return rows


def derived_rows(rows: Iterable[Mapping]) -> list[dict[str, Any]]:
    """Rows of the floors and the ground truth, from the main-grid Ours cells: label ``Copy
    reference`` with ``metric`` = that cell's ``metric_copy_ref`` (the same for ``copy_input``,
    and ``Ground truth`` from ``metric_real``), so they aggregate like methods."""
    out = []
    for row in rows:
        if row["label"] != "Ours":
            continue
        for suffix, label in (*FLOORS.items(), ("real", GROUND_TRUTH)):
            values = {k[: -len(suffix) - 1]: v for k, v in row.items()
                      if isinstance(k, str) and k.endswith(f"_{suffix}")}
            if any(v is not None for v in values.values()):
                out.append({**{k: row.get(k) for k in ("identity", "n_frames", "seed", "method")}, **values,
                            "label": label, "variant": "", "file": row.get("file", "")})
    return out


def summarise(rows: Iterable[Mapping], metrics: Sequence[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """{(label, n_frames): {metric: mean over runs or None, metric_ci: 95 % half-width, n_runs, n_ids}}."""
    groups: dict[tuple[str, int], list[Mapping]] = defaultdict(list)
    for row in rows:
        groups[(row["label"], int(row["n_frames"]))].append(row)
    out = {}
    for key, group in groups.items():
        stats: dict[str, Any] = {"n_ids": len({r["identity"] for r in group}), "n_runs": len(group)}
        for m in metrics:
            stats[m], stats[f"{m}_ci"] = mean_ci([r.get(m) for r in group])
        out[key] = stats
    return out


def paired_differences(rows: Iterable[Mapping], metrics: Sequence[str], a: str = "Ours",
                       b: str = "Baseline") -> dict[tuple[str, int], dict[str, Any]]:
    """{(metric, N): {diff, ci, n_pairs, significant}} of ``a`` − ``b`` over runs with the same
    identity, N and seed; significant = the 95 % interval excludes 0 (None: fewer than 2 pairs)."""
    runs: dict[tuple[str, Any, int, int], Mapping] = {}
    for row in rows:
        if row["label"] in (a, b):
            runs[(row["label"], row["identity"], int(row["n_frames"]), int(row.get("seed") or 0))] = row
    out = {}
    for m in metrics:
        pairs: dict[int, list[float]] = defaultdict(list)
        for (label, ident, n, seed), row in runs.items():
            other = runs.get((b, ident, n, seed))
            if label == a and other is not None and row.get(m) is not None and other.get(m) is not None:
                pairs[n].append(float(row[m]) - float(other[m]))
        for n, diffs in pairs.items():
            diff, ci = mean_ci(diffs)
            out[(m, n)] = {"diff": diff, "ci": ci, "n_pairs": len(diffs),
                           "significant": None if ci is None else bool(abs(diff) > ci)}
    return out


def _fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.3f}" if "ssim" in metric else f"{value:.2f}"


def fmt_ci(stats: Mapping[str, Any] | None, metric: str) -> str:
    """"mean ± 95 % half-width" of ``metric`` in a summary entry (— when absent; no ± for one run)."""
    if not stats or stats.get(metric) is None:
        return "—"
    ci = stats.get(f"{metric}_ci")
    return _fmt(stats[metric], metric) + ("" if ci is None else f" ± {_fmt(ci, metric)}")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _write(out_dir: Path, stem: str, header: Sequence[str], rows: Sequence[Sequence[Any]], title: str,
           metric: str | None = None) -> str:
    """CSV (raw values) + markdown (formatted as ``metric``, else by column name); returns the markdown."""
    with open(out_dir / f"{stem}.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *[["" if v is None else v for v in r] for r in rows]])
    md = f"### {title}\n\n" + markdown_table(header, [[_fmt(v, metric or str(h)) if not isinstance(v, str) else v
                                                       for v, h in zip(r, header)] for r in rows])
    (out_dir / f"{stem}.md").write_text(md)
    return md


SIZE_LABELS = ("Baseline", "Ours", *FLOORS.values(), GROUND_TRUTH)


def size_table(summary: Mapping, metric: str, sizes: Sequence[int]) -> tuple[list[str], list[list[Any]]]:
    """Table 4: rows Baseline / Ours / the floors / ground truth (where measured), columns N,
    values "mean ± 95 % half-width" of ``metric`` over runs."""
    rows = [[label, *[fmt_ci(summary.get((label, n)), metric) for n in sizes]] for label in SIZE_LABELS
            if any(summary.get((label, n), {}).get(metric) is not None for n in sizes) or label in ("Baseline", "Ours")]
    return ["N frames", *map(str, sizes)], rows


def difference_table(diffs: Mapping, metrics: Sequence[str], sizes: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    """Ours − Baseline per metric (rows) and N (columns): "diff ± ci" with * when significant."""
    def cell(d):
        if not d or d["diff"] is None:
            return "—"
        text = f"{d['diff']:+.3f}" + ("" if d["ci"] is None else f" ± {d['ci']:.3f}")
        return text + (" *" if d["significant"] else "")
    rows = [[m + ("" if m in NO_DIRECTION else " ↓" if m in LOWER_IS_BETTER else " ↑"),
             *[cell(diffs.get((m, n))) for n in sizes]] for m in metrics if any((m, n) in diffs for n in sizes)]
    return ["Ours − Baseline", *[f"N={n}" for n in sizes]], rows


def ablation_table(summary: Mapping, n: int, metrics: Sequence[str] = ABLATION_METRICS):
    """Table 3: rows w/o post-processing, w/o mixed data, full (+ the copy-reference floor), at
    N = ``n``; "mean ± 95 % half-width" over the runs each row has (n_runs column)."""
    labels = ("Ours w/o post-processing", "Ours w/o mixed data", "Ours", FLOORS["copy_ref"])
    rows = [[label, *[fmt_ci(summary.get((label, n)), m) for m in metrics], (summary.get((label, n)) or {}).get("n_runs")]
            for label in labels]
    return ["Method", *metrics, "n_runs"], rows


def comparison_table(summary: Mapping, sizes: Sequence[int], metrics: Sequence[str] = TABLE_METRICS):
    """Table 1 (our rows only): Baseline / Ours × (N, metric)."""
    header = ["Method", *[f"{m} @{n}" for n in sizes for m in metrics]]
    rows = [[label, *[summary.get((label, n), {}).get(m) for n in sizes for m in metrics]]
            for label in ("Baseline", "Ours")]
    return header, rows


def plot_curves(rows: Sequence[Mapping], metrics: Sequence[str], path: str | os.PathLike | None = None):
    """Metric vs N (log x) for Baseline vs Ours and the copy-reference floor: thin lines per
    identity (mean over its seeds), thick = mean over runs with its 95 % interval as error bars."""
    import matplotlib.pyplot as plt

    rows = [*rows, *derived_rows(rows)]
    metrics = [m for m in metrics if any(r.get(m) is not None for r in rows)] or list(metrics[:1])
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
    colours = {"Baseline": "tab:gray", "Ours": "tab:blue", FLOORS["copy_ref"]: "tab:red"}
    for ax, m in zip(axes[0], metrics):
        for label, colour in colours.items():
            sel = [r for r in rows if r["label"] == label and r.get(m) is not None]
            for ident in sorted({r["identity"] for r in sel}):
                mine = summarise([r for r in sel if r["identity"] == ident], [m])
                pts = sorted((n, st[m]) for (_, n), st in mine.items())
                ax.plot(*zip(*pts), color=colour, lw=0.7, alpha=0.4)
            means = summarise(sel, [m])
            pts = sorted((n, st[m], st[f"{m}_ci"] or 0.0) for (_, n), st in means.items() if st[m] is not None)
            if pts:
                ns, ys, cis = zip(*pts)
                ax.errorbar(ns, ys, yerr=cis, fmt="o-" if label != FLOORS["copy_ref"] else "s--", color=colour,
                            lw=2 if label != FLOORS["copy_ref"] else 1, capsize=3, label=label)
        arrow = "" if m in NO_DIRECTION else " ↓" if m in LOWER_IS_BETTER else " ↑"
        ax.set(xscale="log", xlabel="N training frames", title=m + arrow)
        ticks = sorted({r["n_frames"] for r in rows})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def budget_curves(models_dir: str | os.PathLike, rows: Sequence[Mapping], series: str = "val/psnr_lower",
                  path: str | os.PathLike | None = None):
    """The budget sweep: ``series`` (a validation-span metric logged during adaptation) vs
    optimiser step, one panel per N, prior vs scratch; thin = one cell, thick = mean over cells."""
    import matplotlib.pyplot as plt

    from deadlib.train.prior import read_live_series

    cells = [r for r in rows if r["label"] in ("Baseline", "Ours")]
    sizes = sorted({int(r["n_frames"]) for r in cells}) or [0]
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.6 * len(sizes), 3.2), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], sizes):
        for label, colour in (("Baseline", "tab:gray"), ("Ours", "tab:blue")):
            curves = []
            for r in cells:
                if r["label"] != label or int(r["n_frames"]) != n:
                    continue
                name = cell_name(r["method"], r["identity"], n, seed=int(r.get("seed") or 0))
                found = read_live_series(Path(models_dir) / name / "dvclive", series).get(series)
                if found is not None:
                    ax.plot(*found, color=colour, lw=0.6, alpha=0.35)
                    curves.append(found)
            if curves:
                steps = curves[0][0]
                same = [c[1] for c in curves if np.array_equal(c[0], steps)]
                ax.plot(steps, np.mean(same, 0), "o-", color=colour, lw=2, ms=3, label=f"{label} ({len(same)})")
        ax.set(title=f"N = {n}", xlabel="optimiser step")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(series)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def aggregate(metrics_dir: str | os.PathLike, out_dir: str | os.PathLike, study: Mapping[str, Any],
              summary_path: str | os.PathLike | None = None, style_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write all tables, curve CSVs and the curve figure; ``summary_path``: flat JSON of the
    per-(method, N) means for ``dvc metrics``; ``style_dir``: the style cells' metrics folder (table
    ``style_lve``; skipped when None). Returns rows, summary, markdown and missing cells."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # only the cells the study settings ask for: the folder may also hold another profile's cells
    # (metrics files are committed; e.g. a smoke run in a clone of the default run's results)
    asked = set(expected_cells(study))
    rows, ignored = [], []  # ignored: names, sorted as load_cells reads the files
    for row in load_cells(metrics_dir):
        if Path(row["file"]).stem in asked:
            rows.append(row)
        else:
            ignored.append(Path(row["file"]).stem)
    metrics = sorted({*CURVE_METRICS, *ABLATION_METRICS})
    summary = summarise([*rows, *derived_rows(rows)], metrics)
    diffs = paired_differences(rows, CURVE_METRICS)
    sizes = sorted({int(n) for n in study.get("sizes", [])} | {n for (lab, n) in summary if lab in ("Ours", "Baseline")})
    md = [_write(out, f"size_{m}", *size_table(summary, m, sizes),
                 f"{m} vs training frames (Table 4 style; mean ± 95 % interval over actors × seeds)", m)
          for m in CURVE_METRICS]
    md.append(_write(out, "differences", *difference_table(diffs, CURVE_METRICS, sizes),
                     "Ours − Baseline, paired by actor and seed (* = the 95 % interval excludes 0)"))
    md.append(_write(out, "ablation", *ablation_table(summary, int(study["ablation_size"])),
                     f"Ablations at N = {study.get('ablation_size', 100)} (Table 3 style)"))
    md.append(_write(out, "comparison", *comparison_table(summary, study.get("table_sizes", [100, 1000])),
                     "Ours vs baseline (Table 1 style)"))
    for method, label in (("prior", "Ours"), ("scratch", "Baseline")):
        _write(out, f"curve_{method}", ["n_frames", *CURVE_METRICS, "n_ids", "n_runs"],
               [[n, *[summary[(label, n)][m] for m in CURVE_METRICS], summary[(label, n)]["n_ids"],
                 summary[(label, n)]["n_runs"]]
                for n in sizes if (label, n) in summary], f"{label} vs N")
    style_rows: list[list[Any]] = []
    if style_dir is not None:
        header, style_rows = style_table(style_dir, study)
        md.append(_write(out, "style_lve", header, style_rows,
                         "Audio-to-expression: lip vertex error (mm) of the generic model / the person's model "
                         "(fine-tuned copy + style layer) fitted on N frames"))
    import matplotlib.pyplot as plt

    plt.close(plot_curves(rows, ("psnr_lower", "psnr_mouth", "lmd_mouth_px", "sync_expert_lse_c", "psnr"),
                          out / "size_curves.png"))
    missing = sorted(asked - {Path(r["file"]).stem for r in rows})
    notes = (f"\n{len(rows)} cells found; {len(missing)} expected cell(s) missing: {', '.join(missing) or 'none'}; "
             f"{len(ignored)} file(s) of cells the study settings do not ask for left out: {', '.join(ignored) or 'none'}\n")
    (out / "tables.md").write_text("\n".join(md) + notes)
    flat = {f"{m}_{lab.split()[0].lower()}_n{n}": s[m] for (lab, n), s in summary.items() if lab in ("Ours", "Baseline")
            for m in ("psnr_lower", "psnr_mouth", "lmd_mouth_px", "sync_expert_lse_c", "psnr", "ssim", "fid")}
    flat.update({f"{m}_copy_ref_n{n}": s[m] for (lab, n), s in summary.items() if lab == FLOORS["copy_ref"]
                 for m in ("psnr_lower", "psnr_mouth", "psnr")})
    flat.update({f"{m}_ours_minus_baseline_n{n}": d["diff"] for (m, n), d in diffs.items()
                 if m in ("psnr_lower", "psnr_mouth", "lmd_mouth_px", "sync_expert_lse_c")})
    flat["n_runs_ours"] = sum(1 for r in rows if r["label"] == "Ours")
    flat["n_runs_baseline"] = sum(1 for r in rows if r["label"] == "Baseline")
    flat.update({f"style_{k}_n{r[0]}": r[1 + STYLE_COLUMNS.index(k)] for r in style_rows
                 for k in ("lve_mean_mm_before", "lve_mean_mm_after")})
    flat["n_cells"] = len(rows)
    if summary_path is not None:
        write_json(summary_path, dict(sorted(flat.items())))
        write_settings(summary_path, study)
    return {"rows": rows, "summary": summary, "differences": diffs, "markdown": "\n".join(md), "missing": missing,
            "ignored": ignored, "flat": flat}


STYLE_COLUMNS = ("lve_mean_mm_before", "lve_mean_mm_after", "lve_mean_mm_static", "lve_gain_mm", "jaw_corr_before",
                 "jaw_corr_after")


def style_table(style_dir: str | os.PathLike, study: Mapping[str, Any] | None = None
                ) -> tuple[list[str], list[list[Any]]]:
    """The per-person style layer vs N (``deadlib.audio2expr.style_stage`` cells in ``style_dir``): one row per N,
    means over identities of the test-part lip vertex error without / with the layer (mm), of a
    still neutral face, the gain (before − after, > 0 = the layer helps) and jaw correlations.
    With ``study``, only its identities × sizes (``<identity>_n<N>.json``) count."""
    asked = None if study is None else {f"{i}_n{n}" for i in study.get("identities", []) for n in study.get("sizes", [])}
    cells: dict[int, list[dict]] = {}
    for path in sorted(Path(style_dir).glob("*.json")):
        if path.name.endswith(".settings.json") or (asked is not None and path.stem not in asked):
            continue
        m = json.loads(path.read_text())
        cells.setdefault(int(m["n_frames"]), []).append(m)
    rows = [[n, *[float(np.mean([c[k] for c in cells[n]])) for k in STYLE_COLUMNS], len(cells[n])] for n in sorted(cells)]
    return ["n_frames", *STYLE_COLUMNS, "n_ids"], rows


def expected_cells(study: Mapping[str, Any]) -> list[str]:
    """Cell names the study settings ask for (main grid + the two ablations per identity)."""
    names = [cell_name(m, i, n, seed=s) for i in study.get("identities", []) for n in study.get("sizes", [])
             for s in study.get("seeds", [0]) for m in study.get("methods", ["prior", "scratch"])]
    n = study.get("ablation_size")
    if n is not None:
        names += [cell_name("prior", i, n, v, seed=0) for i in study.get("identities", []) for v in ("nomix", "nopost")]
    return names


def load_samples(eval_dir: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """A cell's ``samples.npz`` (evaluate outputs) or None when it was not evaluated."""
    path = Path(eval_dir) / "samples.npz"
    if not path.is_file():
        return None
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def size_grid(models_dir: str | os.PathLike, identity: str, sizes: Sequence[int], sample: int = 0,
              mouth: bool = False, seed: int = 0) -> tuple[np.ndarray, list[str], list[int]]:
    """Fig. 7 grid (uint8): rows Baseline / Ours (+ ground truth), columns N — one test frame
    (``sample``-th saved sample) per cell; ``mouth`` crops around the mouth mask (2x upscaled)."""
    import cv2

    rows, labels = [], []
    real = None
    for method, label in (("scratch", "Baseline"), ("prior", "Ours")):
        tiles = []
        for n in sizes:
            s = load_samples(Path(models_dir) / cell_name(method, identity, n, seed=seed) / "eval")
            tile = None if s is None else s["pred"][min(sample, len(s["pred"]) - 1)]
            if s is not None and real is None:
                real = s["real"][min(sample, len(s["real"]) - 1)], s["mouth"][min(sample, len(s["mouth"]) - 1)]
            tiles.append(tile)
        rows.append(tiles)
        labels.append(label)
    if real is None:
        raise FileNotFoundError(f"no evaluated cell of {identity} under {models_dir}")
    size = real[0].shape[0]
    blank = np.full((size, size, 3), 255, np.uint8)
    rows = [[t if t is not None else blank for t in r] for r in rows] + [[real[0]] * len(sizes)]
    labels.append("ground truth")
    if mouth:
        ys, xs = np.nonzero(real[1] > 0.5)
        cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (size * 2 // 3, size // 2)
        h = max(8, size // 5)
        y0, x0 = int(np.clip(cy - h, 0, size - 2 * h)), int(np.clip(cx - h, 0, size - 2 * h))
        rows = [[cv2.resize(t[y0:y0 + 2 * h, x0:x0 + 2 * h], (4 * h, 4 * h), interpolation=cv2.INTER_NEAREST)
                 for t in r] for r in rows]
    return np.concatenate([np.concatenate(r, 1) for r in rows], 0), labels, list(sizes)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m deadlib.eval.study`` — aggregate the per-cell metrics into tables and plots."""
    ap = argparse.ArgumentParser(prog="python -m deadlib.eval.study", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--params", default=None)
    ap.add_argument("--metrics-dir", default="metrics/adapt")
    ap.add_argument("--out", default="reports/study")
    ap.add_argument("--summary", default="metrics/study.json")
    args = ap.parse_args(argv)
    result = aggregate(args.metrics_dir, args.out, stage_config("study", args.profile, params_path=args.params), args.summary)
    print(result["markdown"])
    return result


if __name__ == "__main__":
    main()
