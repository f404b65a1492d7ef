"""The project's 3DMM: similarity pose + identity offset + PCA expression over the FaceMesh topology.

Model. A tracked mesh ``L_t`` (468, 3) in pixels (x right, y down, z away) is explained as

    L_t = s_t · R_t · (M + I + E_mean + c_t · B) + t_t

with ``M`` the project's mean shape (``facemesh.load_topology().mean_shape`` turned into the
canonical frame: x right, y down, z away, centimetres), ``(R_t, s_t, t_t)`` a per-frame
similarity (pose: axis-angle, log-scale, 3-D translation → ``pose`` (N, 7)), ``I`` (468, 3) the
per-video identity offset (mean pose-normalised residual over the video's valid frames),
``c_t`` (K,) the expression coefficients and ``B`` (K, 468·3) a PCA basis of pose-normalised,
identity-removed meshes of the PRIOR videos only. ``encode`` fits pose/identity/expression to
landmarks; ``decode`` turns (possibly edited) coefficients back into pixel meshes that
``raster_maps`` rasterises into the UV map and masks the renderer consumes.

* Pose is fitted (Umeyama) on the rigid upper face only (above the nose bottom, eyes and brows
  excluded) so that opening the jaw does not tilt the head; one refinement refits against
  ``M + I``. Pose is then smoothed over time (params) — expression keeps the fast motion.
* The PCA is *mouth/jaw dominated*: vertex residuals are weighted by ``lower_weight`` on the
  lower face (at/below the nose bottom and the dilated mouth) and ``upper_weight`` elsewhere
  before the PCA, so the leading components describe jaw and lip motion rather than blinks,
  brows and tracker noise. The component whose unit step opens the mouth most (lower-lip +
  chin drop × its standard deviation) is recorded as ``jaw_index`` and signed so that a
  positive coefficient opens the mouth.

Why not the paper's 3DMM. DEAD fits a FLAME/BFM-style model by optimisation (photometric +
landmark terms). Neither FLAME nor BFM weights can be obtained offline here, and the paper's
limitations section asks for a faster reconstruction; regression-based tracking (MediaPipe's
dense 468-point mesh) plus this linear model is that fast path: one SVD per frame, no
optimisation loop. What is lost: no photometric refinement (accuracy is MediaPipe's), depth
comes from MediaPipe's landmark model (weak perspective, no camera intrinsics), no separate jaw
joint (jaw rotation is one linear component among the expressions), identity and expression are
separated only by per-video averaging (a video whose speaker always smiles has the smile in I).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from deadlib.data.facemesh import (
    CHIN,
    LOWER_LIP_INNER,
    N_LANDMARKS,
    UPPER_LIP_INNER,
    FaceTopology,
    load_topology,
)
from deadlib.data.raster import interpolate, rasterize
from deadlib.data.raster_bbox import rasterize_bbox
from deadlib.data.track import fill_gaps, smooth_series

CANONICAL_FLIP = np.array([1.0, -1.0, -1.0], np.float32)  # mean_shape (y up, z to camera) → (y down, z away)
POSE_DIM = 7  # rotvec (3), log scale (1), translation (3)
RASTER_ENGINES = ("bbox", "pytorch3d")  # raster_maps' rasterisers (params prepare.raster.engine)
MASK_FACE, MASK_LOWER, MASK_MOUTH = 1, 2, 4  # bit flags of the packed mask (see raster_maps)


class Face3DError(ValueError):
    """Bad input to the face model (shapes, empty fits, a basis that does not match)."""


def canonical_mean(topo: FaceTopology | None = None) -> np.ndarray:
    """The mean shape (468, 3) in the canonical frame: cm, x right, y down, z away."""
    return (topo or load_topology()).mean_shape.astype(np.float32) * CANONICAL_FLIP


def rigid_ids(topo: FaceTopology | None = None) -> np.ndarray:
    """Vertex ids the pose is fitted on: above the nose bottom, without eyes and brows."""
    topo = topo or load_topology()
    moving = np.concatenate([topo.lower_face, topo.mouth_dilated, topo.eye_l, topo.eye_r, topo.brow_l, topo.brow_r])
    return np.setdiff1d(np.arange(N_LANDMARKS), moving)


# ----------------------------------------------------------------------------- pose


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity dst ≈ s·R·src + t (Umeyama 1991), batched over frames.

    src (V, 3) or (N, V, 3), dst (N, V, 3) → R (N, 3, 3), s (N,), t (N, 3).
    """
    src = np.broadcast_to(src, dst.shape).astype(np.float64)
    dst = dst.astype(np.float64)
    mu_s, mu_d = src.mean(1, keepdims=True), dst.mean(1, keepdims=True)
    a, b = src - mu_s, dst - mu_d  # (N, V, 3)
    cov = np.einsum("nvi,nvj->nij", b, a) / src.shape[1]  # (N, 3, 3)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones((len(dst), 3))
    d[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))  # no reflections
    rot = np.einsum("nij,nj,njk->nik", u, d, vt)
    scale = (sig * d).sum(1) / (a**2).sum((1, 2)) * src.shape[1]
    trans = mu_d[:, 0] - scale[:, None] * np.einsum("nij,nj->ni", rot, mu_s[:, 0])
    return rot, scale, trans


