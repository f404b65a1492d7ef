"""A procedural, deformable head for the embedded corpus: geometry, expressions and textures.

Each synthetic identity is the project's face mesh (``facemesh``) with a random identity
deformation, plus simple extra meshes — a head/hair ellipsoid, neck, shoulders, a mouth
cavity and two rows of teeth — all textured from one per-identity atlas image. Expressions
are explicit articulators (``jaw_open``, ``lip_width``, ``lip_round``, ``blink``), the same
quantities the synthetic speech produces, so audio drives the mouth.

Units: centimetres, x to the image right, y up, z toward the camera (see ``facemesh``).
The atlas is split into four tiles (u, v ∈ [0,1], v from the top):
    [0, .5)×[0, .5) face (the face mesh's own UV layout, squeezed into the tile)
    [.5, 1)×[0, .5) hair        [0, .5)×[.5, 1) neck skin + shirt    [.5, 1)×[.5, 1) mouth
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.draw import disk, polygon

from deadlib.data.facemesh import NOSE_BOTTOM, NOSE_TIP, FaceTopology, load_topology

ATLAS = 256  # atlas side in texels
JAW_MAX_DEG = 22.0  # jaw rotation at jaw_open = 1
SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.92, 0.72, 0.58], [0.84, 0.63, 0.48], [0.72, 0.52, 0.38],
                       [0.58, 0.40, 0.28], [0.45, 0.31, 0.22], [0.98, 0.85, 0.75], [0.80, 0.60, 0.50]])
HAIR_TONES = np.array([[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.45, 0.30, 0.15], [0.70, 0.55, 0.30],
                       [0.55, 0.20, 0.08], [0.60, 0.60, 0.60], [0.15, 0.12, 0.14]])


@dataclass
class Part:
    """A mesh piece: vertices (V,3) cm, triangles (F,3), atlas UVs (V,2), articulation group."""

    verts: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    moves_with_jaw: bool = False


@dataclass
class Identity:
    """Everything that makes one synthetic person look like themselves."""

    name: str
    face: np.ndarray  # (468, 3) identity-deformed neutral face, cm
    jaw_weight: np.ndarray  # (468,) how much each vertex follows the jaw rotation
    mouth_weight: np.ndarray  # (468,) lip-shape influence (width / rounding)
    upper_lid: np.ndarray  # (468,) blink influence (1 on the upper eyelid)
    lid_drop: np.ndarray  # (468,) cm the upper lid travels to close the eye
    extras: list[Part]  # head/hair, neck, shoulders, mouth cavity, teeth
    atlas: np.ndarray  # (ATLAS, ATLAS, 3) float32 albedo in [0,1]
    light: np.ndarray  # (3,) unit light direction
    background: np.ndarray  # (H, W, 3) float32 static backdrop (made by the renderer's size)
    jaw_pivot: np.ndarray  # (3,) cm


def tile_uv(uv: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """Map UVs in [0,1]² into atlas tile (col, row) of the 2×2 atlas."""
    return (uv * 0.5 + 0.5 * np.asarray(tile, float)).astype(np.float32)


def ellipsoid(centre, radii, n_lat: int = 12, n_lon: int = 18, tile=(1, 0), lat_range=(0.0, np.pi)) -> Part:
    """A UV-sphere-like ellipsoid patch (for head/hair, neck and shoulders)."""
    lat = np.linspace(*lat_range, n_lat)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    unit = np.stack([np.sin(la) * np.sin(lo), np.cos(la), np.sin(la) * np.cos(lo)], -1).reshape(-1, 3)
    verts = np.asarray(centre) + unit * np.asarray(radii)
    idx = np.arange(n_lat * n_lon).reshape(n_lat, n_lon)
    a, b = idx[:-1], np.roll(idx, -1, axis=1)[:-1]
    c, d = idx[1:], np.roll(idx, -1, axis=1)[1:]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    uv = np.stack([lo / (2 * np.pi), la / np.pi], -1).reshape(-1, 2)
    return Part(verts, faces, tile_uv(0.05 + 0.9 * uv, tile))


def quad(corners: np.ndarray, uv_box, moves_with_jaw: bool = False) -> Part:
    """Two triangles spanning four corners (TL, TR, BR, BL), textured by an atlas box (u0, v0, u1, v1)."""
    u0, v0, u1, v1 = uv_box
    uv = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float32)
    return Part(np.asarray(corners, float), np.array([[0, 3, 1], [1, 3, 2]]), uv, moves_with_jaw)


def smooth_bumps(rng: np.random.Generator, points: np.ndarray, n: int, amp: float, width: float) -> np.ndarray:
    """(V, 3) smooth random displacement: a sum of Gaussian bumps, mirrored for symmetry."""
    centres = points[rng.integers(0, len(points), n)]
    dirs = rng.normal(size=(n, 3)) * amp
    out = np.zeros_like(points)
    for c, d in zip(centres, dirs):
        for sign in (1, -1):
            cc = c * np.array([sign, 1, 1])
            w = np.exp(-((points - cc) ** 2).sum(1) / (2 * width ** 2))[:, None]
            out += w * d * np.array([sign, 1, 1])
    return out / 2


def identity_shape(rng: np.random.Generator, topo: FaceTopology) -> np.ndarray:
    """Neutral face of a random person: global proportions, nose, jaw, plus smooth bumps."""
    s = topo.mean_shape.astype(float).copy()
    s *= rng.uniform([0.9, 0.92, 0.9], [1.1, 1.08, 1.12])
    below = np.clip((s[NOSE_BOTTOM, 1] - s[:, 1]) / 6.0, 0, 1)  # 0 above the nose bottom → 1 at the chin
    s[:, 0] *= 1 + rng.uniform(-0.1, 0.1) * below  # jaw width
    s[:, 1] -= rng.uniform(-0.5, 0.8) * below  # chin length
    nose = np.exp(-((s - s[NOSE_TIP]) ** 2).sum(1) / (2 * 1.6 ** 2))
    s[:, 2] += rng.uniform(-0.4, 0.7) * nose
    return s + smooth_bumps(rng, s, 6, 0.25, 2.5)


def articulation_weights(topo: FaceTopology, s: np.ndarray):
    """Per-vertex jaw / lip / eyelid influence maps and the jaw pivot for a neutral shape."""
    lip_y = s[[13, 14], 1].mean()
    corner_x = np.abs(s[[61, 291], 0]).mean()
    inner = list(topo.lips_inner)
    i, j = sorted((inner.index(78), inner.index(308)))
    lower_inner = set(inner[i:j + 1]) if s[inner[i:j + 1], 1].mean() < lip_y else set(inner[j:] + inner[:i + 1])
    drop = np.clip((lip_y - s[:, 1]) / 0.6, 0, 1)  # vertices below the lip line follow the jaw
    side = np.clip(1.0 - (np.abs(s[:, 0]) - corner_x) / 3.0, 0.25, 1.0)  # cheeks follow less
    jaw = drop * side
    jaw[list(lower_inner)] = 1.0
    jaw[[78, 308]] = 0.5
    mouth_c = s[[13, 14]].mean(0)
    mouth = np.exp(-(((s[:, :2] - mouth_c[:2]) / [corner_x * 1.1, 1.6]) ** 2).sum(1))
    lid = np.zeros(len(s))
    lid_drop = np.zeros(len(s))
    for eye in (topo.eye_l, topo.eye_r):
        eye = list(eye)
        centre_y = s[eye, 1].mean()
        upper = [v for v in eye if s[v, 1] > centre_y]
        height = s[upper, 1].mean() - s[[v for v in eye if s[v, 1] <= centre_y], 1].mean()
        ex = s[eye, :2].mean(0)
        near = np.exp(-(((s[:, :2] - ex) / [2.0, 0.9]) ** 2).sum(1)) * (s[:, 1] > centre_y)
        lid = np.maximum(lid, near)
        lid_drop = np.where(near > 0.01, height * 1.05, lid_drop)
        lid[upper] = 1.0
    pivot = np.array([0.0, s[NOSE_BOTTOM, 1] + 1.0, s[:, 2].min() - 1.0])
    return jaw, mouth, lid, lid_drop, pivot


def rotate_x(points: np.ndarray, pivot: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """Rotate (…, V, 3) points about an x-axis through ``pivot`` by per-vertex angles (…, V)."""
    p = points - pivot
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    y = c * p[..., 1] + s * p[..., 2]
    z = -s * p[..., 1] + c * p[..., 2]
    return np.stack([p[..., 0], y, z], -1) + pivot


def articulate(ident: Identity, art: np.ndarray, blink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posed-neutral → expressive geometry for N frames.

    art: (N, 3) [jaw_open, lip_width, lip_round]; blink: (N,) in [0,1].
    Returns face vertices (N, 468, 3) and the jaw angle (N,) in radians (for the extras).
    """
    jaw_open, width, rnd = art[:, 0:1], art[:, 1:2], art[:, 2:3]
    # Negative rotation about the x axis through the pivot swings the chin down and back.
    angle = -np.deg2rad(JAW_MAX_DEG) * np.clip(jaw_open, 0, 1.2)  # (N, 1)
    face = np.broadcast_to(ident.face, (len(art), *ident.face.shape)).copy()
    centre_x = 0.0
    mw = ident.mouth_weight[None]
    face[..., 0] += mw * (face[..., 0] - centre_x) * (0.12 * width - 0.22 * rnd)  # spread / pucker
    face[..., 2] += mw * 0.6 * rnd  # protrusion
    face[..., 1] -= ident.upper_lid[None] * ident.lid_drop[None] * blink[:, None]
    face = rotate_x(face, ident.jaw_pivot, angle * ident.jaw_weight[None])
    return face, angle[:, 0]


