"""Build ``deadlib/assets/face_topology.npz`` from what MediaPipe's wheel ships.

Run ``python -m deadlib.data.facemesh_build`` (needs mediapipe). Steps:
1. triangles = the 3-cliques of FACEMESH_TESSELATION's edge graph, minus the two spurious
   cliques that are not faces (detected as triangles all of whose edges have 3 incident cliques);
2. the eye and mouth openings (holes in the tessellation) are closed by zig-zag strips between
   their upper and lower contour chains (18 + 2×14 triangles), so an open mouth stretches them;
3. a mean frontal shape: MediaPipe's landmark model is run on a few schematic faces the project
   draws (closed mouth, varied proportions); each estimate is made upright and scaled (outer eye
   corners 9 cm apart), the estimates are averaged and the mean is left/right symmetrised.
   (Re-running the model on renders of its own output was tried and drifts toward an open
   mouth, so the bootstrap stops at the drawings; ``render_shape`` is kept for previews/tests.)
4. UVs: a cylindrical projection of that shape. At the two inner mouth corners the closed lips
   meet in near-degenerate triangles (UV area ~1e-5); tests allow those two and no other flip.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import numpy as np
from matplotlib.path import Path as PolygonPath

from deadlib.data.facemesh import (
    ASSET,
    CHIN,
    EYE_OUTER_L,
    EYE_OUTER_R,
    FOREHEAD,
    N_LANDMARKS,
    NOSE_BOTTOM,
    FaceTopology,
    ordered_loop,
)

EYE_CORNERS_L, EYE_CORNERS_R, LIP_CORNERS = (33, 133), (362, 263), (78, 308)
EYE_CORNER_DISTANCE_CM = 9.0


def tessellation_triangles() -> np.ndarray:
    """(852, 3) triangles recovered from MediaPipe's tessellation edges (unoriented)."""
    from mediapipe.python.solutions import face_mesh_connections as conn

    edges = {tuple(sorted(e)) for e in conn.FACEMESH_TESSELATION}
    adjacency = defaultdict(set)
    for a, b in edges:
        adjacency[a].add(b)
        adjacency[b].add(a)
    cliques = {tuple(sorted((a, b, c))) for a, b in edges for c in adjacency[a] & adjacency[b]}
    uses = Counter(e for t in cliques for e in itertools.combinations(t, 2))
    faces = [t for t in cliques if not all(uses[e] == 3 for e in itertools.combinations(t, 2))]
    return np.array(sorted(faces), dtype=np.int64)


def strip_fill(loop: list[int], corners: tuple[int, int]) -> np.ndarray:
    """Close a hole bounded by ``loop`` with a zig-zag strip between the chains split at ``corners``."""
    i, j = sorted((loop.index(corners[0]), loop.index(corners[1])))
    chain_a = loop[i:j + 1]  # corner → corner one way round
    chain_b = (loop[j:] + loop[:i + 1])[::-1]  # corner → corner the other way
    tris, a, b = [], 0, 0
    while a < len(chain_a) - 1 or b < len(chain_b) - 1:
        advance_a = b == len(chain_b) - 1 or (a < len(chain_a) - 1 and
                                               (a + 1) / len(chain_a) <= (b + 1) / len(chain_b))
        if advance_a:
            tris.append((chain_a[a], chain_a[a + 1], chain_b[b]))
            a += 1
        else:
            tris.append((chain_a[a], chain_b[b + 1], chain_b[b]))
            b += 1
    return np.array([t for t in tris if len(set(t)) == 3], dtype=np.int64)


def contours() -> dict[str, list[int]]:
    """Ordered contour loops and landmark groups from mediapipe's connection constants."""
    from mediapipe.python.solutions import face_mesh_connections as conn

    lip_edges = list(conn.FACEMESH_LIPS)
    loops, remaining = [], lip_edges
    while remaining:  # split the two lip cycles by connectivity
        comp = {remaining[0][0]}
        grew = True
        while grew:
            grew = False
            for a, b in remaining:
                if (a in comp) != (b in comp):
                    comp |= {a, b}
                    grew = True
        loops.append(ordered_loop([e for e in remaining if e[0] in comp]))
        remaining = [e for e in remaining if e[0] not in comp]
    inner = next(l for l in loops if 13 in l)
    outer = next(l for l in loops if 13 not in l)
    ids = lambda edges: sorted({v for e in edges for v in e})
    return {
        "lips_outer": outer, "lips_inner": inner,
        "eye_l": ordered_loop(conn.FACEMESH_RIGHT_EYE),  # MediaPipe's "right" eye is on the image left
        "eye_r": ordered_loop(conn.FACEMESH_LEFT_EYE),
        "brow_l": ids(conn.FACEMESH_RIGHT_EYEBROW), "brow_r": ids(conn.FACEMESH_LEFT_EYEBROW),
        "face_oval": ordered_loop(conn.FACEMESH_FACE_OVAL),
    }


