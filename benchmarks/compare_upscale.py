"""How the 128 px render should be enlarged into a large face (issue 14, item 4): the upscale floor.

    .venv/bin/python benchmarks/compare_upscale.py [--kernels linear cubic lanczos] [--stride 1]

The renderer draws 128 px crops; a face of 384–1080 px video spans 300–600 frame pixels, so every
dubbed frame magnifies the render 2.5–5×. ``deadlib.dub.render.composite`` pastes it with
``deadlib.data.blend.paste_back``, whose warp is bilinear — the softest kernel there is — unless
``dub.blend.upscale`` first resizes the crop with a sharper one (``deadlib.dub.render.enlarge``).

To measure what the enlargement alone costs, this benchmark takes the renderer out: a PERFECT 128 px
renderer would output exactly the prepared crop (``frames.npy``, what the renderer is trained to
reproduce). That crop is pasted back into its own native frame by ``composite`` with the dub's own
blend settings and mask (the lower face, grown by the feather), once per kernel, and compared with the
native frame: PSNR / SSIM inside the lower face and the mouth (the crop's masks warped into the frame),
and the sharpness ratio (``deadlib.eval.sharpness``: variance of the Laplacian, output / real; 1 = as
sharp as the truth). It is the ceiling any 128 px render can reach in the frame, per kernel. ``--sides``
adds the same ceiling for a renderer of another resolution (default twice the profile's: 256 px, the
``full`` profile's GPU renderer): the native frame cropped at that side, as prepare crops, and pasted the
same way — what a higher-resolution renderer would buy at best.

Frames: every real corpus person's VALIDATION span (``report.json`` splits; the test parts are never
read) from ``real/data/prepared`` (384 px; run the real pipeline's ``prepare`` first), and ``--clips``
(default the two 512 px clips of ../shared/clips, prepared here into a temporary folder with the real
basis; they belong to no study). Kernels are compared per person (paired differences to ``linear``,
95 % Student-t intervals over people); the choice for ``dub.blend.upscale`` reads these validation
frames only. Also prints each kernel's composite time per frame. Writes
``benchmarks/results/upscale_real.json`` (README block ``upscale``) unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from deadlib.core.config import load_params, stage_config
from deadlib.core.intervals import mean_ci, paired_summary
from deadlib.data import face3d
from deadlib.data.blend import to_opencv_affine
from deadlib.data.crop import crop_frame
from deadlib.data.prepare import prepare_video
from deadlib.data.prepare import settings as prepare_settings
from deadlib.data.video import iter_frames
from deadlib.dub.dubbing import dub_settings
from deadlib.dub.render import UPSCALE_KERNELS, composite, crop_scale, paste_mask
from deadlib.eval.metrics import psnr, ssim
from deadlib.eval.sharpness import sharpness_ratio
from deadlib.tools.machine import describe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_texture_init import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIPS = REPO.parent / "shared" / "clips"
DEFAULT_CLIPS = ("hdtf_WDA_AlexandriaOcasioCortez_000.mp4", "vretalking_face2.mp4")
SCORES = ("psnr_lower", "ssim_lower", "psnr_mouth", "ssim_mouth", "sharpness_lower", "sharpness_mouth")


def frame_region(packed: np.ndarray, bit: int, affine: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """The crop-space mask bit ``bit`` of a packed (S, S) mask warped into the frame → (H, W) bool
    (bilinear, > 0.5), through the (2, 3) continuous-coordinate frame → crop ``affine``."""
    m = ((packed & bit) > 0).astype(np.float32)
    warped = cv2.warpAffine(m, to_opencv_affine(affine), (frame_hw[1], frame_hw[0]),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)
    return warped > 0.5


def box_of(region: np.ndarray, margin: int = 8) -> tuple[slice, slice]:
    """Row and column slices of ``region``'s bounding box grown by ``margin`` (clipped to the frame)."""
    ys, xs = np.nonzero(region)
    h, w = region.shape
    return (slice(max(ys.min() - margin, 0), min(ys.max() + margin + 1, h)),
            slice(max(xs.min() - margin, 0), min(xs.max() + margin + 1, w)))


