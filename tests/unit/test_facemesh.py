"""The project's face mesh: topology recovered from MediaPipe edges, mean shape, UVs, regions."""

import numpy as np
import pytest

from deadlib.data.facemesh import N_LANDMARKS, load_topology, ordered_loop
from deadlib.data.facemesh_build import (
    contours,
    detect_landmarks,
    render_shape,
    signed_uv_areas,
    tessellation_triangles,
    upright_frame,
)


@pytest.fixture(scope="module")
def topo():
    return load_topology()


def test_triangle_counts_and_euler(topo):
    assert topo.mean_shape.shape == (N_LANDMARKS, 3)
    assert len(topo.faces) == 898 and len(topo.mouth_opening_faces) == 18 and len(topo.eye_opening_faces) == 28
    edges = {tuple(sorted(e)) for f in topo.faces for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    assert N_LANDMARKS - len(edges) + len(topo.faces) == 1  # closed eyes/mouth: a single disk


def test_asset_triangles_match_mediapipe_tessellation(topo):
    base = {tuple(sorted(t)) for t in tessellation_triangles()}
    skin = {tuple(sorted(t)) for t in topo.skin_faces}
    assert base == skin


def test_faces_point_outward(topo):
    v = topo.mean_shape[topo.skin_faces]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    facing = normal[:, 2] > 0  # toward the camera (+z) for a frontal face
    assert facing.mean() > 0.9


def test_mirror_is_an_involution_and_symmetric(topo):
    m = topo.mirror
    assert np.array_equal(m[m], np.arange(N_LANDMARKS))
    mirrored = topo.mean_shape[m] * np.array([-1, 1, 1])
    assert np.abs(mirrored - topo.mean_shape).max() < 1e-4


def test_uv_layout_in_range_and_unfolded(topo):
    assert topo.uv.min() >= 0 and topo.uv.max() <= 1
    areas = signed_uv_areas(topo.uv, topo.skin_faces)
    flipped = areas >= 0
    assert flipped.sum() <= 2 and np.abs(areas[flipped]).max(initial=0) < 1e-4


def test_regions(topo):
    assert set(topo.mouth) <= set(topo.mouth_dilated) <= set(topo.lower_face)
    assert set(topo.lips_inner) <= set(topo.mouth)
    y = topo.mean_shape[:, 1]
    assert y[topo.lower_face].max() <= y[2] + 1e-5  # nothing above the nose bottom
    assert len(topo.face_oval) == 36 and len(topo.eye_l) == len(topo.eye_r) == 16


def test_ordered_loop_rejects_open_chain():
    assert ordered_loop([(0, 1), (1, 2), (2, 0)]) == [0, 1, 2]
    with pytest.raises(ValueError):
        ordered_loop([(0, 1), (1, 2)])


def test_mediapipe_tracks_a_render_of_the_mean_shape(topo):
    """The mesh is a face MediaPipe recognises, and the fit returns the same shape."""
    groups = {k: list(getattr(topo, k)) for k in ("lips_outer", "lips_inner", "brow_l", "brow_r", "eye_l", "eye_r")}
    image = render_shape(topo.mean_shape, topo.faces, groups)
    fitted = upright_frame(detect_landmarks(image))
    rms = np.sqrt(((fitted - topo.mean_shape) ** 2).sum(axis=1).mean())
    assert rms < 0.6, f"re-fit differs by {rms:.2f} cm RMS"
    assert set(contours()["lips_inner"]) == set(topo.lips_inner)