def upright_frame(landmarks_pix: np.ndarray) -> np.ndarray:
    """(468, 3) pixel-frame landmarks (x right, y down, z away) → upright cm shape (y up, z toward camera)."""
    p = landmarks_pix[:N_LANDMARKS] * np.array([1.0, -1.0, -1.0])
    x_axis = p[EYE_OUTER_R] - p[EYE_OUTER_L]
    x_axis /= np.linalg.norm(x_axis)
    y_axis = p[FOREHEAD] - p[CHIN]
    y_axis -= x_axis * (y_axis @ x_axis)
    y_axis /= np.linalg.norm(y_axis)
    rotation = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)])  # rows = new axes
    shape = (p - p[NOSE_BOTTOM]) @ rotation.T
    return shape * EYE_CORNER_DISTANCE_CM / np.linalg.norm(shape[EYE_OUTER_R] - shape[EYE_OUTER_L])


def mirror_map(shape: np.ndarray) -> np.ndarray:
    """Left/right vertex correspondence: optimal assignment of vertices to x-mirrored vertices.

    The cost |s_i - mirror(s_j)| is symmetric, so the assignment is (almost) an involution;
    the rare non-reciprocal pairs are mapped to themselves.
    """
    from scipy.optimize import linear_sum_assignment

    mirrored = shape * np.array([-1.0, 1.0, 1.0])
    cost = np.linalg.norm(shape[:, None] - mirrored[None], axis=-1)  # (V, V)
    _, match = linear_sum_assignment(cost)
    bad = match[match] != np.arange(len(shape))
    match[bad] = np.arange(len(shape))[bad]
    return match


