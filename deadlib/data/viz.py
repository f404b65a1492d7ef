"""Figures for the stage notebooks: tracked meshes, UV/mask rasters, crop stability, expression traces.

Every function takes arrays (as stored in the prepare caches) and returns a matplotlib figure
or an ipywidgets widget, so notebooks stay a few lines per cell. Interactive widgets always
have a static counterpart (``raster_grid``) so executed reports read without a kernel.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from deadlib.data.audio import frame_mel_windows
from deadlib.data.face3d import MASK_FACE, MASK_LOWER, MASK_MOUTH, weight_map
from deadlib.data.facemesh import load_topology


def evenly(n: int, k: int, pool: np.ndarray | None = None) -> np.ndarray:
    """``k`` indices spread over ``range(n)`` (or over the entries of ``pool``)."""
    pool = np.arange(n) if pool is None else np.asarray(pool)
    if len(pool) == 0:
        return pool
    return pool[np.linspace(0, len(pool) - 1, min(k, len(pool))).round().astype(int)]


def uv_to_rgb(uv: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """UV map (H, W, 2) → RGB image (H, W, 3) in [0, 1] (u red, v green, face blue tint)."""
    uv = np.asarray(uv, np.float32)
    blue = np.full(uv.shape[:2], 0.3, np.float32) if mask is None else 0.3 * (mask > 0)
    return np.clip(np.dstack([uv[..., 0], uv[..., 1], blue]), 0, 1)


def mesh_overlay(frames: np.ndarray, meshes: np.ndarray, indices: Sequence[int], cols: int = 4,
                 valid: np.ndarray | None = None):
    """Grid of frames (N, H, W, 3) with the mesh wireframe (N, 468, ≥2, frame px) on top."""
    topo = load_topology()
    rows = -(-len(indices) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    lips = np.concatenate([topo.lips_outer, topo.lips_outer[:1]])
    for ax, i in zip(axes.flat, indices):
        ax.imshow(frames[i])
        if valid is None or valid[i]:
            m = meshes[i]
            ax.triplot(m[:, 0], m[:, 1], topo.skin_faces, lw=0.2, color="cyan", alpha=0.6)
            ax.plot(m[lips, 0], m[lips, 1], color="red", lw=0.8)
        else:
            ax.text(0.5, 0.5, "no face", color="yellow", ha="center", transform=ax.transAxes)
        ax.set_title(f"frame {i}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def raster_grid(frames: np.ndarray, uv: np.ndarray, masks: np.ndarray, indices: Sequence[int],
                levels: Sequence[float] = (1.0, 2.0, 4.0)):
    """Rows = frames; columns = crop | UV raster | face | lower face | mouth | L1 weight."""
    titles = ["crop", "UV", "face mask", "lower face", "mouth", "L1 weight"]
    fig, axes = plt.subplots(len(indices), 6, figsize=(12, 2.1 * len(indices)), squeeze=False)
    for row, i in zip(axes, indices):
        bits = np.asarray(masks[i])
        images = [frames[i], uv_to_rgb(uv[i], bits & MASK_FACE), bits & MASK_FACE, bits & MASK_LOWER,
                  bits & MASK_MOUTH, weight_map(bits, *levels)]
        for k, (ax, img) in enumerate(zip(row, images)):
            ax.imshow(img, cmap="gray" if k > 1 else None, vmin=0 if k in (2, 3, 4) else None)
            ax.set_xticks([]), ax.set_yticks([])
            if i == indices[0]:
                ax.set_title(titles[k], fontsize=9)
        row[0].set_ylabel(f"frame {i}", fontsize=8)
    fig.tight_layout()
    return fig


def crop_params(transforms: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop centres (N, 2) and sides (N,) in source pixels back from (N, 2, 3) transforms."""
    scale = transforms[:, 0, 0]
    return (resolution / 2 - transforms[:, :, 2]) / scale[:, None], resolution / scale


