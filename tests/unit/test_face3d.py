"""The project's 3DMM on exact synthetic meshes: pose, identity, expression basis, decode, rasters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from deadlib.data import face3d
from deadlib.data.facemesh import load_topology
from deadlib.synth.generate import SynthSettings, make_identity_video


@pytest.fixture(scope="module")
def people():
    """Pixel meshes (N, 468, 3) + true articulation of three synthetic speakers (no rendering)."""
    settings = SynthSettings(duration_s=4.0, size=128)
    out = {}
    for name in ("synth_p00", "synth_p01", "synth_h00"):
        renderer, utt, blink, pose = make_identity_video(name, settings)
        out[name] = (renderer.geometry(utt.articulation, blink, pose)[:, :468].astype(np.float32), utt.articulation)
    return out


@pytest.fixture(scope="module")
def fitted(people):
    """Pose/identity fits of all three and a basis fitted on the two 'prior' people only."""
    fits = {n: face3d.fit_pose_identity(m, np.ones(len(m), bool)) for n, (m, _) in people.items()}
    res = np.concatenate([fits[n].residual for n in ("synth_p00", "synth_p01")])
    return fits, face3d.fit_basis(res, n_expr=12)


def test_identity_offset_ignores_frames_outside_identity_frames(people):
    """The prepare stage fits the identity on train-part frames only: whatever the test frames
    show (here: another person's face) cannot move it, and it equals a fit on those frames alone."""
    meshes, _ = people["synth_h00"]
    train = np.arange(len(meshes)) < 60
    other = meshes.copy()
    other[~train] = people["synth_p00"][0][~train]
    fit_a = face3d.fit_pose_identity(meshes, np.ones(len(meshes), bool), identity_frames=train)
    fit_b = face3d.fit_pose_identity(other, np.ones(len(meshes), bool), identity_frames=train)
    alone = face3d.fit_pose_identity(meshes[train], np.ones(60, bool))
    np.testing.assert_allclose(fit_a.identity, fit_b.identity, atol=1e-6)
    np.testing.assert_allclose(fit_a.identity, alone.identity, atol=1e-6)
    everything = face3d.fit_pose_identity(other, np.ones(len(meshes), bool))
    assert np.abs(everything.identity - fit_b.identity).max() > 1e-3       # the test frames would have moved it


@pytest.fixture(scope="module")
def round_trip(people, fitted):
    """synth_h00 (held out): tracked meshes, its fit, its expression codes and the decoded meshes."""
    fits, basis = fitted
    meshes, _ = people["synth_h00"]
    fit = fits["synth_h00"]
    expr = face3d.encode_expression(fit, np.ones(100, bool), basis)
    return meshes, fit, expr, face3d.decode(fit.pose, fit.identity, expr, basis)


def test_chunked_expression_coefficients_equal_the_whole_video_ones(people, fitted):
    """prepare encodes a chunk of frames at a time (memory); the coefficients must not depend on it."""
    fits, basis = fitted
    meshes, _ = people["synth_h00"]
    fit = fits["synth_h00"]
    valid = np.ones(len(meshes), bool)
    valid[[5, 40, 41]] = False
    whole = basis.encode(face3d.residuals(meshes, valid, fit.pose, fit.identity))
    for chunk in (7, 64, len(meshes)):
        chunked = face3d.expression_coefficients(meshes, valid, fit.pose, fit.identity, basis, chunk=chunk)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)
    smoothed = face3d.smooth_expression(whole, valid)
    np.testing.assert_array_equal(smoothed, face3d.encode_expression(
        face3d.FaceFit(fit.pose, fit.identity, face3d.residuals(meshes, valid, fit.pose, fit.identity)), valid, basis))


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = face3d.canonical_mean()
    rot = Rotation.from_rotvec(rng.normal(0, 0.3, (4, 3))).as_matrix()
    scale, trans = rng.uniform(2, 6, 4), rng.normal(0, 50, (4, 3))
    dst = scale[:, None, None] * np.einsum("nij,vj->nvi", rot, src) + trans[:, None]
    r, s, t = face3d.umeyama(src, dst)
    assert np.allclose(r, rot, atol=1e-6) and np.allclose(s, scale) and np.allclose(t, trans, atol=1e-4)
    pose = face3d.pose_to_params(r, s, t)
    assert pose.shape == (4, face3d.POSE_DIM)
    assert np.allclose(face3d.from_canonical(np.broadcast_to(src, (4, *src.shape)), pose), dst, atol=1e-3)
    assert np.allclose(face3d.to_canonical(dst, pose), src, atol=1e-4)


def test_pose_ignores_the_jaw(people, fitted):
    """Pose is fitted on the rigid upper face: opening the mouth must not rotate the head."""
    meshes, art = people["synth_p00"]
    fits, _ = fitted
    pitch = Rotation.from_rotvec(fits["synth_p00"].pose[:, :3].astype(np.float64)).as_euler("xyz")[:, 0]
    assert abs(np.corrcoef(pitch, art[:, 0])[0, 1]) < 0.5


def test_residuals_are_small_and_identity_is_per_person(fitted):
    fits, _ = fitted
    for fit in fits.values():
        assert fit.pose.shape == (100, 7) and fit.identity.shape == (468, 3)
        assert np.abs(fit.residual).mean() < 0.15  # cm: expression only
        assert np.abs(fit.residual.mean(0)).max() < 1e-4  # identity = mean residual
    assert np.abs(fits["synth_p00"].identity - fits["synth_p01"].identity).mean() > 0.05