def span_frames(folder: Path, split: str, stride: int, with_index: bool = False):
    """(native frame (H, W, 3) uint8, crop (S, S, 3), affine (2, 3), packed mask (S, S)[, frame index])
    for every ``stride``-th frame of the prepared video's ``split`` span (nothing when it has none)."""
    report = json.loads((folder / "report.json").read_text())
    span = report["splits"].get(split)
    if not span or span[1] <= span[0]:
        return
    source = Path(report["source"])
    source = source if source.is_absolute() else REPO / source
    track = np.load(folder / "track.npz")
    crops = np.load(folder / "frames.npy", mmap_mode="r")
    packed = np.load(folder / "raster.npz")["masks"]
    if tuple(report["tracking_size"]) != tuple(report["source_size"]):
        raise SystemExit(f"{folder.name}: tracked at {report['tracking_size']}, not its native "
                         f"{report['source_size']}: the crop affines are not in native pixels")
    for k, frame in enumerate(iter_frames(source, fps=report["fps_out"], max_frames=span[1])):
        if k >= span[0] and (k - span[0]) % stride == 0 and track["valid"][k]:
            yield (frame, np.asarray(crops[k]), track["crop"][k], packed[k]) + ((k,) if with_index else ())


def variants(kernels: list[str], sides: list[int], resolution: int) -> dict[str, tuple[str, int]]:
    """Variant name → (kernel, crop side): 'lanczos' at the renderer's side, 'lanczos@256' at another."""
    return {(k if side == resolution else f"{k}@{side}"): (k, side) for side in sides for k in kernels}


def rendered_frames(cell_dir: Path, folder: Path, n_frames: int):
    """(native frame, the cell's RENDER of it (S, S, 3), affine, packed mask) for the frames of the
    prepared video ``folder``'s validation span: a study cell's renderer and texture (``cell_dir``:
    checkpoint.pt, adapted on the first ``n_frames`` frames, references drawn from them as the study's
    evaluation draws them) render every validation window; the first render of each frame is kept."""
    from deadlib.data.dataset import WindowDataset
    from deadlib.eval.evaluate import render_test
    from deadlib.train.checkpoint import load_checkpoint

    state = load_checkpoint(cell_dir / "checkpoint.pt", "cpu", restore_rng=False, load_optimizers=False)
    r = state.cfg.renderer
    val = WindowDataset(folder.parent, [folder.name], split="val", window=r.window, n_refs=r.n_refs,
                        seed=state.cfg.seed, n_train_frames=n_frames, ref_split="train")
    rendered = render_test(state, val)
    first = {int(f): k for k, f in reversed(list(enumerate(rendered["frame_ids"])))}
    renders = {f: rendered["pred"][k] for f, k in first.items()}
    for frame, _, affine, packed, k in span_frames(folder, "val", 1, with_index=True):
        if k in renders:
            yield frame, renders[k], affine, packed


def lower_paste_mask(packed: np.ndarray, blend: dict, resolution: int) -> np.ndarray:
    """The dub's paste mask (S, S) of a packed crop mask: the lower face grown by the feather (as ChunkDubber)."""
    return paste_mask(((packed & face3d.MASK_LOWER) > 0)[None], int(round(float(blend["feather"]) * resolution)))[0]