def crop_stability(transforms: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, resolution: int,
                   scale: float = 1.6, shift_down: float = 0.1, fps: float = 25.0):
    """Crop centre x / y and side over time: stored (smoothed) crops against the unsmoothed
    per-frame crop boxes (dots) that the same ``scale`` / ``shift_down`` give."""
    from deadlib.data.crop import crop_boxes

    centres, sides = crop_params(transforms, resolution)
    raw_c, raw_s = crop_boxes(np.nan_to_num(landmarks), valid, scale, shift_down, {"method": "none"}, fps)
    t = np.arange(len(centres)) / fps
    fig, axes = plt.subplots(1, 3, figsize=(12, 2.6))
    for ax, smooth, raw, name in zip(axes, (centres[:, 0], centres[:, 1], sides),
                                     (raw_c[:, 0], raw_c[:, 1], raw_s), ("centre x", "centre y", "side")):
        ax.plot(t[valid], raw[valid], ".", ms=2, color="0.6", label="per-frame box (raw)")
        ax.plot(t, smooth, lw=1.2, label="crop (smoothed)")
        ax.set_title(f"{name} [source px]", fontsize=9)
        ax.set_xlabel("s")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def expression_traces(expr: np.ndarray, jaw_index: int, mel: np.ndarray, valid: np.ndarray,
                      fps: float = 25.0, others: int = 3, truth: np.ndarray | None = None):
    """Jaw-dominant expression coefficient (and a few others) against speech energy from the MEL."""
    n = len(expr)
    energy = frame_mel_windows(np.asarray(mel, np.float32), n, fps).mean((1, 2))  # (N,)
    t = np.arange(n) / fps
    z = lambda x: (x - x[valid].mean()) / (x[valid].std() + 1e-8)  # noqa: E731
    fig, axes = plt.subplots(2, 1, figsize=(12, 4.5), sharex=True)
    axes[0].plot(t, z(expr[:, jaw_index]), label=f"expr[{jaw_index}] (jaw)")
    axes[0].plot(t, z(energy), label="speech energy (MEL)", alpha=0.7)
    if truth is not None:
        axes[0].plot(t, z(truth[:n]), "--", label="jaw_open (synthetic truth)", alpha=0.8)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_title("standardised traces", fontsize=9)
    for k in [k for k in range(expr.shape[1]) if k != jaw_index][:others]:
        axes[1].plot(t, expr[:, k], lw=0.8, label=f"expr[{k}]")
    axes[1].fill_between(t, axes[1].get_ylim()[0] if n else 0, 0, where=~valid, color="red", alpha=0.15,
                         label="no face")
    axes[1].legend(fontsize=7, loc="upper right")
    axes[1].set_xlabel("s")
    fig.tight_layout()
    return fig


def no_face_report(summary: Mapping, reports: Mapping[str, Mapping]):
    """Bar chart of frames with / without the tracked face per video, skipped videos listed."""
    names = sorted(reports)
    ok = [reports[n]["valid_frames"] for n in names]
    missing = [reports[n]["no_face_frames"] for n in names]
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(names) + 2), 2.8))
    ax.bar(names, ok, label="face tracked")
    ax.bar(names, missing, bottom=ok, color="tab:red", label="no face (flagged, passed through)")
    ax.set_ylabel("frames")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    skipped = summary.get("skipped", {})
    text = "\n".join(f"skipped {k}: {v[:90]}" for k, v in skipped.items()) or "no video skipped"
    ax.set_title(text, fontsize=7, loc="left")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def frame_panel(frames: np.ndarray, uv: np.ndarray, masks: np.ndarray, index: int,
                levels: Sequence[float] = (1.0, 2.0, 4.0)) -> np.ndarray:
    """One frame as a (S, 6·S, 3) uint8 strip: crop | UV | face | lower face | mouth | L1 weight."""
    bits = np.asarray(masks[index])
    grey = lambda m: np.repeat((np.asarray(m, np.float32) / max(float(np.max(m)), 1e-6))[..., None], 3, -1)  # noqa: E731
    tiles = [np.asarray(frames[index], np.float32) / 255.0, uv_to_rgb(uv[index], bits & MASK_FACE),
             grey(bits & MASK_FACE), grey(bits & MASK_LOWER), grey(bits & MASK_MOUTH),
             grey(weight_map(bits, *levels))]
    return (np.concatenate(tiles, axis=1) * 255 + 0.5).clip(0, 255).astype(np.uint8)


def frame_slider(frames: np.ndarray, uv: np.ndarray, masks: np.ndarray, levels: Sequence[float] = (1.0, 2.0, 4.0),
                 zoom: int = 2):
    """ipywidgets slider over frames showing ``frame_panel`` of the chosen frame.

    The picture is a PNG in an ``Image`` widget (no Output widget, no matplotlib in callbacks),
    so executing the notebook headless (papermill) never waits on a widget frontend.
    """
    import cv2
    import ipywidgets as widgets

    def png(index: int) -> bytes:
        strip = frame_panel(frames, uv, masks, index, levels)
        strip = cv2.resize(strip, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        return cv2.imencode(".png", strip[..., ::-1])[1].tobytes()  # OpenCV writes BGR

    image = widgets.Image(value=png(0), format="png")
    slider = widgets.IntSlider(value=0, min=0, max=len(frames) - 1, description="frame")
    slider.observe(lambda change: setattr(image, "value", png(change["new"])), names="value")
    return widgets.VBox([slider, image])