def pose_to_params(rot: np.ndarray, scale: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(N, 3, 3), (N,), (N, 3) → pose (N, 7) = [rotvec, log scale, translation]."""
    rotvec = Rotation.from_matrix(rot).as_rotvec()
    return np.concatenate([rotvec, np.log(scale)[:, None], trans], 1).astype(np.float32)


def params_to_pose(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pose (N, 7) → R (N, 3, 3), s (N,), t (N, 3)."""
    pose = np.asarray(pose, np.float64).reshape(-1, POSE_DIM)
    return Rotation.from_rotvec(pose[:, :3]).as_matrix(), np.exp(pose[:, 3]), pose[:, 4:]


def to_canonical(landmarks: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Pixel meshes (N, V, 3) → pose-normalised canonical meshes (N, V, 3) in cm."""
    rot, scale, trans = params_to_pose(pose)
    local = np.einsum("nji,nvj->nvi", rot, landmarks - trans[:, None]) / scale[:, None, None]
    return local.astype(np.float32)


def from_canonical(canonical: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Canonical meshes (N, V, 3) cm → pixel meshes (N, V, 3) under ``pose`` (N, 7)."""
    rot, scale, trans = params_to_pose(pose)
    pix = scale[:, None, None] * np.einsum("nij,nvj->nvi", rot, canonical) + trans[:, None]
    return pix.astype(np.float32)


# ----------------------------------------------------------------------------- expression basis


@dataclass
class ExpressionBasis:
    """Weighted PCA of identity-removed canonical meshes (the ``expr_basis.npz`` artefact)."""

    mean: np.ndarray  # (468*3,) mean residual, cm
    components: np.ndarray  # (K, 468*3) basis B in cm per unit coefficient
    explained_variance: np.ndarray  # (K,) variance of each coefficient over the prior frames
    explained_variance_ratio: np.ndarray  # (K,) share of the total weighted variance
    weights: np.ndarray  # (468,) per-vertex weight used in the fit (and in encode)
    jaw_index: int  # the jaw/mouth-opening component (positive opens)

    @property
    def n_expr(self) -> int:
        return len(self.components)

    def encode(self, residual: np.ndarray) -> np.ndarray:
        """Residual meshes (N, 468, 3) → coefficients (N, K) (weighted least squares)."""
        w = np.repeat(self.weights, 3)
        centred = residual.reshape(len(residual), -1) - self.mean  # (N, 1404)
        gram = (self.components * w) @ self.components.T  # (K, K) = I for the fitted basis
        return np.linalg.solve(gram, (self.components * w) @ centred.T).T.astype(np.float32)

    def offsets(self, expr: np.ndarray) -> np.ndarray:
        """Coefficients (N, K) → residual meshes (N, 468, 3) = mean + c·B."""
        expr = np.asarray(expr, np.float32)
        if expr.ndim != 2 or expr.shape[1] != self.n_expr:
            raise Face3DError(f"expression coefficients must be (N, {self.n_expr}), got {expr.shape}")
        return (self.mean + expr @ self.components).reshape(len(expr), N_LANDMARKS, 3)

    def save(self, path: str | Path) -> None:
        np.savez(path, mean=self.mean, components=self.components, explained_variance=self.explained_variance,
                 explained_variance_ratio=self.explained_variance_ratio, weights=self.weights,
                 jaw_index=np.int64(self.jaw_index))

    @classmethod
    def load(cls, path: str | Path) -> "ExpressionBasis":
        if not Path(path).is_file():
            raise Face3DError(f"expression basis {path} not found; run the prepare stage on the prior videos first")
        with np.load(path) as d:
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k != "jaw_index"}, jaw_index=int(d["jaw_index"]))


