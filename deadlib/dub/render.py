"""Dubbing geometry and pixels: new mouth coefficients → meshes → UV/masks → rendered crops → frames.

Mouth replacement (``mouth_blend``). Pose and identity are always the video's; the expression
coefficients are mixed so that the LOWER face (``facemesh.lower_face`` ∪ ``mouth_dilated``: jaw,
lips, chin, cheeks below the nose) follows the audio-driven coefficients ``c_a`` and the rest of
the face (eyes, brows, forehead) follows the video's own ``c_v``, in the least-squares sense over
the vertices (method ``lsq``, default):

    c = argmin Σ_{v∈lower} |B_v·(c − c_a)|² + Σ_{v∉lower} |B_v·(c − c_v)|²
      = M c_a + (I − M) c_v,      M = G⁻¹ G_lower,  G = Bᵀ B,  G_lower = B_lowerᵀ B_lower   (K × K)

(B = the corpus basis in cm; M is the identity for components living only on the lower face and
zero for components living only above it). Method ``ramp`` is the per-coefficient alternative:
``M = diag(w)``, ``w_k`` ramped from 0 to 1 as the component's lower-face energy share
``f_k = Σ_{v∈lower}|B_k,v|² / Σ_v|B_k,v|²`` goes from ``mouth_ramp[0]`` to ``[1]`` (jaw: 1).
Measured on the real smoke clip (vretalking_face2 driven by vretalking_audio1, synthetic basis):
the dubbed mesh's mouth opening correlates r = 0.56 with the new audio's energy and 0.12 with the
clip's own audio with ``lsq``, but 0.36 / 0.36 with ``ramp`` (its partial weights keep much of the
real mouth's own motion); on the synthetic held-out actor both give ≈ 0.87 / ≈ 0.03. Only the
lower face is re-rendered (the renderer's mask), so the upper face keeps its real pixels anyway.
Method ``none`` (M = 0) keeps the video's own coefficients: no audio reaches the geometry, only the
renderer's audio styles — a diagnostic (the self-reenactment's ``tracked`` drive: how much of the
real mouth the renderer reproduces from the real geometry), not a dub.

Masks. The renderer's mask is the union of the new mesh's lower-face mask and the video's own
(``mask="union"``, default): where the original jaw hung lower than the new one, the old chin is
masked out instead of surviving as a double chin; texels are sampled only inside the new mesh.
``mask="new"`` uses the new mesh's mask alone (as in training). The same mask, dilated by the
feather width, is pasted back.

``ChunkDubber`` streams the output: chunks of frames are re-posed, rasterised, rendered in windows of
T frames (``render_windows``) and pasted into the full frames (``composite``).
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deadlib.data import face3d
from deadlib.data.blend import paste_back
from deadlib.data.crop import crop_frame, map_points
from deadlib.data.facemesh import load_topology
from deadlib.data.video import iter_frames, probe_video
from deadlib.dub.inputs import DubError
from deadlib.model.inference import masked_texels, render_precision
from deadlib.model.renderer import to_uint8

MASK_MODES = ("union", "new")
# dub.blend.upscale: how the rendered crop is enlarged to the face's size in the frame (``enlarge``);
# None = no resize, the paste's own bilinear warp does it
UPSCALE_KERNELS = {"linear": None, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
MOUTH_BLENDS = ("lsq", "ramp", "none")  # mouth_blend methods (module docstring)


def lower_vertices() -> np.ndarray:
    """Vertex ids of the dubbed region: lower face ∪ dilated mouth."""
    topo = load_topology()
    return np.union1d(topo.lower_face, topo.mouth_dilated)


def lower_energy_share(basis: face3d.ExpressionBasis) -> np.ndarray:
    """(K,) share of each component's squared displacement on the lower face + dilated mouth."""
    energy = (basis.components.reshape(basis.n_expr, -1, 3) ** 2).sum(-1)  # (K, 468)
    return energy[:, lower_vertices()].sum(1) / np.maximum(energy.sum(1), 1e-12)


def mouth_weights(basis: face3d.ExpressionBasis, ramp: tuple[float, float] = (0.25, 0.5)) -> np.ndarray:
    """(K,) per-coefficient replacement weights of method ``ramp`` (see the module docstring)."""
    lo, hi = float(ramp[0]), float(ramp[1])
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"mouth ramp must be 0 <= lo < hi <= 1, got {ramp}")
    w = np.clip((lower_energy_share(basis) - lo) / (hi - lo), 0.0, 1.0)
    w[basis.jaw_index] = 1.0
    return w.astype(np.float32)