def test_basis_is_mouth_dominated_and_finds_the_jaw(people, fitted):
    fits, basis = fitted
    assert basis.n_expr == 12 and basis.components.shape == (12, 468 * 3)
    assert (np.diff(basis.explained_variance) <= 1e-9).all() and basis.explained_variance_ratio.sum() > 0.9
    # the held-out speaker was not used to fit the basis; its jaw coefficient still tracks its jaw
    expr = face3d.encode_expression(fits["synth_h00"], np.ones(100, bool), basis)
    jaw_truth = people["synth_h00"][1][:, 0]
    assert np.corrcoef(expr[:, basis.jaw_index], jaw_truth)[0, 1] > 0.9  # positive = open
    topo = load_topology()
    lower = np.union1d(topo.lower_face, topo.mouth_dilated)
    energy = (basis.components.reshape(12, 468, 3) ** 2).sum(-1)
    assert energy[basis.jaw_index, lower].sum() > 0.8 * energy[basis.jaw_index].sum()


def test_decode_round_trip_and_editing_opens_the_mouth(fitted, round_trip):
    _, basis = fitted
    meshes, fit, expr, decoded = round_trip
    assert decoded.shape == meshes.shape and np.abs(decoded - meshes)[..., :2].mean() < 0.3  # px
    edited = expr.copy()
    edited[:, basis.jaw_index] += 2 * np.sqrt(basis.explained_variance[basis.jaw_index])
    opened = face3d.decode(fit.pose, fit.identity, edited, basis)
    assert (face3d.mouth_gap(opened) > face3d.mouth_gap(decoded) + 0.02).all()
    assert np.abs(opened - decoded)[:, face3d.rigid_ids()].max() < 0.5  # the upper face stays put


def test_basis_save_load(tmp_path, fitted):
    _, basis = fitted
    basis.save(tmp_path / "b.npz")
    back = face3d.ExpressionBasis.load(tmp_path / "b.npz")
    assert back.jaw_index == basis.jaw_index and np.array_equal(back.components, basis.components)
    with pytest.raises(face3d.Face3DError, match="not found"):
        face3d.ExpressionBasis.load(tmp_path / "missing.npz")


def test_bad_inputs_raise(fitted):
    _, basis = fitted
    with pytest.raises(face3d.Face3DError, match="more than 12 frames"):
        face3d.fit_basis(np.zeros((5, 468, 3)), n_expr=12)
    with pytest.raises(face3d.Face3DError, match=r"\(N, 12\)"):
        basis.offsets(np.zeros((3, 5)))
    with pytest.raises(face3d.Face3DError, match="no valid frame"):
        face3d.fit_pose_identity(np.zeros((4, 468, 3)), np.zeros(4, bool))
    with pytest.raises(face3d.Face3DError, match="landmarks must be"):
        face3d.fit_pose_identity(np.zeros((4, 10, 3)), np.ones(4, bool))


def test_raster_maps_cover_the_face_and_regions(people, fitted):
    fits, basis = fitted
    meshes, _ = people["synth_p00"]
    sample = meshes[::10] * 0.5  # 128 px frames → 64 px rasters
    uv, bits = face3d.raster_maps(sample, 64)
    assert uv.shape == (10, 64, 64, 2) and uv.dtype == np.float16 and bits.dtype == np.uint8
    face = (bits & face3d.MASK_FACE) > 0
    lower = (bits & face3d.MASK_LOWER) > 0
    assert (lower <= face).all() and 0.05 < face.mean() < 0.5 and lower.sum() < face.sum()
    assert (uv[~face] == 0).all() and (uv[face] >= 0).all() and (uv[face] <= 1).all()
    # every lip landmark lands on the mouth mask; lower-face landmarks on the lower mask
    topo = load_topology()
    outside = np.setdiff1d(np.arange(len(topo.faces)), topo.faces_within(topo.lower_face))
    rim = topo.faces[np.isin(topo.faces, topo.face_oval).any(1)]  # silhouette triangles of the mesh
    interior = np.setdiff1d(topo.lower_face, np.r_[topo.faces[outside].ravel(), rim.ravel()])
    for ids, flag, share in ((np.r_[topo.lips_outer, topo.lips_inner], face3d.MASK_MOUTH, 1.0),
                             (interior, face3d.MASK_LOWER, 0.98)):
        xy = np.floor(sample[:, ids, :2]).astype(int)
        hit = bits[np.arange(10)[:, None], xy[..., 1], xy[..., 0]] & flag
        assert (hit > 0).mean() >= share
    weights = face3d.weight_map(bits, 1.0, 2.0, 4.0)
    assert set(np.unique(weights)) <= {1.0, 2.0, 4.0} and (weights[(bits & face3d.MASK_MOUTH) > 0] == 4).all()


def test_model_rasters_match_the_tracked_mesh(round_trip):
    """Re-rasterising a frame from its own pose + identity + expression reproduces its masks/UVs."""
    meshes, _, _, decoded = round_trip
    uv_a, bits_a = face3d.raster_maps(meshes[::12], 128)
    uv_b, bits_b = face3d.raster_maps(decoded[::12], 128)
    for a, b in zip(bits_a, bits_b):
        assert face3d.mask_iou(a & 1, b & 1) >= 0.9 and face3d.mask_iou(a & 4, b & 4) >= 0.8
    both = (bits_a & 1).astype(bool) & (bits_b & 1).astype(bool)
    assert np.abs(uv_a.astype(np.float32) - uv_b.astype(np.float32)).sum(-1)[both].mean() < 0.01
    assert face3d.mask_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0
