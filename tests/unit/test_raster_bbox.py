"""The bounding-box rasteriser (deadlib.data.raster_bbox) gives pytorch3d's fragments (deadlib.data.raster)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deadlib.data.face3d import MASK_MOUTH, raster_maps
from deadlib.data.facemesh import load_topology
from deadlib.data.raster import interpolate, rasterize
from deadlib.data.raster_bbox import posed_mean_faces, rasterize_bbox


def test_same_fragments_as_pytorch3d_on_turned_and_clipped_faces():
    faces = torch.as_tensor(load_topology().faces)
    for size in (64, 128):
        verts = posed_mean_faces(6, size, seed=size)
        ref, ours = rasterize(verts, faces, size, tile=32), rasterize_bbox(verts, faces, size)
        same = ref.pix_to_face == ours.pix_to_face
        # a pixel centre within float rounding of a shared edge may go to the neighbour; here none does
        assert same.float().mean() >= 0.9999, (size, int((~same).sum()))
        assert ref.mask.sum() > 0.2 * ref.mask.numel() / 6 and not ref.mask.all()  # faces cover part of the image
        covered = same & ref.mask
        assert torch.allclose(ref.bary[covered], ours.bary[covered], atol=1e-3)
        assert torch.allclose(ref.depth[covered], ours.depth[covered], atol=0.1)
        assert (ours.bary[~ours.mask] == -1).all() and (ours.depth[~ours.mask] == -1).all()
        uv = torch.as_tensor(load_topology().uv, dtype=torch.float32)
        assert (interpolate(ref, uv) - interpolate(ours, uv)).abs()[covered].max() < 1e-3


def test_nearest_surface_wins_and_edges_follow_the_centre_rule():
    # two triangles over the same square, the second nearer (smaller z); a third far away and degenerate
    verts = torch.tensor([[[1.0, 1.0, 5.0], [7.0, 1.0, 5.0], [1.0, 7.0, 5.0],
                           [1.0, 1.0, 2.0], [7.0, 1.0, 2.0], [1.0, 7.0, 2.0],
                           [3.0, 3.0, 0.0], [3.0, 3.0, 0.0], [3.0, 3.0, 0.0]]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    frags = rasterize_bbox(verts, faces, 8)
    covered = frags.pix_to_face[0] >= 0
    assert (frags.pix_to_face[0][covered] == 1).all()  # the nearer copy everywhere, never the degenerate one
    assert torch.allclose(frags.depth[0][covered], torch.tensor(2.0))
    # the hypotenuse x + y = 8 passes through the centres (i + 0.5, j + 0.5) with i + j = 7: not covered
    ii, jj = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    centre_x, centre_y = jj + 0.5, ii + 0.5
    expected = (centre_x > 1) & (centre_y > 1) & (centre_x + centre_y < 8)
    assert torch.equal(covered, expected)
    assert torch.equal(covered, rasterize(verts, faces, 8, tile=32).mask[0])
    assert torch.allclose(frags.bary[0][covered].sum(-1), torch.tensor(1.0))


def test_raster_maps_give_the_same_masks_and_uv_with_either_engine():
    verts = posed_mean_faces(8, 64, seed=3).numpy()
    uv_p, bits_p = raster_maps(verts, 64, 4, 0.02, 32, "pytorch3d")
    uv_b, bits_b = raster_maps(verts, 64, 4, 0.02, 32, "bbox")
    assert np.array_equal(bits_p, bits_b) and (bits_b & MASK_MOUTH).any()
    # UV is stored as float16: float rounding in another frame moves a value by at most one step
    assert np.abs(uv_p.astype(np.float32) - uv_b.astype(np.float32)).max() <= 2 ** -11
    with pytest.raises(ValueError, match="engine"):
        raster_maps(verts, 64, 4, 0.02, 32, "opengl")