def make_extras(rng: np.random.Generator, s: np.ndarray) -> list[Part]:
    """Head/hair, neck, shoulders, mouth cavity and teeth, placed around a neutral face ``s``."""
    top, chin = s[:, 1].max(), s[:, 1].min()
    half_w = np.abs(s[:, 0]).max()
    back = s[:, 2].min()
    hair_volume = rng.uniform(1.0, 1.25)
    # The hair shell sits behind the face mesh: its front reaches ~3 cm in front of the mesh's
    # back edge, so it frames the face oval (and can show as a fringe) without covering the eyes.
    head = ellipsoid((0, top - 7.5, back - 4.0), (half_w * 1.12 * hair_volume, 10.5 * hair_volume, 7.0),
                     tile=(1, 0))
    neck = ellipsoid((0, chin - 3.0, back - 1.0), (half_w * 0.62, 7.0, 5.0), tile=(0, 1), n_lat=7)
    neck.uv[:, 0] = neck.uv[:, 0] * 0.5  # neck skin: left half of its tile
    shoulders = ellipsoid((0, chin - 15.0, back - 1.0), (half_w * 2.3, 6.5, 8.0), tile=(0, 1), n_lat=8)
    shoulders.uv[:, 0] = 0.25 + shoulders.uv[:, 0] * 0.5  # shirt: right half of its tile
    lip_y = s[[13, 14], 1].mean()
    mw = np.abs(s[[61, 291], 0]).mean()
    zc = s[[13, 14], 2].mean()
    cavity = quad([[-mw, lip_y + 0.8, zc - 1.6], [mw, lip_y + 0.8, zc - 1.6],
                   [mw, lip_y - 3.2, zc - 1.6], [-mw, lip_y - 3.2, zc - 1.6]], (0.52, 0.52, 0.98, 0.72))
    tw = mw * 0.72
    upper_teeth = quad([[-tw, lip_y + 0.6, zc - 0.35], [tw, lip_y + 0.6, zc - 0.35],
                        [tw, lip_y - 0.25, zc - 0.4], [-tw, lip_y - 0.25, zc - 0.4]], (0.52, 0.76, 0.98, 0.86))
    lower_teeth = quad([[-tw, lip_y + 0.05, zc - 0.5], [tw, lip_y + 0.05, zc - 0.5],
                        [tw, lip_y - 0.7, zc - 0.45], [-tw, lip_y - 0.7, zc - 0.45]], (0.52, 0.88, 0.98, 0.98),
                       moves_with_jaw=True)
    tongue = quad([[-mw * 0.5, lip_y - 0.6, zc - 1.3], [mw * 0.5, lip_y - 0.6, zc - 1.3],
                   [mw * 0.5, lip_y - 1.4, zc - 1.2], [-mw * 0.5, lip_y - 1.4, zc - 1.2]], (0.52, 0.60, 0.98, 0.72),
                  moves_with_jaw=True)
    return [head, neck, shoulders, cavity, tongue, upper_teeth, lower_teeth]