def render_at(side: int, frame: np.ndarray, crop: np.ndarray, affine: np.ndarray, pmask: np.ndarray,
              resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop, frame → crop affine, paste mask) at crop side ``side``: the given ``crop`` at the renderer's
    ``resolution``; at another side the native frame cropped afresh (``crop_frame``, as prepare crops — a
    perfect render of that resolution) with the affine scaled and the mask resized to match."""
    if side == resolution:
        return crop, affine, pmask
    f = side / resolution
    return (crop_frame(frame, affine * f, side), affine * f,
            cv2.resize(pmask, (side, side), interpolation=cv2.INTER_LINEAR))


def score_frames(frames, blend: dict, kernels: list[str], resolution: int, sides: list[int]) -> dict:
    """Per variant (kernel × crop side): every score of :data:`SCORES` averaged over ``frames``, the
    composite's seconds a frame, and the magnification (face side in frame px / crop side). A side
    other than the renderer's crops the native frame afresh (``crop_frame``, as prepare does): what a
    perfect renderer at that resolution would draw."""
    named = variants(kernels, sides, resolution)
    per: dict = {v: defaultdict(list) for v in named}
    magnification = []
    for frame, crop, affine, packed in frames:
        lower = frame_region(packed, face3d.MASK_LOWER, affine, frame.shape[:2])
        mouth = frame_region(packed, face3d.MASK_MOUTH, affine, frame.shape[:2])
        if lower.sum() < 16 or mouth.sum() < 16:
            continue
        rows, cols = box_of(lower)
        real = frame[rows, cols]
        lo, mo = lower[rows, cols].astype(np.float64), mouth[rows, cols].astype(np.float64)
        pmask = lower_paste_mask(packed, blend, resolution)
        renders = {side: render_at(side, frame, crop, affine, pmask, resolution) for side in sides}
        magnification.append(1.0 / crop_scale(affine))
        for name, (kernel, side) in named.items():
            c, a, m = renders[side]
            t = time.perf_counter()
            out = composite(frame, c, a, m, {**blend, "upscale": kernel})[rows, cols]
            per[name]["seconds"].append(time.perf_counter() - t)
            scores = per[name]
            scores["psnr_lower"].append(psnr(out, real, lo))
            scores["ssim_lower"].append(ssim(out, real, lo))
            scores["psnr_mouth"].append(psnr(out, real, mo))
            scores["ssim_mouth"].append(ssim(out, real, mo))
            scores["sharpness_lower"].append(sharpness_ratio([out], [real], [lo]))
            scores["sharpness_mouth"].append(sharpness_ratio([out], [real], [mo]))
    return {k: {key: float(np.mean([v for v in vals if v is not None])) for key, vals in per[k].items()}
            | {"frames": len(per[k]["seconds"]), "magnification": float(np.mean(magnification))
               * resolution / named[k][1]}
            for k in named if per[k]["seconds"]}


def crops_figure(folder: Path, blend: dict, resolution: int, names: list[str], out: Path) -> None:
    """Before/after crops: the lower face of the middle frame of ``folder``'s validation span — the native
    frame, then the perfect render pasted with each variant of ``names`` — side by side, labelled (PNG)."""
    named = variants(list(UPSCALE_KERNELS), [resolution, 2 * resolution], resolution)
    frames = list(span_frames(folder, "val", 1))
    frame, crop, affine, packed = frames[len(frames) // 2]
    rows, cols = box_of(frame_region(packed, face3d.MASK_LOWER, affine, frame.shape[:2]))
    pmask = lower_paste_mask(packed, blend, resolution)
    tiles = [("native frame", frame[rows, cols])]
    for name in names:
        kernel, side = named[name]
        c, a, m = render_at(side, frame, crop, affine, pmask, resolution)
        label = f"{kernel}, perfect {side} px render"
        tiles.append((label, composite(frame, c, a, m, {**blend, "upscale": kernel})[rows, cols]))
    labelled = []
    for label, tile in tiles:
        tile = np.ascontiguousarray(tile)
        band = np.full((22, tile.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        labelled.append(np.concatenate([band, tile], 0))
    gap = np.full((labelled[0].shape[0], 4, 3), 255, np.uint8)
    sheet = np.concatenate([x for t in labelled for x in (t, gap)][:-1], 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {out} ({folder.name}, face ×{1 / crop_scale(affine):.2f} the {resolution} px crop)")


def prepared_clips(names: list[str], work: Path, profile: str) -> list[Path]:
    """The ``names`` of ../shared/clips prepared into ``work`` with the real corpus's basis; each is
    given a 'val' span covering all its frames (these clips belong to no study)."""
    cfg = prepare_settings(stage_config("prepare", profile, params_path=REPO / "params.yaml"))
    folders = []
    for name in names:
        report = prepare_video(SHARED_CLIPS / name, work, cfg, REPO / "real/data/prepared/expr_basis.npz")
        folder = work / report["name"]
        report = json.loads((folder / "report.json").read_text())
        report["splits"] = {"val": [0, report["frames"]]}
        (folder / "report.json").write_text(json.dumps(report))
        folders.append(folder)
    return folders


def compare(people: dict[str, dict], kernels: list[str]) -> dict:
    """Mean of each score per variant over people, and each variant − the first paired by person."""
    base = kernels[0]
    out = {}
    for kernel in kernels:
        rows = [p[kernel] for p in people.values() if kernel in p]
        entry = {key: mean_ci([r[key] for r in rows])[0] for key in (*SCORES, "seconds")}
        if kernel != base:
            entry[f"vs_{base}"] = {key: paired_summary([p[kernel][key] - p[base][key] for p in people.values()
                                                        if kernel in p and base in p]) for key in SCORES}
        out[kernel] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernels", nargs="+", default=list(UPSCALE_KERNELS), choices=list(UPSCALE_KERNELS))
    ap.add_argument("--profile", default="default")
    ap.add_argument("--sides", type=int, nargs="+", default=None,
                    help="crop sides of the perfect render (default: the renderer's, and twice it)")
    ap.add_argument("--stride", type=int, default=1, help="score every stride-th validation frame")
    ap.add_argument("--clips", nargs="*", default=list(DEFAULT_CLIPS), help="files of ../shared/clips")
    ap.add_argument("--figure", type=Path, default=None,
                    help="write only a before/after crops figure (PNG) of the first --clips clip, then stop")
    ap.add_argument("--figure-variants", nargs="+", default=["linear", "lanczos", "lanczos@256"])
    ap.add_argument("--cells", type=Path, default=None,
                    help="render mode: a folder of real study cells (real/models/adapt after `dvc repro`); each "
                         "held-out person's Ours cell at real_study.ablation_size renders its validation span and "
                         "THOSE renders are pasted (writes upscale_renders_real.json)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    kernels = ["linear", *[k for k in args.kernels if k != "linear"]]   # linear: the paired reference
    cache = REPO / "real/data/prepared"
    if not (cache / "expr_basis.npz").is_file():
        raise SystemExit("real/data/prepared is not there: run `dvc repro real/dvc.yaml:prepare` first")
    blend = dub_settings(args.profile, REPO / "params.yaml")["blend"]
    resolution = int(stage_config("prepare", args.profile, params_path=REPO / "params.yaml")["resolution"])
    sides = [resolution, *[s for s in (args.sides or [2 * resolution]) if s != resolution]]
    people: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="upscale_clips_") as tmp:
        if args.figure:
            if not args.clips or not SHARED_CLIPS.is_dir():
                raise SystemExit("--figure needs a clip of ../shared/clips (--clips NAME)")
            crops_figure(prepared_clips(args.clips[:1], Path(tmp), args.profile)[0], blend, resolution,
                         args.figure_variants, args.figure)
            return 0
        if args.cells:
            study = load_params(REPO / "params.yaml")["real_study"]
            sides, n_cell = [resolution], int(study["ablation_size"])
            folders = [cache / name for name in study["identities"]]
            frames_of = {f: rendered_frames(args.cells / f"prior_{f.name}_n{n_cell}_s0", f, n_cell) for f in folders}
        else:
            clips = prepared_clips(args.clips, Path(tmp), args.profile) if args.clips and SHARED_CLIPS.is_dir() else []
            folders = sorted(p.parent for p in cache.glob("*/report.json")) + clips
            frames_of = {f: span_frames(f, "val", args.stride) for f in folders}
        for folder in folders:
            scored = score_frames(frames_of[folder], blend, kernels, resolution, sides)
            if not scored:
                continue
            people[folder.name] = scored
            line = "  ".join(f"{k} {v['psnr_lower']:.2f}/{v['sharpness_mouth']:.2f}" for k, v in scored.items())
            print(f"{folder.name:32s} ×{scored[kernels[0]]['magnification']:.2f}  {scored[kernels[0]]['frames']:4d} "
                  f"frames  psnr_lower/sharpness_mouth: {line}", flush=True)
    summary = compare(people, list(variants(kernels, sides, resolution)))
    for kernel, entry in summary.items():
        diffs = entry.get(f"vs_{kernels[0]}", {})
        text = "  ".join(f"{key} {d['mean']:+.3f} ± {d['ci95']:.3f} ({d['higher']}/{d['n']})"
                         for key, d in diffs.items() if d)
        print(f"{kernel:8s} {entry['seconds'] * 1e3:6.2f} ms/frame  {text}")
    result = {"machine": describe(), "profile": args.profile, "stride": args.stride, "blend": blend,
              "clips": [] if args.cells else args.clips, "resolution": resolution, "sides": sides,
              "renders": f"Ours cells prior_<person>_n{n_cell}_s0" if args.cells else None,
              "kernels": list(variants(kernels, sides, resolution)), "people": people, "summary": summary}
    if not args.no_save:
        write_results(f"upscale_{'renders_' if args.cells else ''}real", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