def vertex_weights(lower_weight: float, upper_weight: float, topo: FaceTopology | None = None) -> np.ndarray:
    """(468,) PCA weights: ``lower_weight`` on the lower face and dilated mouth, ``upper_weight`` elsewhere."""
    topo = topo or load_topology()
    w = np.full(N_LANDMARKS, upper_weight, np.float32)
    w[np.union1d(topo.lower_face, topo.mouth_dilated)] = lower_weight
    return w


def fit_basis(residuals: np.ndarray, n_expr: int, lower_weight: float = 1.0,
              upper_weight: float = 0.1) -> ExpressionBasis:
    """Weighted PCA of residual meshes (M, 468, 3) of the prior videos → ExpressionBasis."""
    residuals = np.asarray(residuals, np.float64).reshape(len(residuals), -1)
    if len(residuals) <= n_expr:
        raise Face3DError(f"fitting {n_expr} expression components needs more than {n_expr} frames, "
                          f"got {len(residuals)}; add prior videos or lower prepare.face3d.n_expr")
    weights = vertex_weights(lower_weight, upper_weight)
    sw = np.sqrt(np.repeat(weights, 3)).astype(np.float64)
    mean = residuals.mean(0)
    x = (residuals - mean) * sw  # (M, 1404) weighted
    eigval, eigvec = np.linalg.eigh(x.T @ x / (len(x) - 1))
    order = np.argsort(eigval)[::-1][:n_expr]
    u = eigvec[:, order].T  # (K, 1404) orthonormal in the weighted space
    u *= np.sign(u[np.arange(n_expr), np.abs(u).argmax(1)])[:, None]  # deterministic signs
    comps = u / sw
    opening = comps.reshape(n_expr, N_LANDMARKS, 3)[:, [LOWER_LIP_INNER, CHIN], 1].sum(1) - \
        comps.reshape(n_expr, N_LANDMARKS, 3)[:, UPPER_LIP_INNER, 1]  # y down: + opens
    effect = opening * np.sqrt(np.maximum(eigval[order], 0))
    jaw = int(np.argmax(np.abs(effect)))
    comps[jaw] *= np.sign(effect[jaw]) or 1.0
    return ExpressionBasis(mean=mean.astype(np.float32), components=comps.astype(np.float32),
                           explained_variance=eigval[order].astype(np.float32),
                           explained_variance_ratio=(eigval[order] / max(eigval.sum(), 1e-12)).astype(np.float32),
                           weights=weights, jaw_index=jaw)


# ----------------------------------------------------------------------------- encode / decode


@dataclass
class FaceFit:
    """Pose, identity and (optionally) expression of one video's tracked face."""

    pose: np.ndarray  # (N, 7) smoothed; invalid frames interpolated from valid neighbours
    identity: np.ndarray  # (468, 3) cm, canonical frame
    residual: np.ndarray  # (N, 468, 3) canonical − mean − identity (0 on invalid frames)
    expr: np.ndarray | None = None  # (N, K) once a basis is known


def fit_pose_identity(landmarks: np.ndarray, valid: np.ndarray, pose_smoothing: dict | None = None,
                      fps: float = 25.0, identity_frames: np.ndarray | None = None) -> FaceFit:
    """Per-frame similarity pose (rigid upper face) + identity offset + residuals of one video.

    ``identity_frames`` (N,) bool: the frames the identity offset is averaged over (the prepare
    stage passes the train part, so test frames never shape it); None = every valid frame."""
    valid = np.asarray(valid, bool)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (N_LANDMARKS, 3):
        raise Face3DError(f"landmarks must be (N, {N_LANDMARKS}, 3), got {landmarks.shape}")
    if not valid.any():
        raise Face3DError("no valid frame to fit; the video has no tracked face")
    use = valid if identity_frames is None else valid & np.asarray(identity_frames, bool)
    if not use.any():  # no face in the train part: fit on every valid frame, and say so in the report
        warnings.warn("no tracked face in the train part: the identity offset is averaged over all valid "
                      "frames, test frames included", stacklevel=2)
        use = valid
    mean, rid = canonical_mean(), rigid_ids()
    lms = landmarks[valid]
    template = mean
    for _ in range(2):  # fit against the mean, then once more against mean + identity
        pose_v = pose_to_params(*umeyama(template[rid], lms[:, rid]))
        identity = (to_canonical(lms, pose_v) - mean)[use[valid]].mean(0)
        template = mean + identity
    pose = np.zeros((len(valid), POSE_DIM), np.float32)
    pose[valid] = pose_v
    pose = fill_gaps(smooth_series(pose, valid, pose_smoothing, fps), valid)
    identity = identity.astype(np.float32)
    return FaceFit(pose=pose, identity=identity, residual=residuals(landmarks, valid, pose, identity))