def paint_atlas(rng: np.random.Generator, topo: FaceTopology, skin: np.ndarray, hair: np.ndarray) -> np.ndarray:
    """Per-identity albedo atlas: skin with blotches/freckles, lips, brows, eyes, hair, shirt, mouth."""
    n = ATLAS // 2
    atlas = np.zeros((ATLAS, ATLAS, 3), np.float32)
    yy, xx = np.mgrid[0:n, 0:n] / n
    blotch = sum(np.sin(2 * np.pi * (f1 * xx + p1)) * np.sin(2 * np.pi * (f2 * yy + p2))
                 for f1, f2, p1, p2 in rng.uniform([2, 2, 0, 0], [7, 7, 1, 1], (4, 4)))
    face = skin * (1 + 0.05 * blotch[..., None])
    freckles = rng.uniform(0, 1) ** 2
    for _ in range(int(300 * freckles)):
        rr, cc = disk(rng.uniform(0, n, 2), rng.uniform(0.6, 1.6), shape=(n, n))
        face[rr, cc] *= 0.82
    face_px = lambda ids: topo.uv[ids][:, ::-1] * n  # (row, col) of UVs in the face tile
    lip = skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.85, 1.05)
    rr, cc = polygon(*face_px(topo.lips_outer).T, shape=(n, n))
    face[rr, cc] = lip
    brow_colour = hair * 0.8 + 0.05
    for brow in (topo.brow_l, topo.brow_r):
        for p in face_px(brow):  # thick strokes through the brow landmarks
            rr, cc = disk(p, 3.0 * rng.uniform(0.9, 1.3), shape=(n, n))
            face[rr, cc] = brow_colour
    iris = rng.choice([[0.25, 0.15, 0.08], [0.2, 0.35, 0.55], [0.3, 0.4, 0.25]])
    for eye in (topo.eye_l, topo.eye_r):
        rr, cc = polygon(*face_px(eye).T, shape=(n, n))
        face[rr, cc] = (0.93, 0.92, 0.9)
        rr, cc = disk(face_px(eye).mean(0), 0.3 * np.ptp(face_px(eye)[:, 1]), shape=(n, n))
        face[rr, cc] = iris
        rr, cc = disk(face_px(eye).mean(0), 0.13 * np.ptp(face_px(eye)[:, 1]), shape=(n, n))
        face[rr, cc] = 0.05
    atlas[:n, :n] = face
    stripes = 0.85 + 0.15 * np.sin(2 * np.pi * rng.uniform(8, 20) * xx + 3 * np.sin(2 * np.pi * 2 * yy))
    atlas[:n, n:] = hair * stripes[..., None]
    shirt = rng.uniform(0.1, 0.9, 3)
    atlas[n:, : n // 2] = skin * 0.92
    atlas[n:, n // 2:n] = shirt * (0.9 + 0.1 * np.sign(np.sin(2 * np.pi * rng.integers(3, 9) * yy[:, : n // 2])))[..., None]
    mouth = atlas[n:, n:]
    mouth[:] = (0.16, 0.03, 0.04)  # cavity
    mouth[int(0.2 * n):int(0.44 * n)] = (0.65, 0.28, 0.30)  # tongue
    mouth[int(0.52 * n):] = (0.92, 0.90, 0.84)  # teeth
    mouth[int(0.52 * n):, ::max(2, n // 24)] *= 0.85  # gaps between teeth
    return np.clip(atlas, 0, 1)


def backdrop(rng: np.random.Generator, size: int) -> np.ndarray:
    """A static per-identity background: a colour gradient with a few soft shapes."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    c0, c1 = rng.uniform(0.15, 0.85, (2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle), 0, 1)[..., None]
    bg = c0 * (1 - t) + c1 * t
    for _ in range(rng.integers(2, 6)):
        rr, cc = disk(rng.uniform(0, size, 2), rng.uniform(0.05, 0.25) * size, shape=(size, size))
        bg[rr, cc] = 0.7 * bg[rr, cc] + 0.3 * rng.uniform(0, 1, 3)
    return bg.astype(np.float32)


def random_identity(rng: np.random.Generator, name: str, size: int) -> Identity:
    """Sample a complete synthetic person (shape, appearance, light, backdrop) from ``rng``."""
    topo = load_topology()
    shape = identity_shape(rng, topo)
    jaw, mouth, lid, lid_drop, pivot = articulation_weights(topo, shape)
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.93, 1.05)
    hair = HAIR_TONES[rng.integers(len(HAIR_TONES))]
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.1, 0.6), 1.0])
    return Identity(name=name, face=shape, jaw_weight=jaw, mouth_weight=mouth, upper_lid=lid,
                    lid_drop=lid_drop, extras=make_extras(rng, shape), atlas=paint_atlas(rng, topo, skin, hair),
                    light=light / np.linalg.norm(light), background=backdrop(rng, size), jaw_pivot=pivot)