def mouth_blend(basis: face3d.ExpressionBasis, method: str = "lsq", ramp: tuple[float, float] = (0.25, 0.5)) -> np.ndarray:
    """(K, K) matrix M of ``c = M c_audio + (I − M) c_video`` (methods ``lsq`` | ``ramp`` | ``none``,
    module docstring)."""
    if method == "none":
        return np.zeros((basis.n_expr, basis.n_expr), np.float32)
    if method == "ramp":
        return np.diag(mouth_weights(basis, ramp)).astype(np.float32)
    if method != "lsq":
        raise ValueError(f"mouth blend method must be one of {MOUTH_BLENDS}, got {method!r}")
    comps = basis.components.astype(np.float64)  # (K, 468*3)
    lower = comps.reshape(len(comps), -1, 3)[:, lower_vertices()].reshape(len(comps), -1)
    gram = comps @ comps.T + 1e-9 * np.eye(len(comps))  # (K, K)
    return np.linalg.solve(gram, lower @ lower.T).astype(np.float32)


def replace_mouth(video_expr: np.ndarray, audio_expr: np.ndarray, blend: np.ndarray) -> np.ndarray:
    """(N, K) video coefficients with the lower face taken from (N, K) audio-driven ones;
    ``blend`` is the (K, K) matrix of ``mouth_blend`` (or (K,) per-coefficient weights)."""
    k = video_expr.shape[-1]
    if video_expr.shape != audio_expr.shape or blend.shape not in ((k,), (k, k)):
        raise ValueError(f"shapes differ: video {video_expr.shape}, audio {audio_expr.shape}, blend {blend.shape}")
    m = np.diag(blend) if blend.ndim == 1 else blend
    return (audio_expr @ m.T + video_expr @ (np.eye(k) - m).T).astype(np.float32)


def dub_meshes(track: Mapping[str, np.ndarray], index: np.ndarray, expr: np.ndarray,
               basis: face3d.ExpressionBasis) -> np.ndarray:
    """Crop-pixel meshes (n, 468, 3) of video frames ``index`` with expression ``expr`` (n, K)."""
    pose, crop = track["pose"][index], track["crop"][index]
    return map_points(face3d.decode(pose, track["identity"], expr, basis), crop)


