"""The bounding-box rasteriser (deadlib.data.raster_bbox) against pytorch3d's tiled one (deadlib.data.raster).

    .venv/bin/python benchmarks/bench_raster.py                                   # real meshes if prepared
    .venv/bin/python benchmarks/bench_raster.py --track real/data/prepared/dfrf_cnn2/track.npz --sizes 128 256

Both rasterise the same meshes — a prepared video's tracked crop meshes (``mesh_crop`` of a
``track.npz``: what prepare and dubbing rasterise), else the project's mean face turned at random — at
each size, in batches of ``--batch`` (prepare.raster.batch), timed in the same run at 1 and 2 torch
threads (pytorch3d's is single-threaded: ``face3d.raster_maps`` runs it under ``single_torch_thread``).
Prints ms per frame, the ratio pytorch3d / bbox and the agreement: the share of pixels with the same
triangle, and the largest UV difference where they agree (float16 storage rounds at ≈ 5e-4). No timed
assertions; writes ``benchmarks/results/cpu<N>_bench_raster.txt`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from deadlib.data.facemesh import load_topology
from deadlib.data.raster import interpolate, rasterize
from deadlib.data.raster_bbox import posed_mean_faces, rasterize_bbox
from deadlib.tools.machine import describe, save_result

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACK = REPO / "real" / "data" / "prepared" / "dfrf_cnn2" / "track.npz"


def meshes_at(track: Path | None, n: int, size: int) -> tuple[torch.Tensor, str]:
    """(n, 468, 3) crop-pixel meshes scaled from the prepared resolution to ``size``, and where they came from."""
    if track is not None and track.is_file():
        with np.load(track) as d:
            mesh, valid = d["mesh_crop"], d["valid"].astype(bool)
        mesh = mesh[np.flatnonzero(valid)[:n]].astype(np.float32)
        prepared = np.load(track.parent / "frames.npy", mmap_mode="r").shape[1]  # the crop side the meshes are in
        return torch.as_tensor(mesh * (size / prepared)), f"{track} ({len(mesh)} tracked frames at {prepared} px)"
    return posed_mean_faces(n, size), "the mean face at random poses (no prepared track.npz)"


def timed(fn, repeats: int) -> float:
    """Best of ``repeats`` wall seconds of fn()."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--track", type=Path, default=DEFAULT_TRACK)
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tile", type=int, default=32, help="pytorch3d's tile (prepare.raster.tile)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    topo = load_topology()
    faces, uv = torch.as_tensor(topo.faces), torch.as_tensor(topo.uv, dtype=torch.float32)
    report, lines = {}, []
    for size in args.sizes:
        verts, source = meshes_at(args.track, args.frames, size)
        batches = list(torch.split(verts, args.batch))
        row = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            row[f"pytorch3d_{threads}t_ms"] = timed(lambda: [rasterize(b, faces, size, args.tile) for b in batches],
                                                    args.repeats) / len(verts) * 1e3
            row[f"bbox_{threads}t_ms"] = timed(lambda: [rasterize_bbox(b, faces, size) for b in batches],
                                               args.repeats) / len(verts) * 1e3
        ref, ours = rasterize(verts, faces, size, args.tile), rasterize_bbox(verts, faces, size)
        same = ref.pix_to_face == ours.pix_to_face
        covered = same & ref.mask
        row.update(same_triangle=float(same.float().mean()), differing_pixels=int((~same).sum()),
                   uv_max_diff=float((interpolate(ref, uv) - interpolate(ours, uv)).abs()[covered].max()),
                   frames=len(verts), source=source)
        report[size] = row
    lines.append(f"machine: {describe()}")
    lines.append(f"meshes: {source}; batches of {args.batch}; pytorch3d tiles of {args.tile} px; best of {args.repeats}")
    lines.append(f"{'size':>5}{'pytorch3d 1t':>14}{'bbox 1t':>10}{'pytorch3d 2t':>14}{'bbox 2t':>10}"
                 f"{'ratio 1t':>10}{'ratio 2t':>10}{'same triangle':>15}{'uv max diff':>13}")
    for size, r in report.items():
        lines.append(f"{size:>5}{r['pytorch3d_1t_ms']:>11.2f} ms{r['bbox_1t_ms']:>7.2f} ms{r['pytorch3d_2t_ms']:>11.2f} ms"
                     f"{r['bbox_2t_ms']:>7.2f} ms{r['pytorch3d_1t_ms'] / r['bbox_1t_ms']:>9.1f}x"
                     f"{r['pytorch3d_2t_ms'] / r['bbox_2t_ms']:>9.1f}x{r['same_triangle']:>15.6f}{r['uv_max_diff']:>13.1e}")
    lines.append("ms per frame; ratio = pytorch3d / bbox at the same thread count (same run)")
    text = "\n".join(lines)
    print(text)
    if not args.no_save:
        save_result("bench_raster.py", "bench_raster", argv, text, report)
    return report


if __name__ == "__main__":
    main()