def residuals(landmarks: np.ndarray, valid: np.ndarray, pose: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """Expression residuals (N, 468, 3) = canonical − mean − identity on valid frames, 0 elsewhere."""
    out = np.zeros(landmarks.shape, np.float32)
    out[valid] = to_canonical(landmarks[valid], pose[valid]) - canonical_mean() - identity
    return out


def encode_expression(fit: FaceFit, valid: np.ndarray, basis: ExpressionBasis,
                      smoothing: dict | None = None, fps: float = 25.0) -> np.ndarray:
    """Expression coefficients (N, K) of a fitted video; invalid frames interpolated."""
    return smooth_expression(basis.encode(fit.residual), valid, smoothing, fps)


def smooth_expression(expr: np.ndarray, valid: np.ndarray, smoothing: dict | None = None, fps: float = 25.0) -> np.ndarray:
    """Raw per-frame coefficients (N, K) → smoothed over valid frames, invalid frames interpolated."""
    return fill_gaps(smooth_series(expr, valid, smoothing, fps), valid)


def expression_coefficients(landmarks: np.ndarray, valid: np.ndarray, pose: np.ndarray, identity: np.ndarray,
                            basis: ExpressionBasis, chunk: int = 512) -> np.ndarray:
    """Raw coefficients (N, K) of tracked meshes (N, 468, 3): ``basis.encode(residuals(...))``, ``chunk``
    frames at a time, so a long video never holds its (N, 468, 3) residuals and their float64
    temporaries (≈ 20 kB a frame) at once. ``landmarks`` may be any row-indexable array."""
    out = np.zeros((len(valid), basis.n_expr), np.float32)
    for lo in range(0, len(valid), chunk):
        rows = slice(lo, lo + chunk)
        out[rows] = basis.encode(residuals(np.asarray(landmarks[rows]), valid[rows], pose[rows], identity))
    return out


def decode(pose: np.ndarray, identity: np.ndarray, expr: np.ndarray, basis: ExpressionBasis) -> np.ndarray:
    """(N, 7), (468, 3), (N, K) → pixel meshes (N, 468, 3): edit ``expr`` to change the mouth."""
    canonical = canonical_mean() + identity + basis.offsets(expr)
    return from_canonical(canonical, pose)


def posed_neutral(pose: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """The video's neutral face (mean + identity, no expression) under each pose → (N, 468, 3) px."""
    return from_canonical(np.broadcast_to(canonical_mean() + identity, (len(pose), N_LANDMARKS, 3)), pose)


def mouth_gap(meshes: np.ndarray) -> np.ndarray:
    """Inner-lip opening (N,) of meshes (N, 468, 3) in units of the upper-face width (scale-free)."""
    gap = np.linalg.norm(meshes[:, LOWER_LIP_INNER] - meshes[:, UPPER_LIP_INNER], axis=-1)
    width = np.linalg.norm(meshes[:, 33] - meshes[:, 263], axis=-1)
    return gap / np.maximum(width, 1e-6)


# ----------------------------------------------------------------------------- rasterisation


def region_faces(topo: FaceTopology | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (F,) lookups over ``topo.faces``: (lower-face triangles, mouth triangles).

    Both include the mouth-opening fill, so the region between the lips (teeth, tongue) is
    covered by the UV map and the masks whether the mouth is open or closed.
    """
    topo = topo or load_topology()
    lower = np.zeros(len(topo.faces), bool)
    mouth = np.zeros(len(topo.faces), bool)
    lower[np.union1d(topo.faces_within(topo.lower_face), topo.mouth_opening_faces)] = True
    mouth[np.union1d(topo.faces_within(topo.mouth_dilated), topo.mouth_opening_faces)] = True
    return lower, mouth


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block. pytorch3d's CPU rasteriser is single-threaded and
    the many small tensor ops around it only pay OpenMP overhead: measured 1.5-3× faster with one
    thread on 2 cores (3× when other processes compete for the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def raster_maps(verts: np.ndarray, size: int, batch: int = 64, mouth_margin: float = 0.02,
                tile: int = 32, engine: str = "bbox") -> tuple[np.ndarray, np.ndarray]:
    """Rasterise meshes (N, 468, 3) in pixels of a ``size``² image → UV (N, S, S, 2) float16 and
    packed masks (N, S, S) uint8 (bit MASK_FACE | MASK_LOWER | MASK_MOUTH).

    One depth-tested pass over all triangles (skin, eye fills, mouth-opening fill) gives the UV
    map (0 where no triangle covers the pixel) and the region of each pixel. The mouth mask is
    the mouth region (``mouth_dilated`` + fill) dilated by ``mouth_margin`` × size pixels: with
    the jaw wide open the skin under the lower lip is foreshortened to nothing (tracked meshes
    even fold it over the lip), which would leave the lip contour exactly on the mask edge.
    ``engine``: ``bbox`` (deadlib.data.raster_bbox) or ``pytorch3d`` (deadlib.data.raster, over tiles of
    ``tile`` px: 32 measured ≈ 2× faster than 64 here) — the same triangles, float rounding apart.
    """
    if engine not in RASTER_ENGINES:
        raise ValueError(f"raster engine must be one of {sorted(RASTER_ENGINES)}, got {engine!r}")
    topo = load_topology()
    faces = torch.as_tensor(topo.faces)
    uv_table = torch.as_tensor(topo.uv, dtype=torch.float32)
    lower, mouth = region_faces(topo)
    bits_table = torch.as_tensor(MASK_FACE | lower * MASK_LOWER | mouth * MASK_MOUTH, dtype=torch.uint8)
    radius = int(np.ceil(mouth_margin * size))
    n = len(verts)
    uv = np.zeros((n, size, size, 2), np.float16)
    bits = np.zeros((n, size, size), np.uint8)
    with single_torch_thread():
        for start in range(0, n, batch):
            chunk = torch.as_tensor(np.asarray(verts[start:start + batch], np.float32))
            frags = rasterize_bbox(chunk, faces, size) if engine == "bbox" else rasterize(chunk, faces, size, tile=tile)
            uv[start:start + len(chunk)] = interpolate(frags, uv_table).numpy()
            packed = torch.where(frags.mask, bits_table[frags.pix_to_face % len(faces)], 0)  # (B, S, S)
            if radius > 0:
                mouth_px = (packed & MASK_MOUTH).float()[:, None]
                grown = torch.nn.functional.max_pool2d(mouth_px, 2 * radius + 1, stride=1, padding=radius)[:, 0]
                packed = packed | (grown > 0).to(torch.uint8) * MASK_MOUTH
            bits[start:start + len(chunk)] = packed.numpy()
    return uv, bits


def weight_map(bits: np.ndarray, base: float = 1.0, lower: float = 2.0, mouth: float = 4.0) -> np.ndarray:
    """L1 weight per pixel from packed masks (…, S, S): ``mouth`` > ``lower`` > ``base`` (float32)."""
    table = np.full(8, base, np.float32)
    for value in range(8):
        if value & MASK_LOWER:
            table[value] = lower
        if value & MASK_MOUTH:
            table[value] = max(table[value], mouth)
    return table[bits]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def lips_in_mouth_mask(points: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N,) bool: every lip landmark of ``points`` (N, 468, ≥2, image px) lies on a mouth-mask pixel
    of the packed ``masks`` (N, S, S) — the acceptance check that the mask follows the real mouth."""
    topo = load_topology()
    size = masks.shape[-1]
    xy = np.floor(points[:, np.concatenate([topo.lips_outer, topo.lips_inner]), :2]).astype(np.int64)  # (N, 40, 2)
    inside_image = ((xy >= 0) & (xy < size)).all(-1)
    xy = np.clip(xy, 0, size - 1)
    hit = masks[np.arange(len(points))[:, None], xy[..., 1], xy[..., 0]] & MASK_MOUTH
    return ((hit > 0) & inside_image).all(1)


def raster_agreement(meshes: np.ndarray, masks: np.ndarray, uv: np.ndarray, batch: int = 64,
                     mouth_margin: float = 0.02, tile: int = 32, engine: str = "bbox") -> dict:
    """Rasterise ``meshes`` (N, 468, 3) (e.g. the tracked landmarks) and compare with rasters of the
    model (``masks`` (N, S, S), ``uv`` (N, S, S, 2)): mean face / mouth IoU and mean |ΔUV| where both cover."""
    uv_a, bits_a = raster_maps(meshes, masks.shape[-1], batch, mouth_margin, tile, engine)
    face = [mask_iou(a & MASK_FACE, b & MASK_FACE) for a, b in zip(bits_a, masks)]
    mouth = [mask_iou(a & MASK_MOUTH, b & MASK_MOUTH) for a, b in zip(bits_a, masks)]
    both = ((bits_a & masks) & MASK_FACE) > 0
    duv = np.abs(uv_a.astype(np.float32) - uv.astype(np.float32)).sum(-1)[both]
    return {"iou_face": float(np.mean(face)), "iou_mouth": float(np.mean(mouth)),
            "uv_error": float(duv.mean()) if duv.size else 0.0}
