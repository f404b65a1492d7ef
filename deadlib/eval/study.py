"""Aggregation of the adaptation study: per-cell metrics files → Table 1/3/4-style tables, curves
of metric vs N (prior vs scratch) and the Fig. 7-style sample grid.

Every cell wrote ``<metrics_dir>/<cell>.json`` (flat numbers) and ``<cell>.reasons.json``
(``cell`` labels: method, identity, n_frames, variant). Rows are labelled

    Baseline                   method scratch (renderer + texture from scratch)
    Ours                       method prior, mixed data, post-processing (the full model)
    Ours w/o mixed data        variant nomix   (mixed_ratio 0)
    Ours w/o post-processing   variant nopost  (blend none at evaluation)

and averaged over identities (``n_ids`` says over how many). Outputs under ``out_dir``:
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
from deadlib.train.study_config import cell_name, parse_cell_name

LABELS = {("scratch", ""): "Baseline", ("prior", ""): "Ours", ("prior", "nomix"): "Ours w/o mixed data",
          ("prior", "nopost"): "Ours w/o post-processing"}
CURVE_METRICS = ("psnr", "ssim", "psnr_mouth", "ssim_mouth", "lmd_mouth_px", "sync_conf_deadlib", "fid", "fvd",
                 "frame_psnr", "frame_ssim")
TABLE_METRICS = ("psnr", "ssim", "fid", "fvd")                     # the paper's columns
ABLATION_METRICS = ("psnr", "ssim", "frame_psnr", "frame_ssim", "fid", "frame_fid", "fvd", "lmd_mouth_px")
LOWER_IS_BETTER = {"fid", "fvd", "frame_fid", "lmd_mouth_px"}


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


def summarise(rows: Iterable[Mapping], metrics: Sequence[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """{(label, n_frames): {metric: mean over identities or None, metric_std, n_ids}}."""
    groups: dict[tuple[str, int], list[Mapping]] = defaultdict(list)
    for row in rows:
        groups[(row["label"], int(row["n_frames"]))].append(row)
    out = {}
    for key, group in groups.items():
        stats: dict[str, Any] = {"n_ids": len({r["identity"] for r in group})}
        for m in metrics:
            values = [r[m] for r in group if r.get(m) is not None]
            stats[m] = float(np.mean(values)) if values else None
            stats[f"{m}_std"] = float(np.std(values)) if len(values) > 1 else None
        out[key] = stats
    return out


def _fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.3f}" if "ssim" in metric else f"{value:.2f}"


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


def size_table(summary: Mapping, metric: str, sizes: Sequence[int]) -> tuple[list[str], list[list[Any]]]:
    """Table 4: rows Baseline / Ours, columns N, values = ``metric`` (mean over identities)."""
    rows = [[label, *[summary.get((label, n), {}).get(metric) for n in sizes]] for label in ("Baseline", "Ours")]
    return ["N frames", *map(str, sizes)], rows


def ablation_table(summary: Mapping, n: int, metrics: Sequence[str] = ABLATION_METRICS):
    """Table 3: rows w/o post-processing, w/o mixed data, full, at N = ``n``."""
    labels = ("Ours w/o post-processing", "Ours w/o mixed data", "Ours")
    rows = [[label, *[summary.get((label, n), {}).get(m) for m in metrics]] for label in labels]
    return ["Method", *metrics], rows


def comparison_table(summary: Mapping, sizes: Sequence[int], metrics: Sequence[str] = TABLE_METRICS):
    """Table 1 (our rows only): Baseline / Ours × (N, metric)."""
    header = ["Method", *[f"{m} @{n}" for n in sizes for m in metrics]]
    rows = [[label, *[summary.get((label, n), {}).get(m) for n in sizes for m in metrics]]
            for label in ("Baseline", "Ours")]
    return header, rows


def plot_curves(rows: Sequence[Mapping], metrics: Sequence[str], path: str | os.PathLike | None = None):
    """Metric vs N (log x) for Baseline vs Ours: thin lines per identity, thick = mean."""
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if any(r.get(m) is not None for r in rows)] or list(metrics[:1])
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
    colours = {"Baseline": "tab:gray", "Ours": "tab:blue"}
    for ax, m in zip(axes[0], metrics):
        for label, colour in colours.items():
            sel = [r for r in rows if r["label"] == label and r.get(m) is not None]
            for ident in sorted({r["identity"] for r in sel}):
                pts = sorted((r["n_frames"], r[m]) for r in sel if r["identity"] == ident)
                ax.plot(*zip(*pts), color=colour, lw=0.7, alpha=0.4)
            means = summarise(sel, [m])
            pts = sorted((n, s[m]) for (lab, n), s in means.items() if s[m] is not None)
            if pts:
                ax.plot(*zip(*pts), "o-", color=colour, lw=2, label=label)
        ax.set(xscale="log", xlabel="N training frames", title=m + (" ↓" if m in LOWER_IS_BETTER else " ↑"))
        ticks = sorted({r["n_frames"] for r in rows})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.legend(fontsize=8)
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
    rows = load_cells(metrics_dir)
    metrics = sorted({*CURVE_METRICS, *ABLATION_METRICS})
    summary = summarise(rows, metrics)
    sizes = sorted({int(n) for n in study.get("sizes", [])} | {n for (lab, n) in summary if lab in ("Ours", "Baseline")})
    md = [_write(out, f"size_{m}", *size_table(summary, m, sizes), f"{m} vs training frames (Table 4 style)", m)
          for m in ("fid", "psnr", "ssim", "psnr_mouth", "lmd_mouth_px")]
    md.append(_write(out, "ablation", *ablation_table(summary, int(study["ablation_size"])),
                     f"Ablations at N = {study.get('ablation_size', 100)} (Table 3 style)"))
    md.append(_write(out, "comparison", *comparison_table(summary, study.get("table_sizes", [100, 1000])),
                     "Ours vs baseline (Table 1 style)"))
    for method, label in (("prior", "Ours"), ("scratch", "Baseline")):
        _write(out, f"curve_{method}", ["n_frames", *CURVE_METRICS, "n_ids"],
               [[n, *[summary[(label, n)][m] for m in CURVE_METRICS], summary[(label, n)]["n_ids"]]
                for n in sizes if (label, n) in summary], f"{label} vs N")
    style_rows: list[list[Any]] = []
    if style_dir is not None:
        header, style_rows = style_table(style_dir)
        md.append(_write(out, "style_lve", header, style_rows,
                         "Audio-to-expression: lip vertex error (mm) without / with the style layer fitted on N frames"))
    import matplotlib.pyplot as plt

    plt.close(plot_curves(rows, ("psnr", "ssim", "psnr_mouth", "lmd_mouth_px", "fid"), out / "size_curves.png"))
    expected = expected_cells(study)
    missing = sorted(set(expected) - {Path(r["file"]).stem for r in rows})
    notes = f"\n{len(rows)} cells found; {len(missing)} expected cell(s) missing: {', '.join(missing) or 'none'}\n"
    (out / "tables.md").write_text("\n".join(md) + notes)
    flat = {f"{m}_{lab.split()[0].lower()}_n{n}": s[m] for (lab, n), s in summary.items() if lab in ("Ours", "Baseline")
            for m in ("psnr", "ssim", "psnr_mouth", "lmd_mouth_px", "fid")}
    flat.update({f"style_{k}_n{r[0]}": r[1 + STYLE_COLUMNS.index(k)] for r in style_rows
                 for k in ("lve_mean_mm_before", "lve_mean_mm_after")})
    flat["n_cells"] = len(rows)
    if summary_path is not None:
        write_json(summary_path, dict(sorted(flat.items())))
        write_settings(summary_path, study)
    return {"rows": rows, "summary": summary, "markdown": "\n".join(md), "missing": missing, "flat": flat}


STYLE_COLUMNS = ("lve_mean_mm_before", "lve_mean_mm_after", "lve_mean_mm_static", "lve_gain_mm", "jaw_corr_before",
                 "jaw_corr_after")


def style_table(style_dir: str | os.PathLike) -> tuple[list[str], list[list[Any]]]:
    """The per-person style layer vs N (``deadlib.train.style_stage`` cells in ``style_dir``): one row per N,
    means over identities of the test-part lip vertex error without / with the layer (mm), of a
    still neutral face, the gain (before − after, > 0 = the layer helps) and jaw correlations."""
    cells: dict[int, list[dict]] = {}
    for path in sorted(Path(style_dir).glob("*.json")):
        if path.name.endswith(".settings.json"):
            continue
        m = json.loads(path.read_text())
        cells.setdefault(int(m["n_frames"]), []).append(m)
    rows = [[n, *[float(np.mean([c[k] for c in cells[n]])) for k in STYLE_COLUMNS], len(cells[n])] for n in sorted(cells)]
    return ["n_frames", *STYLE_COLUMNS, "n_ids"], rows


def expected_cells(study: Mapping[str, Any]) -> list[str]:
    """Cell names the study settings ask for (main grid + the two ablations per identity)."""
    names = [cell_name(m, i, n) for i in study.get("identities", []) for n in study.get("sizes", [])
             for m in study.get("methods", ["prior", "scratch"])]
    n = study.get("ablation_size")
    if n is not None:
        names += [cell_name("prior", i, n, v) for i in study.get("identities", []) for v in ("nomix", "nopost")]
    return names


def load_samples(eval_dir: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """A cell's ``samples.npz`` (evaluate outputs) or None when it was not evaluated."""
    path = Path(eval_dir) / "samples.npz"
    if not path.is_file():
        return None
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def size_grid(models_dir: str | os.PathLike, identity: str, sizes: Sequence[int], sample: int = 0,
              mouth: bool = False) -> tuple[np.ndarray, list[str], list[int]]:
    """Fig. 7 grid (uint8): rows Baseline / Ours (+ ground truth), columns N — one test frame
    (``sample``-th saved sample) per cell; ``mouth`` crops around the mouth mask (2x upscaled)."""
    import cv2

    rows, labels = [], []
    real = None
    for method, label in (("scratch", "Baseline"), ("prior", "Ours")):
        tiles = []
        for n in sizes:
            s = load_samples(Path(models_dir) / cell_name(method, identity, n) / "eval")
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
