"""The project's face mesh: MediaPipe FaceMesh topology (468 landmarks) + its own UV layout.

MediaPipe's Python wheel ships the triangulation only as an edge set (FACEMESH_TESSELATION)
and no canonical 3-D shape. ``deadlib.data.facemesh_build`` turns those edges into triangles,
closes the eye and mouth openings, and derives a symmetric mean frontal shape by running
MediaPipe's own landmark model on a face the project draws and renders. The result — shape,
UVs, triangles and region sets — is stored in ``deadlib/assets/face_topology.npz`` (small,
regenerable with ``python -m deadlib.data.facemesh_build``). This module only loads and queries it.

Coordinates of ``mean_shape``: centimetres, x to the face's left as seen in the image (image
right), y up, z toward the camera; outer eye corners (33, 263) are 9 cm apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ASSET = Path(__file__).resolve().parents[1] / "assets" / "face_topology.npz"
N_LANDMARKS = 468

# Well-known landmark ids of MediaPipe FaceMesh (image-left / image-right as seen on screen).
NOSE_TIP, NOSE_BOTTOM, CHIN, FOREHEAD = 1, 2, 152, 10
EYE_OUTER_L, EYE_OUTER_R = 33, 263  # image-left eye's outer corner, image-right eye's outer corner
MOUTH_CORNER_L, MOUTH_CORNER_R = 61, 291
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14


@dataclass(frozen=True)
class FaceTopology:
    """Triangles, UVs, mean shape and named vertex/face sets of the project's face mesh."""

    mean_shape: np.ndarray  # (468, 3) float32, cm
    uv: np.ndarray  # (468, 2) float32 in [0, 1], v measured from the top
    faces: np.ndarray  # (F, 3) int64, CCW seen from the front, includes eye/mouth fills
    mouth_opening_faces: np.ndarray  # (18,) indices into faces: triangles spanning the inner lips
    eye_opening_faces: np.ndarray  # (28,) indices into faces: triangles spanning the eye openings
    lips_outer: np.ndarray  # (20,) ordered closed contour
    lips_inner: np.ndarray  # (20,) ordered closed contour (mouth opening)
    eye_l: np.ndarray  # (16,) ordered contour of the image-left eye
    eye_r: np.ndarray  # (16,)
    brow_l: np.ndarray  # eyebrow landmark ids (image-left)
    brow_r: np.ndarray
    face_oval: np.ndarray  # (36,) ordered boundary loop of the mesh
    lower_face: np.ndarray  # sorted vertex ids at or below the nose bottom (dubbing mask region)
    mouth: np.ndarray  # sorted vertex ids on/inside the outer lip contour
    mouth_dilated: np.ndarray  # mouth + one-ring neighbours
    mirror: np.ndarray  # (468,) left/right mirror correspondence (involution)

    @property
    def skin_faces(self) -> np.ndarray:
        """(F', 3) triangles without the eye and mouth fills (the surface of the skin)."""
        drop = np.concatenate([self.mouth_opening_faces, self.eye_opening_faces])
        return self.faces[np.setdiff1d(np.arange(len(self.faces)), drop)]

    def faces_within(self, vertex_ids: np.ndarray) -> np.ndarray:
        """Indices of the triangles whose three vertices all lie in ``vertex_ids``."""
        inside = np.zeros(N_LANDMARKS, bool)
        inside[vertex_ids] = True
        return np.flatnonzero(inside[self.faces].all(axis=1))


@lru_cache(maxsize=1)
def load_topology(path: str | Path = ASSET) -> FaceTopology:
    """Load the face topology asset (build it with ``python -m deadlib.data.facemesh_build``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; regenerate it with `python -m deadlib.data.facemesh_build`")
    with np.load(path) as data:
        fields = {name: data[name] for name in FaceTopology.__dataclass_fields__}
    return FaceTopology(**fields)


def ordered_loop(edges) -> list[int]:
    """Chain an unordered set of edges forming one closed cycle into an ordered vertex loop."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    if any(len(n) != 2 for n in neighbours.values()):
        raise ValueError("edges do not form a single simple cycle")
    start = min(neighbours)
    loop, previous = [start], None
    while True:
        here = loop[-1]
        step = next(n for n in sorted(neighbours[here]) if n != previous)
        if step == start:
            break
        loop.append(step)
        previous = here
    if len(loop) != len(neighbours):
        raise ValueError("edges form several cycles")
    return loop
