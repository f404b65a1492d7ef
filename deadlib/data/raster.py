"""Batched mesh rasterisation with pytorch3d in *pixel* coordinates.

Every mesh in this project (tracked faces, synthetic heads) lives in the image's own pixel
frame: x to the right, y down, z = depth (larger = farther from the camera), for a square
image of ``size`` pixels. ``rasterize`` converts that to pytorch3d's NDC convention (+X left,
+Y up) and calls the C++ rasteriser directly, so no camera object is needed and UVs/masks
land exactly on the pixels the tracker measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch3d.ops import interpolate_face_attributes
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes


@dataclass
class Fragments:
    """Which triangle covers each pixel and where inside it."""

    pix_to_face: torch.Tensor  # (B, S, S) long, packed face index, -1 where empty
    bary: torch.Tensor  # (B, S, S, 3) barycentric coordinates
    depth: torch.Tensor  # (B, S, S) z of the visible surface, -1 where empty
    faces_packed: torch.Tensor  # (sum F, 3) long, vertex indices into the packed (B*V) vertices

    @property
    def mask(self) -> torch.Tensor:
        """(B, S, S) bool: pixel is covered by the mesh."""
        return self.pix_to_face >= 0


def pixels_to_ndc(verts_pix: torch.Tensor, size: int) -> torch.Tensor:
    """(B, V, 3) pixel-frame vertices → pytorch3d NDC (+X left, +Y up, z kept, shifted > 0)."""
    x = 1.0 - (2.0 * verts_pix[..., 0]) / size  # pixel centre j+0.5 → ndc of pytorch3d's pixel j
    y = 1.0 - (2.0 * verts_pix[..., 1]) / size
    # Keep depth order; the rasteriser drops faces behind z=0, so shift into positive range.
    z = verts_pix[..., 2] / size + 10.0  # depth in units of the image side
    return torch.stack([x, y, z], dim=-1)


def rasterize(verts_pix: torch.Tensor, faces: torch.Tensor, size: int, tile: int = 64) -> Fragments:
    """Rasterise B meshes sharing ``faces`` (F, 3) with vertices (B, V, 3) in pixel space.

    pytorch3d's CPU rasteriser tests every face against every pixel (its coarse-to-fine binning
    is CUDA-only), so the image is cut into ``tile``-pixel squares and each square is rasterised
    with only the faces whose bounding boxes touch it — the same binning idea, done here.
    Returns the nearest surface per pixel.
    """
    B, V, _ = verts_pix.shape
    faces = faces.long()
    F_ = faces.shape[0]
    verts_pix = verts_pix.float()
    tri = verts_pix[:, faces]  # (B, F, 3, 3)
    lo, hi = tri[..., :2].min(dim=2).values, tri[..., :2].max(dim=2).values  # (B, F, 2) bbox
    pix_to_face = torch.full((B, size, size), -1, dtype=torch.long)
    bary = torch.zeros((B, size, size, 3))
    depth = torch.full((B, size, size), -1.0)
    for y0 in range(0, size, tile):
        for x0 in range(0, size, tile):
            h, w = min(tile, size - y0), min(tile, size - x0)
            n = max(h, w)
            hit = ((hi[..., 0] >= x0 - 1) & (lo[..., 0] <= x0 + w + 1) &
                   (hi[..., 1] >= y0 - 1) & (lo[..., 1] <= y0 + h + 1))  # (B, F)
            if not hit.any():
                continue
            shift = torch.tensor([x0, y0, 0.0])
            meshes = Meshes(verts=list(pixels_to_ndc(verts_pix - shift, n)),
                            faces=[faces[hit[b]] for b in range(B)])
            p2f, zbuf, bc, _ = rasterize_meshes(meshes, image_size=n, blur_radius=0.0, faces_per_pixel=1,
                                                bin_size=0, perspective_correct=False, cull_backfaces=False)
            # packed index inside this tile → packed index b*F + f over the whole batch
            global_ids = torch.cat([b * F_ + torch.nonzero(hit[b])[:, 0] for b in range(B)])
            p2f = p2f[:, :h, :w, 0]
            covered = p2f >= 0
            pix_to_face[:, y0:y0 + h, x0:x0 + w] = torch.where(covered, global_ids[p2f.clamp(min=0)], -1)
            bary[:, y0:y0 + h, x0:x0 + w] = bc[:, :h, :w, 0]
            depth[:, y0:y0 + h, x0:x0 + w] = torch.where(covered, (zbuf[:, :h, :w, 0] - 10.0) * n, -1.0)
    offsets = (torch.arange(B) * V)[:, None, None]  # packed vertex offset of each mesh
    faces_packed = (faces[None] + offsets).reshape(-1, 3)
    return Fragments(pix_to_face=pix_to_face, bary=bary, depth=depth, faces_packed=faces_packed)


def interpolate(frags: Fragments, vert_attrs: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes (B, V, D) or (V, D) over the pixels → (B, S, S, D), 0 off-mesh."""
    B = frags.pix_to_face.shape[0]
    if vert_attrs.dim() == 2:
        vert_attrs = vert_attrs.unsqueeze(0).expand(B, -1, -1)
    packed_attrs = torch.cat(list(vert_attrs), dim=0)  # (sum V, D)
    face_attrs = packed_attrs[frags.faces_packed]  # (sum F, 3, D)
    out = interpolate_face_attributes(frags.pix_to_face[..., None], frags.bary[..., None, :], face_attrs)
    return out[..., 0, :]