def symmetrise(shape: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Average a shape with its mirror image under the correspondence ``mirror``."""
    mirrored = shape[mirror] * np.array([-1.0, 1.0, 1.0])
    out = 0.5 * (shape + mirrored)
    out[mirror == np.arange(len(shape)), 0] = 0.0  # self-paired vertices lie on the midline
    return out


def detect_landmarks(image: np.ndarray) -> np.ndarray:
    """(478, 3) pixel-frame landmarks of the single face in an RGB uint8 image."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         min_detection_confidence=0.1) as mesh:
        result = mesh.process(image)
    if not result.multi_face_landmarks:
        raise RuntimeError("bootstrap: MediaPipe found no face in the project's drawing/rendering")
    h, w = image.shape[:2]
    return np.array([[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark])


def drawn_face(size: int = 256, eye_gap: float = 28, eye_y: float = 115, mouth_y: float = 185) -> np.ndarray:
    """A schematic frontal face drawn with OpenCV: the seed for the shape bootstrap."""
    import cv2

    img = np.full((size, size, 3), (120, 90, 60), np.uint8)  # RGB background
    s = size / 256
    c = lambda x, y: (int(x * s), int(y * s))
    cv2.ellipse(img, c(128, 135), c(70, 92), 0, 0, 360, (220, 180, 150), -1)
    for x in (128 - eye_gap, 128 + eye_gap):
        cv2.ellipse(img, c(x, eye_y), c(14, 7), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(img, c(x, eye_y), int(6 * s), (30, 40, 60), -1)
        cv2.ellipse(img, c(x, eye_y - 17), c(18, 4), 0, 180, 360, (50, 40, 40), int(3 * s))
    cv2.fillPoly(img, [np.array([c(128, eye_y), c(118, 160), c(138, 160)], np.int32)], (190, 150, 120))
    cv2.ellipse(img, c(128, mouth_y), c(22, 6), 0, 0, 360, (175, 95, 90), -1)  # closed lips
    cv2.line(img, c(107, mouth_y), c(149, mouth_y), (80, 35, 35), max(1, int(2 * s)))  # lip line
    return cv2.GaussianBlur(img, (5, 5), 2)


def render_shape(shape: np.ndarray, faces: np.ndarray, groups: dict, size: int = 256) -> np.ndarray:
    """Lambert-shaded frontal render of a cm shape with skin, lips, brows and dark eyes (RGB uint8)."""
    import torch

    from deadlib.data.raster import interpolate, rasterize

    scale = 0.55 * size / (shape[:, 0].max() - shape[:, 0].min())
    centre = np.array([size / 2, size / 2 - 0.05 * size])
    pix = np.column_stack([centre[0] + scale * shape[:, 0], centre[1] - scale * shape[:, 1], -scale * shape[:, 2]])
    colour = np.tile(np.array([0.86, 0.70, 0.58]), (N_LANDMARKS, 1))
    # Inner and outer lips share one colour: a dark band between them reads as an open mouth
    # and would make the bootstrap drift open from iteration to iteration.
    colour[groups["lips_outer"] + groups["lips_inner"]] = (0.70, 0.42, 0.40)
    colour[groups["brow_l"] + groups["brow_r"]] = (0.20, 0.15, 0.12)
    colour[groups["eye_l"] + groups["eye_r"]] = (0.15, 0.12, 0.12)
    verts = torch.tensor(pix, dtype=torch.float32)[None]
    frags = rasterize(verts, torch.as_tensor(faces), size)
    albedo = interpolate(frags, torch.tensor(colour, dtype=torch.float32))[0]
    normals = vertex_normals(pix * np.array([1, -1, -1]), faces)  # toward the camera = +z
    n = interpolate(frags, torch.tensor(normals, dtype=torch.float32))[0]
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    shade = 0.35 + 0.65 * (n @ torch.tensor(light, dtype=torch.float32)).clamp(min=0)[..., None]
    image = torch.where(frags.mask[0, ..., None], albedo * shade, torch.tensor([0.45, 0.35, 0.25]))
    return (image.clamp(0, 1).numpy() * 255).astype(np.uint8)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals of a triangle mesh."""
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-9)


def orient_faces(faces: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Flip triangles so their normals point away from a centre behind the face (outward)."""
    v = shape[faces]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    outward = v.mean(axis=1) - np.array([0.0, 0.0, -8.0])
    flip = (normal * outward).sum(axis=1) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces


def cylindrical_uv(shape: np.ndarray, margin: float = 0.04) -> np.ndarray:
    """(V, 2) UVs in [margin, 1-margin]: angle around a vertical axis behind the face, and height."""
    theta = np.arctan2(shape[:, 0], shape[:, 2] + 9.0)  # axis ~9 cm behind the nose bottom
    height = shape[:, 1]
    span = max(np.ptp(theta), np.ptp(height) / 9.0)  # keep aspect: 1 rad ≈ 9 cm on the cylinder
    uv = np.column_stack([(theta - theta.min()) / span, (height.max() - height) / (9.0 * span)])
    uv -= (uv.max(axis=0) - 1.0) / 2 + uv.min(axis=0) / 2  # centre in the unit square
    return (margin + (1 - 2 * margin) * uv).astype(np.float32)


DRAWING_VARIANTS = [dict(), dict(eye_gap=26), dict(eye_gap=30), dict(eye_y=112, mouth_y=182),
                    dict(eye_y=118, mouth_y=188)]


def signed_uv_areas(uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) signed areas of triangles in UV space (v down: front-facing triangles are negative)."""
    a, b, c = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def build() -> FaceTopology:
    """Run the whole bootstrap and return the topology (see module docstring)."""
    groups = contours()
    base = tessellation_triangles()
    mouth_fill = strip_fill(groups["lips_inner"], LIP_CORNERS)
    eye_fill = np.concatenate([strip_fill(groups["eye_l"], EYE_CORNERS_L),
                               strip_fill(groups["eye_r"], EYE_CORNERS_R)])
    faces = np.concatenate([base, mouth_fill, eye_fill])
    mean = np.mean([upright_frame(detect_landmarks(drawn_face(**v))) for v in DRAWING_VARIANTS], axis=0)
    mirror = mirror_map(mean)
    shape = symmetrise(mean, mirror)
    faces = orient_faces(faces, shape)
    lower = np.flatnonzero(shape[:, 1] <= shape[NOSE_BOTTOM, 1] + 1e-6)
    outline = PolygonPath(shape[groups["lips_outer"], :2])
    mouth = np.flatnonzero(outline.contains_points(shape[:, :2], radius=1e-3)
                           | np.isin(np.arange(N_LANDMARKS), groups["lips_outer"]))
    ring = np.unique(faces[np.isin(faces, mouth).any(axis=1)])
    n_base, n_mouth = len(base), len(mouth_fill)
    arr = lambda x: np.asarray(x, dtype=np.int64)
    return FaceTopology(
        mean_shape=shape.astype(np.float32), faces=faces,
        uv=cylindrical_uv(shape),
        mouth_opening_faces=np.arange(n_base, n_base + n_mouth),
        eye_opening_faces=np.arange(n_base + n_mouth, len(faces)),
        lips_outer=arr(groups["lips_outer"]), lips_inner=arr(groups["lips_inner"]),
        eye_l=arr(groups["eye_l"]), eye_r=arr(groups["eye_r"]),
        brow_l=arr(groups["brow_l"]), brow_r=arr(groups["brow_r"]),
        face_oval=arr(groups["face_oval"]), lower_face=lower, mouth=mouth,
        mouth_dilated=ring, mirror=mirror,
    )


def main() -> None:
    topo = build()
    ASSET.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ASSET, **{k: getattr(topo, k) for k in FaceTopology.__dataclass_fields__})
    print(f"wrote {ASSET}: {len(topo.faces)} faces, lower_face {len(topo.lower_face)} verts, "
          f"mouth {len(topo.mouth)} verts")


if __name__ == "__main__":
    main()