def rasterise(meshes: np.ndarray, size: int, raster_cfg: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """UV (n, S, S, 2) float16 and packed masks (n, S, S) uint8 of crop meshes (face3d.raster_maps)."""
    return face3d.raster_maps(meshes, size, int(raster_cfg["batch"]), float(raster_cfg["mouth_margin"]),
                              int(raster_cfg["tile"]), raster_cfg["engine"])


def to_tensor_images(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) → float (..., 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1.0)
    return x.movedim(-1, -3)


def reference_frames(crops: np.ndarray, valid: np.ndarray, n_refs: int) -> torch.Tensor:
    """(R, 3, H, W) fixed reference crops: ``n_refs`` valid frames spread evenly over the video."""
    ids = np.flatnonzero(valid)
    if len(ids) == 0:
        raise ValueError("no frame with a face to take reference frames from")
    pick = ids[np.linspace(0, len(ids) - 1, n_refs + 2)[1:-1].round().astype(int)]
    return to_tensor_images(np.asarray(crops[pick]))


@torch.no_grad()
def render_windows(state, identity: str, crops: np.ndarray, uv: np.ndarray, new_lower: np.ndarray,
                   mask: np.ndarray, mel: np.ndarray, refs: torch.Tensor, batch: int = 4,
                   dtype: str = "float32") -> np.ndarray:
    """Render n frames in windows of T → uint8 (n, S, S, 3).

    crops (n, S, S, 3) uint8 video crops; uv (n, S, S, 2); new_lower (n, S, S) bool, where texels
    are sampled; mask (n, S, S) bool, the renderer's mask; mel (n, 16, 80) windows of the new
    audio; refs (R, 3, S, S). The last window is padded by repeating its last frame. ``dtype``:
    the renderer's autocast precision (params ``dub.render_dtype``, deadlib.model.inference).
    """
    t = state.cfg.renderer.window
    n = len(crops)
    pad = (-n) % t
    take = np.concatenate([np.arange(n), np.full(pad, n - 1)]).reshape(-1, t)  # (W, T)
    device = state.device
    out = np.empty_like(crops)
    for b0 in range(0, len(take), batch):
        ids = take[b0:b0 + batch]  # (B, T)
        frames = to_tensor_images(np.asarray(crops)[ids]).to(device)  # (B, T, 3, S, S)
        m = torch.from_numpy(mask[ids]).float().unsqueeze(2).to(device)  # (B, T, 1, S, S)
        lower = torch.from_numpy(new_lower[ids]).float().to(device)  # (B, T, S, S)
        uv_t = torch.from_numpy(uv[ids].astype(np.float32)).to(device)  # (B, T, S, S, 2)
        texels = masked_texels(state.bank[identity], uv_t, lower)  # (B, T, C, S, S)
        mel_t = torch.from_numpy(mel[ids]).float().transpose(-1, -2).to(device)  # (B, T, 80, 16)
        ref = refs.to(device).expand(len(ids), -1, -1, -1, -1)  # (B, R, 3, S, S)
        with render_precision(dtype, device):
            pred = state.renderer(frames * (1 - m), texels, m, ref, mel_t)  # (B, T, 3, S, S)
        rendered = to_uint8(pred.float())
        for row, frame_ids in zip(rendered, ids):
            out[frame_ids] = row  # padded repeats write the same frame again
    return out


def paste_mask(mask: np.ndarray, grow_px: int) -> np.ndarray:
    """Crop-space float masks (n, S, S) in [0, 1]: ``mask`` dilated by ``grow_px`` crop pixels."""
    m = torch.from_numpy(mask.astype(np.float32))[:, None]
    if grow_px > 0:  # a square max-pool is two 1-D ones (rows, then columns): same result, k/2 times fewer compares
        k = 2 * grow_px + 1
        m = F.max_pool2d(m, (k, 1), stride=1, padding=(grow_px, 0))
        m = F.max_pool2d(m, (1, k), stride=1, padding=(0, grow_px))
    return m[:, 0].numpy()


def crop_scale(affine: np.ndarray) -> float:
    """Crop pixels per frame pixel of a (2, 3) similarity affine."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(affine, np.float64)[:, :2]))))


def enlarge(crop: np.ndarray, mask: np.ndarray, affine: np.ndarray, kernel: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rendered crop (S, S, 3) uint8 and its paste mask (S, S) resized to the face's side in frame
    pixels with ``kernel`` before the paste, and the (2, 3) frame → crop affine that goes with them.

    ``paste_back`` warps the crop into the frame bilinearly: at the renderer's 128 px and a face of
    320–600 frame px that is a 2.5–5× bilinear magnification, the softest kernel there is. Resizing
    first with a sharper kernel ("cubic", "lanczos") leaves the paste a ≈ 1:1 warp. "linear" (or a
    crop that is not magnified) returns the inputs unchanged: the paste does all the resampling, as
    before. cv2.resize puts pixel centres at i + 0.5 on both sides, so scaling the whole affine by the
    size ratio keeps the continuous-coordinate convention of ``deadlib.data.blend``; the cubic and
    Lanczos overshoot is clipped to 0..255 by the uint8 result."""
    if kernel not in UPSCALE_KERNELS:
        raise ValueError(f"dub.blend.upscale must be one of {tuple(UPSCALE_KERNELS)}, got {kernel!r}")
    size = crop.shape[0]
    side = int(round(size / crop_scale(affine)))  # the crop's side in frame pixels
    if UPSCALE_KERNELS[kernel] is None or side <= size:
        return crop, mask, affine
    big = cv2.resize(crop, (side, side), interpolation=UPSCALE_KERNELS[kernel])       # (side, side, 3)
    big_mask = cv2.resize(mask.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    return big, np.clip(big_mask, 0.0, 1.0), np.asarray(affine, np.float64) * (side / size)


def composite(frame: np.ndarray, crop: np.ndarray, affine: np.ndarray, mask: np.ndarray,
              blend: Mapping, postprocess: bool = True) -> np.ndarray:
    """Paste a rendered crop into its full frame: the crop enlarged with ``blend.upscale``
    (:func:`enlarge`), then ``blend.method`` with feather ``blend.feather`` × the crop side (in frame
    px); without post-processing the whole crop square is pasted hard (enlarged the same way)."""
    crop, mask, affine = enlarge(crop, mask, affine, blend["upscale"])
    if not postprocess:
        return paste_back(frame, crop, affine, None, method="none")
    side_px = crop.shape[0] / crop_scale(affine)  # crop side in frame pixels
    feather = max(1, int(round(float(blend["feather"]) * side_px)))
    return paste_back(frame, crop, affine, mask, method=blend["method"], feather_px=feather,
                      levels=int(blend["levels"]), colour_match=bool(blend["colour_match"]))


def mouth_darkness(frames: Iterable[np.ndarray], track: Mapping[str, np.ndarray], timeline: np.ndarray,
                   resolution: int) -> np.ndarray:
    """A PROXY of the mouth opening SEEN in frames (n,): 1 − mean luminance (0..1) of a fixed box around
    the video's mean inner-lip position, in each frame's face crop (an open mouth shows its dark inside).
    ``frames`` are full frames shown at output times, ``timeline`` their video frame ids (for the crops)."""
    lips = track["mesh_crop"][:, load_topology().lips_inner, :2]  # (N, 20, 2) crop px
    valid = np.asarray(track["valid"], bool)
    centre = lips[valid].mean((0, 1))
    half = max(2.0, float(np.ptp(lips[valid][..., 0], axis=1).mean()) / 2)
    y0, y1 = int(centre[1] - 0.6 * half), int(np.ceil(centre[1] + 0.9 * half))
    x0, x1 = int(centre[0] - half), int(np.ceil(centre[0] + half))
    out = []
    for frame, k in zip(frames, timeline):
        crop = crop_frame(frame, track["crop"][k], resolution)
        out.append(1.0 - crop[max(y0, 0):y1, max(x0, 0):x1].mean() / 255.0)
    return np.asarray(out, np.float32)


def even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad odd heights/widths by one edge pixel (H.264 yuv420p needs even sides)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def revisited_frames(timeline: np.ndarray) -> np.ndarray:
    """Sorted video frame ids that ``timeline`` shows again after a front-to-back decoder has passed
    them: the backward passes of a ping-pong loop. Audio k frames longer than a video of N ≥ k + 1
    frames revisits only N−1−k … N−2 (k frames); audio at least twice as long revisits every frame."""
    timeline = np.asarray(timeline, np.int64)
    if len(timeline) < 2:
        return np.zeros(0, np.int64)
    decoded_up_to = np.maximum.accumulate(timeline)[:-1]  # decoder position before output k + 1
    return np.unique(timeline[1:][timeline[1:] < decoded_up_to])


class FrameSpillError(DubError):
    """Not enough free disk space for the frames a ping-pong timeline revisits."""


class FrameSource:
    """Full-resolution video frames (25 fps) in the order of an output timeline, decoded once, front to back.

    Only the frames the timeline shows again after the decoder has passed them (``revisited_frames``:
    the backward passes of a ping-pong loop when the new audio is longer than the video) are kept, in
    a temporary file under ``tmp_dir`` written and read with plain file I/O — the page cache holds
    them, not this process (a memory map would count them in its resident set). A dub whose audio
    is as long as the video (or a frame longer, by rounding) keeps at most a frame or two, so memory
    does not grow with the video's length. Audio at least twice as long as the video revisits every
    frame: the file then holds the whole decoded video (W·H·3 bytes a frame; 6.2 MB at 1080p) and
    the free space is checked before anything is decoded (``FrameSpillError``). ``close`` removes it.
    """

    def __init__(self, video: str | Path, timeline: np.ndarray, fps: float = 25.0, tmp_dir: str | Path | None = None):
        self.timeline = np.asarray(timeline)
        n_decode = int(self.timeline.max()) + 1 if len(self.timeline) else 1
        self._pos, self._frame, self._ended = -1, None, False
        spill = revisited_frames(self.timeline)
        self._slot = {int(f): k for k, f in enumerate(spill)}  # video frame id → slot in the spill file
        self._tmp, self._file, self._shape = None, None, None
        if len(spill):
            info = probe_video(video)
            side_w, side_h = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
            need = len(spill) * side_w * side_h * 3
            tmp_dir = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
            tmp_dir.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(tmp_dir).free
            if need + (256 << 20) > free:
                raise FrameSpillError(
                    f"the new audio is longer than the video, so the dub loops the video back and forth and must keep "
                    f"{len(spill)} decoded frames ({need / 2**30:.1f} GiB) in {tmp_dir}, which has {free / 2**30:.1f} GiB "
                    "free: free some space, point --cache-dir at a larger disk, or shorten the audio")
            self._tmp = tempfile.TemporaryDirectory(prefix="dub-frames-", dir=tmp_dir)
            self._file = open(Path(self._tmp.name) / "revisited.rgb", "w+b")
        self._stream: Iterator[np.ndarray] = iter_frames(video, fps=fps, max_frames=n_decode)

    def _spill(self, index: int, frame: np.ndarray) -> None:
        self._shape = frame.shape
        os.pwrite(self._file.fileno(), np.ascontiguousarray(frame, np.uint8).tobytes(), self._slot[index] * frame.nbytes)

    def _unspill(self, index: int) -> np.ndarray:
        nbytes = int(np.prod(self._shape))
        data = os.pread(self._file.fileno(), nbytes, self._slot[index] * nbytes)
        return np.frombuffer(data, np.uint8).reshape(self._shape).copy()

    def __getitem__(self, index: int) -> np.ndarray:
        if index < self._pos:  # shown again after the decoder passed it (ping-pong): from the spill file
            if index not in self._slot:
                raise IndexError(f"frame {index} was not kept: a FrameSource serves its own timeline's order only")
            return self._unspill(index)
        while self._pos < index and not self._ended:
            frame = next(self._stream, None)
            if frame is None:  # the decoder ended early (truncated file): hold the last frame
                self._ended = True
                break
            self._frame, self._pos = frame, self._pos + 1
            if self._pos in self._slot:
                self._spill(self._pos, frame)
        return self._frame

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class CacheRows:
    """Rows ``array[ids]`` of a prepared cache's (N, ...) array, read with ``os.pread`` when it is a
    memory map of a file: the pages then stay in the OS page cache instead of this process's resident
    set. (Indexing the memory map itself leaves every page it touched mapped, so the dubber's RSS grew
    by ≈ 65 kB per frame of the video — the crop and the mask — and a 10-minute clip would hold
    ≈ 1 GB of them.) Arrays that are not a file's C-ordered memory map are simply indexed."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self._fd = None
        if isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.flags.c_contiguous \
                and array.filename:
            self._fd = os.open(array.filename, os.O_RDONLY)
            self._row = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))  # bytes per row

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, ids) -> np.ndarray:
        """(len(ids), ...) copy of the rows ``ids`` (an int array)."""
        ids = np.asarray(ids, np.int64)
        if self._fd is None:
            return np.asarray(self.array[ids])
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self.array)):
            raise IndexError(f"rows {ids.min()}..{ids.max()} outside 0..{len(self.array) - 1}")
        out = np.empty((len(ids), *self.array.shape[1:]), self.array.dtype)
        flat = out.view(np.uint8).reshape(len(ids), self._row)  # (n, row bytes)
        k = 0
        while k < len(ids):  # one read per run of consecutive rows
            end = k + 1
            while end < len(ids) and ids[end] == ids[end - 1] + 1:
                end += 1
            size = (end - k) * self._row
            data = os.pread(self._fd, size, int(self.array.offset) + int(ids[k]) * self._row)
            if len(data) != size:
                raise OSError(f"{self.array.filename}: short read of rows {ids[k]}..{ids[end - 1]}; re-run prepare")
            flat[k:end] = np.frombuffer(data, np.uint8).reshape(end - k, self._row)
            k = end
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()


class ChunkDubber:
    """Streams the dubbed full frames: per chunk of output frames, re-pose and rasterise the meshes,
    render windows, then paste each crop into its full frame; no-face frames pass through.
    Fills ``stats`` (mouth_open, mouth_open_video, mouth_area, mouth_dark per output frame) and
    adds its seconds to ``timings`` (rasterise, render, blend, decode)."""

    def __init__(self, state, identity: str, cache: Mapping, basis: face3d.ExpressionBasis, timeline: np.ndarray,
                 expr: np.ndarray, mel_windows: np.ndarray, settings: Mapping, raster_cfg: Mapping, timings: dict):
        self.state, self.identity, self.cache, self.basis = state, identity, cache, basis
        self.track = cache["track"]
        self.timeline, self.expr, self.mel, self.dub_cfg = timeline, expr, mel_windows, settings
        self.raster_cfg, self.timings = raster_cfg, timings
        r = state.cfg.renderer
        self.resolution, self.window = r.resolution, r.window
        own_valid = np.asarray(self.track["valid"], bool)
        self.valid = own_valid[timeline]  # (n,)
        self.refs = reference_frames(cache["frames"], own_valid, r.n_refs)  # (R, 3, S, S)
        # the per-frame crops (N, S, S, 3) and masks (N, S, S) are read through pread, not the memory map
        self.crops, self.masks = CacheRows(cache["frames"]), CacheRows(cache["masks"])
        n = len(timeline)
        self.stats = {k: np.zeros(n, np.float32) for k in ("mouth_open", "mouth_area", "mouth_dark")}
        gap = face3d.mouth_gap(self.track["mesh_crop"])[timeline]  # per video frame, then (n,): no (n, 468, 3) copy
        self.stats["mouth_open_video"] = np.where(self.valid, gap, 0).astype(np.float32)

    def chunk(self, ids: np.ndarray) -> list:
        """(rendered crop (S, S, 3), paste mask (S, S)) per output frame of ``ids``, None without a face."""
        out: list = [None] * len(ids)
        live = self.valid[ids]
        if not live.any():
            return out
        t = time.perf_counter()
        src = self.timeline[ids]
        meshes = dub_meshes(self.track, src, self.expr[ids], self.basis)  # (c, 468, 3) crop px
        uv, bits = rasterise(meshes, self.resolution, self.raster_cfg)
        new_lower = ((bits & face3d.MASK_LOWER) > 0) & live[:, None, None]  # (c, S, S)
        mask = new_lower.copy()
        if self.dub_cfg["mask"] == "union":
            mask |= ((self.masks[src] & face3d.MASK_LOWER) > 0) & live[:, None, None]
        mouth = (bits & face3d.MASK_MOUTH) > 0
        self.stats["mouth_open"][ids] = np.where(live, face3d.mouth_gap(meshes), 0)
        self.stats["mouth_area"][ids] = mouth.mean((1, 2)) * live
        self.timings["rasterise"] += time.perf_counter() - t
        t = time.perf_counter()
        crops = render_windows(self.state, self.identity, self.crops[src], uv, new_lower, mask,
                               self.mel[ids], self.refs, int(self.dub_cfg["batch"]), self.dub_cfg["render_dtype"])
        self.timings["render"] += time.perf_counter() - t
        t = time.perf_counter()
        pmask = paste_mask(mask, int(round(float(self.dub_cfg["blend"]["feather"]) * self.resolution)))
        luminance = crops.astype(np.float32).mean(-1) / 255.0  # (c, S, S)
        dark = 1 - (luminance * mouth).sum((1, 2)) / np.maximum(mouth.sum((1, 2)), 1)
        self.stats["mouth_dark"][ids] = np.where(live, dark, 0)
        for j in np.flatnonzero(live):
            out[j] = (crops[j], pmask[j])
        self.timings["blend"] += time.perf_counter() - t
        return out

    def frames(self, source: "FrameSource", bar=None) -> Iterator[np.ndarray]:
        """Full output frames (H, W, 3) uint8 with even sides, in output order."""
        n, size = len(self.timeline), max(self.window, int(self.dub_cfg["chunk"]) // self.window * self.window)
        for c0 in range(0, n, size):
            ids = np.arange(c0, min(n, c0 + size))
            for k, rendered in zip(ids, self.chunk(ids)):
                t = time.perf_counter()
                full = source[int(self.timeline[k])]
                self.timings["decode"] += time.perf_counter() - t
                t = time.perf_counter()
                if rendered is not None:
                    full = composite(full, rendered[0], self.track["crop"][self.timeline[k]], rendered[1],
                                     self.dub_cfg["blend"], self.dub_cfg["postprocess"])
                self.timings["blend"] += time.perf_counter() - t
                if bar is not None:
                    bar.update(1)
                yield even_frame(full)
